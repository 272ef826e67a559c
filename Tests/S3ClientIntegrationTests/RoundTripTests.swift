import Foundation
@testable import S3Client
import Testing

extension PlainMotoTests {
    /// Objects written, read, described and deleted through the client, against a moto that
    /// checks no signature (a verifying moto wrongly refuses signed paths holding %-escapes,
    /// which is exactly what these keys need).
    @Suite struct RoundTripTests {
        /// Keys whose bytes must survive encoding once, on the wire and in the signature.
        static let keys = [
            "plain.txt",
            "with space.txt",
            "plus+sign+key",
            "unicode-ünïcødé-日本語-😀.bin",
            "tilde~name",
            "nested/deep/er/path/file.json",
            "percent%41literal%2F",
            "reserved !$&'()*,;=@:[]#?",
        ]

        @Test(arguments: keys) func objectRoundTrip(key: String) throws {
            let moto = try SharedMoto.get()
            let s3 = try moto.connection()
            let bucket = uniqueBucket("round-trip")
            try s3.createBucket(bucket: bucket)
            let bytes = Array(key.utf8) + PatternStream().prefix(20_000)

            let put = try s3.putInChunks(bucket: bucket, key: key, bytes, chunkSize: 1000)
            #expect(put.head.status == 200)
            #expect(put.calls >= bytes.count / 1000, "the body was pulled from the callback in small pieces")

            let download = try s3.download(bucket: bucket, key: key)
            #expect(download.head.status == 200)
            #expect(download.body == bytes)
            #expect(download.headCalls == 1)
            #expect(!download.bodyBeforeHead)

            let head = try s3.headObject(bucket: bucket, key: key)
            #expect(head.header("content-length") == String(bytes.count))

            let deleted = try s3.deleteObject(bucket: bucket, key: key)
            #expect(deleted.status == 204)
            expectServiceError(status: 404, code: nil) { _ = try s3.headObject(bucket: bucket, key: key) }
            expectServiceError(status: 404, code: "NoSuchKey") { _ = try s3.download(bucket: bucket, key: key) }
        }

        /// Keys that a double encoding, a missing encoding or a `+`-as-space decoder would merge.
        @Test func lookalikeKeysStayDistinct() throws {
            let s3 = try SharedMoto.get().connection()
            let bucket = uniqueBucket("lookalike")
            try s3.createBucket(bucket: bucket)
            let keys = ["a b", "a+b", "a%20b", "a%2Bb", "a%2520b", "a/b", "a%2Fb"]
            for key in keys { try s3.putInChunks(bucket: bucket, key: key, Array("object \(key)".utf8)) }
            for key in keys {
                #expect(try s3.download(bucket: bucket, key: key).body == Array("object \(key)".utf8), "key \(key)")
            }
        }

        @Test func headAndGetReportTheStoredHeaders() throws {
            let s3 = try SharedMoto.get().connection()
            let bucket = uniqueBucket("headers")
            try s3.createBucket(bucket: bucket)
            let bytes = PatternStream().prefix(12_345)
            let contentType = "application/x-s3client-test; charset=utf-8"
            let before = Date()
            let put = try s3.putInChunks(bucket: bucket, key: "doc", bytes, headers: [("Content-Type", contentType)])
            let etag = try #require(put.head.header("etag"))
            #expect(etag.hasPrefix("\"") && etag.hasSuffix("\"") && etag.count > 2)

            let head = try s3.headObject(bucket: bucket, key: "doc")
            let get = try s3.download(bucket: bucket, key: "doc")
            for response in [head, get.head] {
                #expect(response.status == 200)
                #expect(response.header("Content-Length") == "12345")
                #expect(response.header("ETag") == etag)
                #expect(response.header("Content-Type") == contentType)
                let lastModified = try #require(response.header("Last-Modified").flatMap(Self.httpDate))
                // HTTP dates have whole seconds; moto's clock is this machine's.
                #expect(lastModified >= before.addingTimeInterval(-2) && lastModified <= Date().addingTimeInterval(2))
            }
            #expect(get.body == bytes)
        }

