@testable import S3Client
import Testing

extension PlainMotoTests {
    /// A large object goes up and comes back through the callbacks without the client ever
    /// holding it: the process's peak resident set grows by far less than the object.
    ///
    /// Serialized, and the peak is reset right before each measurement, so what is measured
    /// is this transfer (plus whatever small tests of other suites run at the same time:
    /// hence a generous bound).
    @Suite(.serialized) struct StreamingMemoryTests {
        /// Large enough that buffering it would dwarf the bound; moto (pure Python, keeping the
        /// object in memory) moves it in a few seconds each way.
        static let objectSize: Int64 = 200 << 20
        static let allowedGrowth = 64 << 20

        @Test func largePutAndGetStream() throws {
            let s3 = try SharedMoto.get().connection()
            let bucket = uniqueBucket("large")
            try s3.createBucket(bucket: bucket)
            let pattern = PatternStream()

            let putGrowth = try peakGrowth {
                var offset: Int64 = 0
                try s3.putObject(bucket: bucket, key: "large.bin", contentLength: Self.objectSize, payloadSHA256: nil) { buffer in
                    let count = Int(min(Int64(buffer.count), Self.objectSize - offset))
                    pattern.fill(UnsafeMutableRawBufferPointer(rebasing: buffer[..<count]), at: offset)
                    offset += Int64(count)
                    return count
                }
                #expect(offset == Self.objectSize)
            }
            #expect(putGrowth < Self.allowedGrowth, "PUT of \(Self.objectSize >> 20) MiB grew the peak RSS by \(putGrowth >> 20) MiB")

            let getGrowth = try peakGrowth {
                var offset: Int64 = 0
                var intact = true
                let head = try s3.getObject(
                    bucket: bucket, key: "large.bin", onHead: { _ in },
                    onBody: { chunk in
                        intact = intact && pattern.matches(chunk, at: offset)
                        offset += Int64(chunk.count)
                    })
                #expect(head.header("content-length") == String(Self.objectSize))
                #expect(offset == Self.objectSize)
                #expect(intact, "every byte came back as sent")
            }
            #expect(getGrowth < Self.allowedGrowth, "GET of \(Self.objectSize >> 20) MiB grew the peak RSS by \(getGrowth >> 20) MiB")
            try s3.deleteObject(bucket: bucket, key: "large.bin")
        }

        /// How much `body` raised the process's peak resident set above where it stood before.
        private func peakGrowth(_ body: () throws -> Void) throws -> Int {
            try ProcessMemory.resetPeak()
            let before = try ProcessMemory.resident()
            try body()
            return try ProcessMemory.peakResident() - before
        }
    }
}
