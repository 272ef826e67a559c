#if canImport(Glibc)
import Glibc
#endif
public import Platform
public import Synchronization

/// Large objects as files in a directory that nginx sends itself, bounded in bytes, evicted by
/// S3-FIFO like the heap tier, and kept across restarts.
///
/// Layout under `root` (`CACHE_DIR/objects`): `xx/<random>-<id>`, the data file (the object's
/// bytes at their offsets, as long as the object, sparse until every slice is in), and beside
/// it `…-<id>.meta`, its record (`FileRecord`). Names are never reused: a new version of an
/// object gets a new id, so a name nginx was told to send always holds the bytes it was told
/// about. The record is the commit point: it is written to a temporary name and renamed, and
/// only slices it lists as present are ever served, after a restart too.
public final class FileTier: Sendable {
    /// `CACHE_DIR/objects`: everything here is the tier's own, and anything it did not write is
    /// removed at start.
    public let root: String
    /// Bytes the directory may hold (`CACHE_DIR_SIZE`).
    public let capacity: Int
    public let sliceSize: Int
    public let statistics = FileTierStatistics()
    /// Data files are 0644 and directories 0711: nginx's user (any user) may open a file whose
    /// name it knows, and list nothing; names carry 128 random bits, and only nginx is told them.
    /// Set explicitly: the unit's `UMask=0077` would hide the files from nginx.
    private static let fileMode: UInt32 = 0o644
    private static let directoryMode: UInt32 = 0o711
    private let state: Mutex<TierState>
    /// True while writes fail (a full disk): the failure is reported once per episode.
    private let failing = Atomic<Bool>(false)
    /// Told the error that starts each episode of failures (the worker logs it).
    private let reportFailure: @Sendable (SystemError) -> Void

    struct TierState {
        var policy: S3FIFOPolicy<CacheKey, FileBody>
        var nextID: UInt64
        /// Bytes charged per body: its record, its inodes, and the slices it holds or is filling.
        var charged: [UInt64: Int] = [:]
    }

    /// Charged for each body beyond its slices: the record file and two inodes.
    static let overhead = 8192

    /// Opens the tier in `directory/objects` (created if missing) and rebuilds its index from
    /// the records found there; partial, corrupt and foreign files are removed.
    public init(
        directory: String, capacity: Int, sliceSize: Int, reportFailure: @escaping @Sendable (SystemError) -> Void = { _ in }
    ) throws(SystemError) {
        self.reportFailure = reportFailure
        precondition(sliceSize > 0 && capacity > 0)
        root = directory.hasSuffix("/") ? directory + "objects" : directory + "/objects"
        self.capacity = capacity
        self.sliceSize = sliceSize
        try FileSystem.makeDirectory(directory)
        try FileSystem.makeDirectory(root)
        try FileSystem.setMode(root, Self.directoryMode)
        let loaded = Self.load(root: root)
        var tier = TierState(policy: S3FIFOPolicy(capacity: capacity), nextID: (loaded.map(\.id).max() ?? 0) &+ 1)
        var dropped: [FileBody] = []
        for body in loaded {
            let cost = Self.overhead + body.storedBytes
            tier.charged[body.id] = cost
            for (_, evicted) in tier.policy.insert(body.key, value: body, cost: cost) {
                tier.charged[evicted.id] = nil
                dropped.append(evicted)
            }
        }
        state = Mutex(tier)
        for body in dropped { Self.delete(body) }
        statistics.restoredEntries.store(loaded.count - dropped.count, ordering: .relaxed)
    }

    /// Whole blocks of a file part of `bytes` (what it occupies on disk).
    static func blocks(_ bytes: Int) -> Int { (bytes + 4095) & ~4095 }

    // MARK: Entries

    /// The live body for `key`, counting an access for eviction.
    public func body(for key: CacheKey) -> FileBody? {
        state.withLock { $0.policy.get(key) }
    }

    /// A new, empty body for `key` (a data file of `length` bytes and its record), replacing any
    /// older one; nil when it cannot be stored (larger than the tier, or the disk refuses).
    func create(key: CacheKey, length: Int, metadata: ObjectMetadata, modified: Int?, timing: WallTiming) -> FileBody? {
        guard length > 0, length <= capacity - Self.overhead else { return nil }
        let id: UInt64 = state.withLock { state in
            defer { state.nextID &+= 1 }
            return state.nextID
        }
        guard let random = try? SystemRandom.bytes(16) else { return nil }
        let hex = random.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        let directory = String(hex.prefix(2))
        let name = "\(directory)/\(hex)-\(String(id, radix: 16))"
        let body = FileBody(
            key: key, id: id, length: length, sliceSize: sliceSize, name: name, path: root + "/" + name, metadata: metadata,
            timing: timing, modified: modified)
        do {
            let subdirectory = root + "/" + directory
            if !FileSystem.isDirectory(subdirectory) {
                try FileSystem.makeDirectory(subdirectory)
                try FileSystem.setMode(subdirectory, Self.directoryMode)
            }
            let fd = try FileSystem.open(body.path, write: true, create: true, mode: Self.fileMode)
            try FileSystem.setMode(body.path, Self.fileMode)
            defer { FileSystem.close(fd) }
            try FileSystem.truncate(fd, length: length)
            try writeRecord(for: body)
        } catch {
            Self.delete(body)
            noteFailure(error)
            return nil
        }
        let displaced: [FileBody] = state.withLock { state in
            state.charged[id] = Self.overhead
            return admit(&state, body, cost: Self.overhead)
        }
        retire(displaced)
        guard body.isLive else { return nil }
        statistics.entriesCreated.add(1, ordering: .relaxed)
        return body
    }

