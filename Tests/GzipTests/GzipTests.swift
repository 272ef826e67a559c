import Gzip
import Testing

@Suite struct GzipTests {
    private func sample(_ count: Int) -> [UInt8] {
        var state: UInt32 = 12345
        return (0..<count).map { _ in
            state = state &* 1_103_515_245 &+ 12345
            return UInt8(truncatingIfNeeded: (state >> 16) % 16) + 65  // compressible letters
        }
    }

    @Test func roundTripIsByteExact() throws {
        let original = sample(300_000)
        let compressed = try original.withUnsafeBytes { try Gzip.compress($0) }
        #expect(compressed.count < original.count)
        #expect(compressed.prefix(2) == [0x1f, 0x8b])
        let restored = try compressed.withUnsafeBytes { try Gzip.decompress($0, limit: 1 << 20) }
        #expect(restored == original)
    }

    @Test func streamingInflateAcrossTinyChunks() throws {
        let original = sample(50_000)
        let compressed = try original.withUnsafeBytes { try Gzip.compress($0) }
        let inflater = try GzipInflater(limit: 1 << 20)
        var restored: [UInt8] = []
        for start in stride(from: 0, to: compressed.count, by: 7) {
            let chunk = Array(compressed[start..<min(start + 7, compressed.count)])
            try chunk.withUnsafeBytes { try inflater.inflate($0) { restored.append(contentsOf: $0) } }
        }
        try inflater.finish()
        #expect(restored == original)
    }

    @Test func concatenatedMembersInflateInOrder() throws {
        let first = sample(1000), second = Array("second member".utf8)
        let joined = try first.withUnsafeBytes { try Gzip.compress($0) } + second.withUnsafeBytes { try Gzip.compress($0) }
        let restored = try joined.withUnsafeBytes { try Gzip.decompress($0, limit: 1 << 20) }
        #expect(restored == first + second)
    }

    @Test func bombStopsAtTheLimit() throws {
        let zeros = [UInt8](repeating: 0, count: 4 << 20)
        let bomb = try zeros.withUnsafeBytes { try Gzip.compress($0, level: 9) }
        #expect(bomb.count < 10_000)
        let inflater = try GzipInflater(limit: 1 << 20)
        var produced = 0
        #expect(throws: GzipError.tooLarge(limit: 1 << 20)) {
            try bomb.withUnsafeBytes { try inflater.inflate($0) { produced += $0.count } }
        }
        #expect(produced <= 1 << 20)
    }

    @Test func corruptAndTruncatedInputAreRejected() throws {
        let compressed = try sample(10_000).withUnsafeBytes { try Gzip.compress($0) }
        var damaged = compressed
        damaged[damaged.count - 6] ^= 0xff  // CRC32 of the trailer
        #expect(throws: GzipError.self) { try damaged.withUnsafeBytes { try Gzip.decompress($0, limit: 1 << 20) } }
        let truncated = Array(compressed.prefix(compressed.count / 2))
        #expect(throws: GzipError.corrupt("stream truncated")) {
            try truncated.withUnsafeBytes { try Gzip.decompress($0, limit: 1 << 20) }
        }
        let notGzip = Array("plain text, not gzip".utf8)
        #expect(throws: GzipError.self) { try notGzip.withUnsafeBytes { try Gzip.decompress($0, limit: 1 << 20) } }
    }
}
