import Foundation
import Platform
import Testing

@testable import ObjectCache

/// The file tier on a real directory: records, slices, restarts, the byte bound, invalidation.
@Suite struct FileTierTests {
    private let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "s3cache-files-\(UUID().uuidString)"
    }

    private func metadata(_ etag: String = "\"e1\"") -> ObjectMetadata {
        ObjectMetadata(
            contentType: "video/mp4", etag: etag, lastModified: "Wed, 02 Dec 2026 10:00:00 GMT",
            extraHeaders: [ObjectMetadata.Header(name: "Cache-Control", value: "max-age=60, public")])
    }

    private func timing(_ fresh: Double = 2e9) -> WallTiming {
        WallTiming(freshUntil: fresh, revalidatingUntil: fresh, keepUntil: fresh + 10)
    }

    /// Fills slice `index` of `body` with `byte`; true when it became present.
    @discardableResult
    private func fill(_ tier: FileTier, _ body: FileBody, slice index: Int, byte: UInt8 = 7) -> Bool {
        guard case let .fill(fill) = tier.claim(body, slice: index) else { return false }
        let bytes = [UInt8](repeating: byte, count: fill.remaining)
        bytes.withUnsafeBytes { fill.write($0) }
        return fill.finish()
    }

    private func files(under path: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: path) else { return [] }
        return enumerator.compactMap { $0 as? String }.filter { !FileSystem.isDirectory(path + "/" + $0) }.sorted()
    }

    private func diskBytes(under path: String) -> Int {
        files(under: path).reduce(0) { $0 + (FileSystem.allocatedBytes(path + "/" + $1) ?? 0) }
    }

    @Test func aRecordRoundTripsAnyKeyBytesAndRefusesAnyChange() throws {
        let record = FileRecord(
            key: CacheKey("b/a key with spaces %41 and\nnewline\té/K"), id: 42, length: 3_000_000, sliceSize: 1 << 20,
            metadata: metadata(), freshUntil: 1.5e9, revalidatingUntil: 1.5e9 + 5, keepUntil: 1.5e9 + 3600,
            present: [true, false, true])
        let bytes = record.encoded()
        #expect(FileRecord.decode(bytes) == record)
        for index in stride(from: 0, to: bytes.count, by: 7) {
            var damaged = bytes
            damaged[index] ^= 0x20
            #expect(FileRecord.decode(damaged) == nil, "byte \(index) changed")
        }
        #expect(FileRecord.decode(Array(bytes.dropLast(10))) == nil)
        #expect(FileRecord.decode([]) == nil)
        #expect(FileRecord.decode(Array("not a record\ncrc 0\n".utf8)) == nil)
    }

    @Test func slicesArePresentOnlyOnceCompleteAndSurviveARestart() throws {
        let tier = try FileTier(directory: directory, capacity: 64 << 20, sliceSize: 1 << 16)
        let body = try #require(tier.create(key: "b/video", length: 200_000, metadata: metadata(), modified: 1_700_000_000, timing: timing()))
        #expect(body.sliceCount == 4)
        #expect(fill(tier, body, slice: 0))
        #expect(fill(tier, body, slice: 3))
        // A fill that stops half-way leaves the slice absent.
        guard case let .fill(partial) = tier.claim(body, slice: 1) else { Issue.record("slice 1 should be free"); return }
        [UInt8](repeating: 1, count: 1000).withUnsafeBytes { partial.write($0) }
        #expect(!partial.finish())
        #expect(body.isPresent(from: 0, through: 65535))
        #expect(!body.isPresent(from: 0, through: 65536))
        #expect(body.isPresent(from: 196_608, through: 199_999))

        let restarted = try FileTier(directory: directory, capacity: 64 << 20, sliceSize: 1 << 16)
        let restored = try #require(restarted.body(for: "b/video"))
        #expect(restored.name == body.name && restored.length == 200_000 && restored.metadata == metadata())
        #expect(restored.timing == timing())
        #expect(restored.isPresent(from: 0, through: 65535) && restored.isPresent(from: 196_608, through: 199_999))
        #expect(!restored.isPresent(from: 65536, through: 65536))
        #expect(restored.modified == 1_700_000_000, "the data file's time is S3's Last-Modified")
        #expect(restarted.statistics.restoredEntries.load(ordering: .relaxed) == 1)
    }

    @Test func startingRemovesPartialCorruptAndForeignFilesButNothingOutsideItsDirectory() throws {
        let tier = try FileTier(directory: directory, capacity: 64 << 20, sliceSize: 1 << 16)
        let kept = try #require(tier.create(key: "b/kept", length: 10, metadata: metadata(), modified: nil, timing: timing()))
        #expect(fill(tier, kept, slice: 0))
        let corrupt = try #require(tier.create(key: "b/corrupt", length: 10, metadata: metadata(), modified: nil, timing: timing()))
        var record = try #require(FileManager.default.contents(atPath: corrupt.path + ".meta"))
        record[20] ^= 1
        _ = FileManager.default.createFile(atPath: corrupt.path + ".meta", contents: record)
        let truncated = try #require(tier.create(key: "b/short", length: 10, metadata: metadata(), modified: nil, timing: timing()))
        truncate(truncated.path, 5)
        let orphan = try #require(tier.create(key: "b/orphan", length: 10, metadata: metadata(), modified: nil, timing: timing()))
        FileSystem.remove(orphan.path + ".meta")
        _ = FileManager.default.createFile(atPath: tier.root + "/zz-not-ours", contents: Data("x".utf8))
        _ = FileManager.default.createFile(atPath: kept.path + ".meta.tmp", contents: Data("torn".utf8))
        _ = FileManager.default.createFile(atPath: directory + "/operator-file", contents: Data("mine".utf8))

        let restarted = try FileTier(directory: directory, capacity: 64 << 20, sliceSize: 1 << 16)
        #expect(restarted.body(for: "b/kept") != nil)
        for key: CacheKey in ["b/corrupt", "b/short", "b/orphan"] { #expect(restarted.body(for: key) == nil) }
        let name = kept.name.split(separator: "/").last.map(String.init) ?? ""
        let prefix = String(kept.name.prefix(2))
        #expect(files(under: restarted.root) == ["\(prefix)/\(name)", "\(prefix)/\(name).meta"])
        #expect(FileManager.default.fileExists(atPath: directory + "/operator-file"))
    }

    @Test func theDirectoryStaysWithinItsBoundWhateverIsWritten() throws {
        let capacity = 2 << 20
        let tier = try FileTier(directory: directory, capacity: capacity, sliceSize: 1 << 16)
        // Five times the bound, in objects of 200 KB.
        for index in 0..<50 {
            guard let body = tier.create(key: CacheKey("b/\(index)"), length: 200_000, metadata: metadata(), modified: nil, timing: timing())
            else { continue }
            for slice in 0..<body.sliceCount { fill(tier, body, slice: slice) }
            #expect(tier.usage().bytes <= capacity)
            #expect(diskBytes(under: tier.root) <= capacity, "after object \(index)")
        }
        #expect(tier.statistics.evictions.load(ordering: .relaxed) > 30)
        #expect(tier.usage().entries >= 5)
        #expect(tier.create(key: "b/huge", length: capacity + 1, metadata: metadata(), modified: nil, timing: timing()) == nil)
    }

    @Test func aBodyGrowingInAFullTierEvictsOthersNotItself() throws {
        let capacity = 4 << 20
        let tier = try FileTier(directory: directory, capacity: capacity, sliceSize: 1 << 16)
        for index in 0..<12 {
            let other = try #require(tier.create(key: CacheKey("b/old-\(index)"), length: 300_000, metadata: metadata(), modified: nil, timing: timing()))
            for slice in 0..<other.sliceCount { fill(tier, other, slice: slice) }
        }
        // The others are read: S3-FIFO moves them to its main queue.
        for _ in 0..<2 { for index in 0..<12 { _ = tier.body(for: CacheKey("b/old-\(index)")) } }
        // Larger than the probationary queue (a tenth of the bound): re-inserted at each slice,
        // as it once was, it was evicted by its own growth.
        let big = try #require(tier.create(key: "b/big", length: 2 << 20, metadata: metadata(), modified: nil, timing: timing()))
        for slice in 0..<big.sliceCount {
            #expect(fill(tier, big, slice: slice), "slice \(slice)")
            #expect(big.isLive)
        }
        #expect(big.isPresent(from: 0, through: (2 << 20) - 1))
        #expect(tier.usage().bytes <= capacity)
    }

    @Test func aRemovedBodyIsDeletedAndAFillInFlightStoresNothing() throws {
        let tier = try FileTier(directory: directory, capacity: 64 << 20, sliceSize: 1 << 16)
        let body = try #require(tier.create(key: "b/k", length: 100_000, metadata: metadata(), modified: nil, timing: timing()))
        guard case let .fill(inFlight) = tier.claim(body, slice: 0) else { Issue.record("slice 0 should be free"); return }
        #expect(tier.remove("b/k"))
        [UInt8](repeating: 1, count: inFlight.remaining).withUnsafeBytes { inFlight.write($0) }
        #expect(!inFlight.finish())
        #expect(!body.isLive && !body.isPresent(from: 0, through: 0))
        #expect(files(under: tier.root).isEmpty)
        if case .uncached = tier.claim(body, slice: 1) {} else { Issue.record("a removed body stores nothing more") }
    }

    @Test func oneFillPerSliceOthersWait() throws {
        let tier = try FileTier(directory: directory, capacity: 64 << 20, sliceSize: 1 << 16)
        let body = try #require(tier.create(key: "b/k", length: 100_000, metadata: metadata(), modified: nil, timing: timing()))
        guard case let .fill(first) = tier.claim(body, slice: 1) else { Issue.record("slice 1 should be free"); return }
        guard case let .wait(flight) = tier.claim(body, slice: 1) else { Issue.record("a second request should wait"); return }
        [UInt8](repeating: 1, count: first.remaining).withUnsafeBytes { first.write($0) }
        #expect(first.finish())
        if case .finished = flight.wait(stallLimit: 1) {} else { Issue.record("the waiter is released") }
        if case .present = tier.claim(body, slice: 1) {} else { Issue.record("then finds the slice on disk") }
    }

    @Test func theCacheRebuildsFileRecordsAfterARestartAndInvalidationReachesTheFiles() throws {
        let settings = CacheSettings(capacity: 16 << 20, maxObjectSize: 1 << 20, ttl: 100)
        let cache = ObjectCache(settings: settings, files: try FileTier(directory: directory, capacity: 64 << 20, sliceSize: 1 << 16))
        let tier = try #require(cache.files)
        guard case let .leader(flight, _) = cache.access("b/big") else { Issue.record("expected to lead"); return }
        let body = try #require(cache.createFile("b/big", length: 70_000, metadata: metadata(), modified: nil))
        cache.complete(flight, key: "b/big", outcome: .record(cache.makeRecord(.file(CachedFile(body: body, metadata: metadata())), key: "b/big")))
        #expect(fill(tier, body, slice: 0) && fill(tier, body, slice: 1))

        let restarted = ObjectCache(settings: settings, files: try FileTier(directory: directory, capacity: 64 << 20, sliceSize: 1 << 16))
        guard case let .hit(record) = restarted.access("b/big"), case let .file(file) = record.state else {
            Issue.record("the restarted cache serves the file")
            return
        }
        #expect(file.body.isPresent(from: 0, through: 69_999) && file.metadata == metadata())
        #expect(record.freshUntil > restarted.clock.now() + 90, "the entry keeps the freshness it had")

        restarted.invalidate("b/big")
        #expect(restarted.files?.body(for: "b/big") == nil)
        #expect(files(under: tier.root).isEmpty)
    }

    /// fuzz-file-record's seed corpus, through the fuzzer's entry point; the seed record decodes.
    @Test func theFileRecordSeedCorpusReplays() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fuzz/corpus/file-record")
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        #expect(files.count >= 3)
        for file in files { try Data(contentsOf: file).withUnsafeBytes(ObjectCacheFuzzing.fileRecord) }
        let seed = try Data(contentsOf: directory.appendingPathComponent("record"))
        let record = try #require(FileRecord.decode(Array(seed)))
        #expect(record.key == CacheKey("b/a key\né") && record.present == [true, false, true])
    }
}