    /// Removes `key`'s body (a write or a purge went through): nothing of it is served or stored
    /// after this returns.
    @discardableResult
    func remove(_ key: CacheKey) -> Bool {
        let body: FileBody? = state.withLock { state in
            guard let body = state.policy.remove(key) else { return nil }
            state.charged[body.id] = nil
            return body
        }
        guard let body else { return false }
        retire([body], evicted: false)
        return true
    }

    /// Removes a body that is no longer the right one (expired beyond revalidation, or S3
    /// said it changed), unless the key has a newer one by now.
    public func remove(_ body: FileBody) {
        let removed: Bool = state.withLock { state in
            guard state.policy.peek(body.key) === body else { return false }
            state.policy.remove(body.key)
            state.charged[body.id] = nil
            return true
        }
        if removed { retire([body], evicted: false) } else { body.retire() }
    }

    /// Every body whose key starts with `prefix` (compared as bytes).
    func bodies(withPrefix prefix: String) -> [FileBody] {
        state.withLock { state in state.policy.entries().compactMap { $0.key.hasPrefix(prefix) ? $0.value : nil } }
    }

    /// Writes the body's metadata and timing to its record (after a fill or revalidation).
    func update(_ body: FileBody, metadata: ObjectMetadata, timing: WallTiming) {
        guard body.metadata != metadata || body.timing != timing else { return }
        body.update(metadata: metadata, timing: timing)
        guard body.isLive else { return }
        do {
            try writeRecord(for: body)
        } catch {
            noteFailure(error)
        }
    }

    /// Entries, and bytes charged to the bound.
    public func usage() -> (entries: Int, bytes: Int) {
        state.withLock { state in (state.policy.count, state.charged.values.reduce(0, +)) }
    }

    // MARK: Slices

    /// What a request should do about slice `index` of `body`.
    public enum Claim {
        /// On disk: read it.
        case present
        /// This request fetches it, writing through `fill`.
        case fill(SliceFill)
        /// Another request is fetching it: wait on the flight, then ask again.
        case wait(Flight)
        /// It cannot be stored (the body left the tier, no room): fetch it without storing.
        case uncached
    }

    public func claim(_ body: FileBody, slice index: Int) -> Claim {
        switch body.claim(index) {
        case .present: return .present
        case let .wait(flight): return .wait(flight)
        case .gone: return .uncached
        case let .fill(flight):
            let bytes = Self.blocks(body.bounds(ofSlice: index).count)
            guard reserve(bytes, for: body) else {
                body.finish(index, flight: flight, complete: false)
                return .uncached
            }
            return .fill(SliceFill(tier: self, body: body, index: index, flight: flight, reserved: bytes))
        }
    }

    /// Charges `bytes` more to `body`, evicting others to make room; false when the body is no
    /// longer held (or was itself displaced).
    private func reserve(_ bytes: Int, for body: FileBody) -> Bool {
        guard let displaced = resize(body, by: bytes) else { return false }
        retire(displaced)
        return body.isLive
    }

    /// Gives back what a fill reserved and did not store.
    func release(_ bytes: Int, for body: FileBody) {
        if let displaced = resize(body, by: -bytes) { retire(displaced) }
    }

    /// Changes what `body` is charged by `delta` in place; the bodies evicted for it (itself
    /// among them when it no longer fits), or nil when it is not held.
    private func resize(_ body: FileBody, by delta: Int) -> [FileBody]? {
        state.withLock { state in
            guard state.policy.peek(body.key) === body, let charged = state.charged[body.id],
                  let evicted = state.policy.resize(body.key, cost: charged + delta)
            else { return nil }
            state.charged[body.id] = charged + delta
            for (_, other) in evicted { state.charged[other.id] = nil }
            return evicted.map(\.value)
        }
    }