        /// A 1 MiB body arrives in many chunks, each handed over as it comes, head first.
        @Test func largeBodyIsDeliveredInChunksAfterTheHead() throws {
            let s3 = try SharedMoto.get().connection()
            let bucket = uniqueBucket("chunks")
            try s3.createBucket(bucket: bucket)
            let bytes = PatternStream().prefix(1 << 20)
            try s3.putInChunks(bucket: bucket, key: "big", bytes, chunkSize: 64 * 1024)
            let download = try s3.download(bucket: bucket, key: "big")
            #expect(download.body == bytes)
            #expect(download.headCalls == 1)
            #expect(!download.bodyBeforeHead)
            #expect(download.chunks > 1)
        }

        @Test func emptyObjectRoundTrip() throws {
            let s3 = try SharedMoto.get().connection()
            let bucket = uniqueBucket("empty")
            try s3.createBucket(bucket: bucket)
            try s3.putInChunks(bucket: bucket, key: "nothing", [])
            let download = try s3.download(bucket: bucket, key: "nothing")
            #expect(download.head.status == 200)
            #expect(download.headCalls == 1)
            #expect(download.body.isEmpty)
            #expect(try s3.headObject(bucket: bucket, key: "nothing").header("content-length") == "0")
        }

        /// Caller headers are sent and signed: a range read and a conditional read.
        @Test func rangeAndConditionalReads() throws {
            let s3 = try SharedMoto.get().connection()
            let bucket = uniqueBucket("conditional")
            try s3.createBucket(bucket: bucket)
            let bytes = PatternStream().prefix(5000)
            let etag = try #require(try s3.putInChunks(bucket: bucket, key: "k", bytes).head.header("etag"))

            let range = try s3.download(bucket: bucket, key: "k", headers: [("Range", "bytes=100-199")])
            #expect(range.head.status == 206)
            #expect(range.body == Array(bytes[100..<200]))

            let unchanged = try s3.download(bucket: bucket, key: "k", headers: [("If-None-Match", etag)])
            #expect(unchanged.head.status == 304)
            #expect(unchanged.headCalls == 1)
            #expect(unchanged.body.isEmpty)
        }

        /// `bucket.localhost:port/key`: curl resolves every `*.localhost` name to loopback, and
        /// moto reads the bucket from the Host header, which the signature covers.
        @Test func virtualHostedAddressingRoundTrip() throws {
            let moto = try SharedMoto.get()
            let virtual = try moto.server.connection(addressing: .virtualHost, endpoint: "localhost:\(moto.server.port)")
            let pathStyle = try moto.connection()
            let bucket = uniqueBucket("virtual")
            try virtual.createBucket(bucket: bucket)
            let bytes = PatternStream().prefix(4096)
            try virtual.putInChunks(bucket: bucket, key: "dir/with space.bin", bytes)
            #expect(try virtual.download(bucket: bucket, key: "dir/with space.bin").body == bytes)
            // The same object, addressed by path: the bucket went into the host, the key into the path.
            #expect(try pathStyle.download(bucket: bucket, key: "dir/with space.bin").body == bytes)
            #expect(try virtual.deleteObject(bucket: bucket, key: "dir/with space.bin").status == 204)
            expectServiceError(status: 404, code: nil) { _ = try pathStyle.headObject(bucket: bucket, key: "dir/with space.bin") }
        }

        @Test func deletingAMissingObjectSucceeds() throws {
            let s3 = try SharedMoto.get().connection()
            let bucket = uniqueBucket("delete")
            try s3.createBucket(bucket: bucket)
            #expect(try s3.deleteObject(bucket: bucket, key: "never-written").status == 204)
        }

        private static func httpDate(_ text: String) -> Date? {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
            return formatter.date(from: text)
        }
    }
}