    /// (Re)inserts `body` with `cost`; returns the bodies evicted for it (itself among them when
    /// it could not stay).
    private func admit(_ state: inout TierState, _ body: FileBody, cost: Int) -> [FileBody] {
        let evicted = state.policy.insert(body.key, value: body, cost: cost)
        var displaced: [FileBody] = []
        for (_, other) in evicted where other !== body {
            state.charged[other.id] = nil
            displaced.append(other)
        }
        if state.policy.peek(body.key) !== body {
            state.charged[body.id] = nil
            displaced.append(body)
        }
        return displaced
    }

    /// Takes bodies out of service and deletes their files; `evicted` when the bound made room.
    private func retire(_ bodies: [FileBody], evicted: Bool = true) {
        for body in bodies {
            body.retire()
            Self.delete(body)
            if evicted { statistics.evictions.add(1, ordering: .relaxed) }
        }
    }

    /// Ends a slice fill: with every byte written, the data is flushed, the file's time set to
    /// the object's (nginx checks `If-Unmodified-Since` against it), and the record rewritten.
    func commit(_ fill: SliceFill, fd: Int32) -> Bool {
        let body = fill.body
        do {
            try FileSystem.syncData(fd)
            if let modified = body.modified { try FileSystem.setModificationTime(fd, seconds: modified) }
        } catch {
            if body.isLive { noteFailure(error) }
            body.finish(fill.index, flight: fill.flight, complete: false)
            release(fill.reserved, for: body)
            return false
        }
        guard body.finish(fill.index, flight: fill.flight, complete: true) else {
            release(fill.reserved, for: body)
            return false
        }
        do {
            try writeRecord(for: body)
        } catch {
            // The slice is on disk and served; only a restart will not know of it.
            noteFailure(error)
            return true
        }
        failing.store(false, ordering: .relaxed)
        statistics.slicesFilled.add(1, ordering: .relaxed)
        return true
    }

    // MARK: Failures

    /// Counts a failed file operation; the first after a success starts an episode, whose
    /// error is reported.
    func noteFailure(_ error: SystemError) {
        statistics.ioErrors.add(1, ordering: .relaxed)
        if !failing.exchange(true, ordering: .relaxed) { reportFailure(error) }
    }

    // MARK: Files

    /// Writes the body's record as it stands now (a commit that waited for another writes the
    /// slices that one committed too), unless the body left the tier meanwhile.
    private func writeRecord(for body: FileBody) throws(SystemError) {
        try body.fileLock.withLock { _ throws(SystemError) in
            guard body.isLive else { return }
            // Records stay the worker's own (0600): nginx has no use for them.
            try FileSystem.replaceContents(of: body.path + ".meta", with: body.record().encoded(), temporary: body.path + ".meta.tmp")
        }
    }

    static func delete(_ body: FileBody) {
        body.fileLock.withLock { _ in
            FileSystem.remove(body.path + ".meta")
            FileSystem.remove(body.path)
            FileSystem.remove(body.path + ".meta.tmp")
        }
    }

    /// Reads every record under `root`, keeps the bodies whose record and data file agree, and
    /// removes everything else the tier may have left: temporary files, data without a record,
    /// records without data, torn or foreign files, older versions of a key.
    static func load(root: String) -> [FileBody] {
        var bodies: [CacheKey: FileBody] = [:]
        let directories = (try? FileSystem.entries(of: root)) ?? []
        for directory in directories {
            let path = root + "/" + directory
            guard directory.utf8.count == 2, directory.utf8.allSatisfy(isHexDigit), FileSystem.isDirectory(path) else {
                removeTree(path)
                continue
            }
            let names = (try? FileSystem.entries(of: path)) ?? []
            var kept: Set<String> = []
            for name in names where name.hasSuffix(".meta") {
                let dataName = String(name.dropLast(5))
                guard let body = loadBody(root: root, directory: directory, dataName: dataName) else { continue }
                if let other = bodies[body.key] {
                    // Two versions of one key (a crash between creating one and deleting the
                    // other): the newer id wins.
                    guard body.id > other.id else { continue }
                    kept.remove(other.name.split(separator: "/").last.map(String.init) ?? "")
                }
                bodies[body.key] = body
                kept.insert(dataName)
            }
            for name in names {
                let base = name.hasSuffix(".meta") ? String(name.dropLast(5)) : name
                if !kept.contains(base) { removeTree(path + "/" + name) }
            }
        }
        return Array(bodies.values)
    }

    private static func loadBody(root: String, directory: String, dataName: String) -> FileBody? {
        let path = root + "/" + directory + "/" + dataName
        guard let parts = Optional(dataName.split(separator: "-")), parts.count == 2, parts[0].utf8.count == 32,
              parts[0].utf8.allSatisfy(isHexDigit), parts[0].hasPrefix(directory), let id = UInt64(parts[1], radix: 16),
              let bytes = readSmallFile(path + ".meta"), let record = FileRecord.decode(bytes), record.id == id
        else { return nil }
        guard let fd = try? FileSystem.open(path, write: false) else { return nil }
        defer { FileSystem.close(fd) }
        guard (try? FileSystem.size(fd)) == record.length else { return nil }
        let modified = try? FileSystem.modificationTime(fd)
        return FileBody(
            key: record.key, id: id, length: record.length, sliceSize: record.sliceSize, name: directory + "/" + dataName,
            path: path, metadata: record.metadata,
            timing: WallTiming(freshUntil: record.freshUntil, revalidatingUntil: record.revalidatingUntil, keepUntil: record.keepUntil),
            modified: modified, present: record.present)
    }

    private static func readSmallFile(_ path: String) -> [UInt8]? {
        guard let fd = try? FileSystem.open(path, write: false) else { return nil }
        defer { FileSystem.close(fd) }
        guard let size = try? FileSystem.size(fd), size > 0, size <= FileRecord.maximumSize else { return nil }
        var bytes = [UInt8](repeating: 0, count: size)
        let count = bytes.withUnsafeMutableBytes { (try? FileSystem.read(into: $0, from: fd, at: 0)) ?? -1 }
        return count == size ? bytes : nil
    }

    /// Removes a file, or a directory and everything in it.
    private static func removeTree(_ path: String) {
        if FileSystem.isDirectory(path) {
            for name in (try? FileSystem.entries(of: path)) ?? [] { removeTree(path + "/" + name) }
            _ = rmdir(path)
        } else {
            FileSystem.remove(path)
        }
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }
}

/// One request's fill of one slice: the bytes go to the data file at their offset, and the slice
/// becomes present only when all of them are there (`finish`).
public final class SliceFill {
    let tier: FileTier
    public let body: FileBody
    public let index: Int
    let flight: Flight
    let reserved: Int
    private var fd: Int32 = -1
    private var written = 0
    private var failed = false
    private var ended = false

    init(tier: FileTier, body: FileBody, index: Int, flight: Flight, reserved: Int) {
        self.tier = tier
        self.body = body
        self.index = index
        self.flight = flight
        self.reserved = reserved
    }

    deinit {
        end(complete: false)
    }

    /// Offset and length of the slice in the object.
    public var bounds: Range<Int> { body.bounds(ofSlice: index) }

    /// Bytes still to come.
    public var remaining: Int { bounds.count - written }

    /// Stores the next bytes of the slice (at most `remaining`). A failed write stops storing;
    /// the caller keeps streaming.
    public func write(_ bytes: UnsafeRawBufferPointer) {
        flight.recordProgress()
        guard !failed, !ended else { return }
        do {
            if fd < 0 { fd = try FileSystem.open(body.path, write: true) }
            try FileSystem.write(UnsafeRawBufferPointer(rebasing: bytes.prefix(remaining)), to: fd, at: bounds.lowerBound + written)
            written += min(bytes.count, remaining)
        } catch {
            failed = true
            // A body evicted or invalidated meanwhile has no file any more: not a disk failure.
            if body.isLive { tier.noteFailure(error) }
        }
    }

    /// Ends the fill: the slice is present if every byte was written. Waiters are released either way.
    @discardableResult
    public func finish() -> Bool {
        end(complete: !failed && written == bounds.count)
    }

    @discardableResult
    private func end(complete: Bool) -> Bool {
        guard !ended else { return false }
        ended = true
        defer {
            if fd >= 0 { FileSystem.close(fd) }
            fd = -1
        }
        if complete, fd >= 0 { return tier.commit(self, fd: fd) }
        // The writes moved the file's time: back to S3's, which nginx checks If-Unmodified-Since against.
        if fd >= 0, let modified = body.modified { try? FileSystem.setModificationTime(fd, seconds: modified) }
        body.finish(index, flight: flight, complete: false)
        tier.release(reserved, for: body)
        return false
    }
}

/// What the file tier did, for `/stats` and `/metrics`.
public final class FileTierStatistics: Sendable {
    public let hits = Atomic<Int>(0)
    public let evictions = Atomic<Int>(0)
    public let entriesCreated = Atomic<Int>(0)
    public let restoredEntries = Atomic<Int>(0)
    public let slicesFilled = Atomic<Int>(0)
    /// Bytes received from S3 for the tier (slice fetches and first downloads).
    public let bytesFetched = Atomic<Int>(0)
    /// Bytes nginx was told to send from files (X-Accel-Redirect).
    public let bytesRedirected = Atomic<Int>(0)
    /// Bytes the worker read from files and sent itself.
    public let bytesStreamed = Atomic<Int>(0)
    /// Answers handed to nginx.
    public let redirects = Atomic<Int>(0)
    public let ioErrors = Atomic<Int>(0)

    init() {}
}
