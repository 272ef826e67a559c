import Platform
import Synchronization

/// The byte-bounded, sharded, single-flight object cache.
///
/// Keys hash to shards, each with its own lock, eviction policy and table of fetches in
/// flight, so threads working on different keys rarely meet. Every operation under a shard
/// lock is O(1) except `removeExpired`, which walks one shard at a time.
public final class ObjectCache: Sendable {
    /// The bounds and policy the cache was built with; the timing in it is the initial one
    /// (see `updateTiming`).
    public let settings: CacheSettings
    public let clock: any CacheClock
    public let statistics = CacheStatistics()
    private let shards: [Shard]
    private let timing: Mutex<CacheTiming>
    /// Where large objects live (`CACHE_DIR`); nil without one. Its bodies are found through
    /// this cache's records, rebuilt from the tier's own when a record is not held (after a
    /// restart, or once the heap evicted it).
    public let files: FileTier?

    public init(settings: CacheSettings, clock: any CacheClock = MonotonicClock(), files: FileTier? = nil) {
        self.settings = settings
        self.clock = clock
        self.files = files
        timing = Mutex(settings.timing)
        let count = settings.shardCount
        shards = (0..<count).map { _ in Shard(capacity: settings.capacity / count, policy: settings.policy) }
    }

    /// What a request should do for a key.
    public enum Access {
        /// A fresh entry: answer from it.
        case hit(CacheRecord)
        /// Nobody is fetching: this request fetches and must call `complete` (also on failure).
        /// `stale` is an expired entry to revalidate, or nil on a plain miss.
        case leader(Flight, stale: CacheRecord?)
        /// Another request is fetching this key: wait on the flight.
        case follower(Flight, stale: CacheRecord?)
        /// Another request is revalidating this expired entry, which may answer meanwhile
        /// (stale-while-revalidate).
        case revalidating(CacheRecord)
        /// Nobody is fetching, and `reserveFetch` refused this request the right to.
        case refused(stale: CacheRecord?)
    }

    /// Looks the key up and, when it is not fresh, joins or starts its flight, atomically:
    /// between a miss and the start of a fetch no other request can start a second one.
    ///
    /// - Parameter reserveFetch: called under the shard lock before a flight is started; false
    ///   refuses the request (`.refused`). A leader therefore holds whatever it reserves before
    ///   any follower can find its flight, and followers cannot use up what the leader needs.
    public func access(_ key: CacheKey, reserveFetch: () -> Bool = { true }) -> Access {
        let now = clock.now()
        return shard(for: key).state.withLock { state in
            let record = lookup(&state, key, now: now, counting: true)
            if let record, record.isFresh(at: now) { return .hit(record) }
            let stale = record.flatMap { now < $0.keepUntil ? $0 : nil }
            if let flight = state.flights[key] {
                if let stale, stale.servesWhileRevalidating(at: now) { return .revalidating(stale) }
                return .follower(flight, stale: stale)
            }
            guard reserveFetch() else { return .refused(stale: stale) }
            let flight = Flight()
            state.flights[key] = flight
            return .leader(flight, stale: stale)
        }
    }

    /// The entry for `key` when it is fresh, counting the access (for HEAD and ranges, which
    /// never start a fetch of their own).
    public func freshRecord(_ key: CacheKey) -> CacheRecord? {
        let now = clock.now()
        return shard(for: key).state.withLock { state in
            guard let record = lookup(&state, key, now: now, counting: true), record.isFresh(at: now) else { return nil }
            return record
        }
    }

    /// An expired entry for `key` that may still be served when S3 fails or is busy (within its
    /// grace window), without counting an access.
    public func staleRecord(_ key: CacheKey) -> CacheRecord? {
        let now = clock.now()
        return shard(for: key).state.withLock { state in
            guard let record = lookup(&state, key, now: now, counting: false), now < record.keepUntil else { return nil }
            return record
        }
    }

    /// The entry for `key` if one is held (fresh or not), without counting an access.
    public func peek(_ key: CacheKey) -> CacheRecord? {
        let now = clock.now()
        return shard(for: key).state.withLock { lookup(&$0, key, now: now, counting: false) }
    }

    /// The record for `key`: the heap's, unless it names a file body that left the tier; else
    /// one rebuilt from the file tier's body for the key, which is then held again.
    private func lookup(_ state: inout ShardState, _ key: CacheKey, now: Double, counting: Bool) -> CacheRecord? {
        let held = counting ? state.policy.get(key) : state.policy.peek(key)
        if let held {
            guard case let .file(file) = held.state, !file.body.isLive else { return held }
            state.remove(key, statistics: statistics)
        }
        guard let files, let body = files.body(for: key) else { return nil }
        let timing = body.timing
        let offset = wallClockSeconds() - now
        guard timing.keepUntil - offset > now else {
            files.remove(body)
            return nil
        }
        let record = CacheRecord(
            state: .file(CachedFile(body: body, metadata: body.metadata)), key: key, freshUntil: timing.freshUntil - offset,
            keepUntil: timing.keepUntil - offset, revalidatingUntil: timing.revalidatingUntil - offset)
        state.insert(key, record, statistics: statistics)
        return record
    }

    /// A new, empty file body for a large object, to be filled as it is fetched; nil without a
    /// file tier or when it cannot be stored there. Its record is written with the entry's
    /// timing when the fetch completes (`complete`).
    public func createFile(_ key: CacheKey, length: Int, metadata: ObjectMetadata, modified: Int?) -> FileBody? {
        files?.create(
            key: key, length: length, metadata: metadata, modified: modified,
            timing: WallTiming(freshUntil: 0, revalidatingUntil: 0, keepUntil: 0))
    }

    /// Ends a flight: stores the record (unless an invalidation superseded the flight) and
    /// wakes the followers with `outcome`.
    public func complete(_ flight: Flight, key: CacheKey, outcome: Flight.Outcome) {
        shard(for: key).state.withLock { state in
            if state.flights[key] === flight { state.flights[key] = nil }
            if case let .record(record) = outcome, !flight.isSuperseded {
                state.insert(key, record, statistics: statistics)
            }
        }
        if case let .record(record) = outcome, case let .file(file) = record.state {
            if flight.isSuperseded {
                files?.remove(file.body)
            } else {
                files?.update(file.body, metadata: file.metadata, timing: wallTiming(record))
            }
        }
        flight.finish(outcome)
    }

    /// Forgets `key` and supersedes any fetch of it in flight, so that no response read from
    /// S3 before a write can be stored after it. Called once a PUT or DELETE has reached S3.
    public func invalidate(_ key: CacheKey) {
        shard(for: key).state.withLock { state in
            state.remove(key, statistics: statistics)
            if let flight = state.flights.removeValue(forKey: key) { flight.supersede() }
            files?.remove(key)
        }
    }

    /// Forgets `key` if its record still names `body` (S3 said the object changed while a
    /// slice was fetched): the next request starts over with the new version.
    public func invalidate(_ key: CacheKey, body: FileBody) {
        shard(for: key).state.withLock { state in
            if let record = state.policy.peek(key), case let .file(file) = record.state, file.body === body {
                state.remove(key, statistics: statistics)
            }
            files?.remove(body)
        }
    }

    /// Drops entries past their grace window (expired but still revalidatable ones stay).
    /// Returns how many were dropped.
    @discardableResult
    public func removeExpired() -> Int {
        let now = clock.now()
        var removed = 0
        for shard in shards {
            sweep(shard) { state, key, record in
                guard record.keepUntil <= now else { return }
                state.remove(key, statistics: statistics)
                removed += 1
            }
        }
        statistics.expired.add(removed, ordering: .relaxed)
        return removed
    }

    /// Drops (`.hard`) or expires (`.soft`) the entries `scope` names, and supersedes their
    /// fetches in flight as a write does: nothing S3 sent before the purge is stored after it.
    /// Returns how many entries were held.
    ///
    /// A prefix purge walks each shard a range of slots at a time, so hits on that shard wait
    /// for one range at most, however many entries there are.
    @discardableResult
    public func purge(_ scope: PurgeScope, mode: PurgeMode) -> Int {
        let now = clock.now()
        var purged = 0
        func apply(_ state: inout ShardState, _ key: CacheKey, _ record: CacheRecord) {
            switch mode {
            case .hard: state.remove(key, statistics: statistics)
            case .soft: _ = state.policy.replace(key, value: record.expired(at: now))
            }
            purged += 1
        }
        // File bodies first, whether or not the heap holds their records: a soft purge expires
        // them on disk too, a hard one removes them.
        if let files {
            let bodies = switch scope {
            case let .key(key): files.body(for: key).map { [$0] } ?? []
            case let .prefix(prefix): files.bodies(withPrefix: prefix)
            }
            for body in bodies {
                switch mode {
                case .hard: files.remove(body)
                case .soft:
                    var timing = body.timing
                    let wallNow = wallClockSeconds()
                    timing.freshUntil = min(timing.freshUntil, wallNow)
                    timing.revalidatingUntil = min(timing.revalidatingUntil, wallNow)
                    files.update(body, metadata: body.metadata, timing: timing)
                }
            }
        }
        switch scope {
        case let .key(key):
            shard(for: key).state.withLock { state in
                if let flight = state.flights.removeValue(forKey: key) { flight.supersede() }
                if let record = state.policy.peek(key) { apply(&state, key, record) }
            }
        case let .prefix(prefix):
            for shard in shards {
                shard.state.withLock { state in
                    for (key, flight) in state.flights where key.hasPrefix(prefix) {
                        flight.supersede()
                        state.flights[key] = nil
                    }
                }
                sweep(shard) { state, key, record in
                    if key.hasPrefix(prefix) { apply(&state, key, record) }
                }
            }
        }
        switch mode {
        case .hard: statistics.hardPurges.add(1, ordering: .relaxed)
        case .soft: statistics.softPurges.add(1, ordering: .relaxed)
        }
        statistics.purgedEntries.add(purged, ordering: .relaxed)
        return purged
    }

    /// Entries visited per hold of a shard's lock by `sweep`: under a millisecond of work (a hard
    /// purge of 1,024 entries takes about 0.9 ms on the 2-core test VM).
    static let sweepChunk = 1024

    /// Calls `visit` for every entry of `shard`, taking its lock once per `sweepChunk` slots and
    /// pausing in between so that waiting hits get it (`pauseForLockWaiters`).
    private func sweep(_ shard: Shard, _ visit: (inout ShardState, CacheKey, CacheRecord) -> Void) {
        var start = 0
        var more = true
        while more {
            more = shard.state.withLock { state in
                let end = start + Self.sweepChunk
                for (key, record) in state.policy.entries(inSlots: start..<end) { visit(&state, key, record) }
                return end < state.policy.slotCount
            }
            start += Self.sweepChunk
            if more { pauseForLockWaiters() }
        }
    }

    /// Entries and bytes held right now, summed over the shards.
    public func usage() -> CacheUsage {
        shards.reduce(into: CacheUsage()) { total, shard in
            shard.state.withLock { state in
                total.entries += state.policy.count
                total.bytes += state.policy.totalCost
                total.originalBytes += state.originalBytes
                total.storedBodyBytes += state.storedBodyBytes
            }
        }
    }

    /// A fresh record for a fetched object or a 404, timed by `freshness` (the object's own
    /// `Cache-Control`) where it speaks, and by the settings elsewhere.
    public func makeRecord(_ state: CachedState, key: CacheKey, freshness: Freshness = .configured) -> CacheRecord {
        let now = clock.now()
        let timing = timing.withLock { $0 }
        switch state {
        case .object, .file:
            let ttl = freshness.ttl.map { min(max(0, $0), timing.maxTTL) } ?? timing.ttl
            let window = max(0, freshness.staleWhileRevalidate ?? timing.staleWhileRevalidate)
            return CacheRecord(
                state: state, key: key, freshUntil: now + ttl, keepUntil: now + ttl + timing.staleGrace,
                revalidatingUntil: now + ttl + window)
        case .missing:
            return CacheRecord(state: state, key: key, freshUntil: now + timing.negativeTTL, keepUntil: now + timing.negativeTTL)
        }
    }

    /// Changes how long new and renewed entries stay fresh (a configuration reload). Entries
    /// already held keep the times they were given.
    public func updateTiming(_ settings: CacheSettings) {
        timing.withLock { $0 = settings.timing }
    }

    /// `record`'s timing in wall-clock seconds, as the file tier keeps it across restarts.
    private func wallTiming(_ record: CacheRecord) -> WallTiming {
        let offset = wallClockSeconds() - clock.now()
        return WallTiming(
            freshUntil: record.freshUntil + offset, revalidatingUntil: record.revalidatingUntil + offset,
            keepUntil: record.keepUntil + offset)
    }

    private func shard(for key: CacheKey) -> Shard {
        shards[Int(UInt(bitPattern: key.hashValue) & UInt(shards.count - 1))]
    }
}

/// Seconds an entry stays fresh, and kept after that; changed live by a reload.
struct CacheTiming {
    var ttl: Double
    var negativeTTL: Double
    var staleGrace: Double
    var staleWhileRevalidate: Double
    var maxTTL: Double
}

/// Which entries a purge takes.
public enum PurgeScope: Sendable, Equatable {
    /// One key.
    case key(CacheKey)
    /// Every key that starts with these bytes (`bucket/` for a whole bucket).
    case prefix(String)
}

/// What a purge does to the entries it takes.
public enum PurgeMode: String, Sendable {
    /// Drop them: the next read downloads the object.
    case hard
    /// Expire them: the next read revalidates (a 304 costs no download), and the copy stays
    /// for stale-if-error.
    case soft
}

/// Entries and bytes held.
public struct CacheUsage: Sendable, Equatable {
    public var entries = 0
    /// Everything charged to the bound.
    public var bytes = 0
    /// Sum of the objects' own lengths, for the compression ratio.
    public var originalBytes = 0
    /// Sum of the stored bodies' lengths (compressed or not).
    public var storedBodyBytes = 0
}

final class Shard: Sendable {
    let state: AdaptiveLock<ShardState>

    init(capacity: Int, policy: EvictionPolicyKind) {
        state = AdaptiveLock(ShardState(policy: AnyEvictionPolicy(policy, capacity: capacity)))
    }
}

struct ShardState {
    var policy: AnyEvictionPolicy<CacheKey, CacheRecord>
    var flights: [CacheKey: Flight] = [:]
    var originalBytes = 0
    var storedBodyBytes = 0

    mutating func insert(_ key: CacheKey, _ record: CacheRecord, statistics: CacheStatistics) {
        let displaced = policy.insert(key, value: record, cost: record.cost)
        account(record, sign: 1)
        for (displacedKey, value) in displaced {
            account(value, sign: -1)
            if displacedKey != key { statistics.evictions.add(1, ordering: .relaxed) }
        }
    }

    mutating func remove(_ key: CacheKey, statistics: CacheStatistics) {
        if let record = policy.remove(key) { account(record, sign: -1) }
    }

    private mutating func account(_ record: CacheRecord, sign: Int) {
        guard case let .object(object) = record.state else { return }
        originalBytes += sign * object.originalLength
        storedBodyBytes += sign * object.body.count
    }
}

/// The configured policy behind one concrete type, so the shard's calls are direct, not
/// through an existential.
enum AnyEvictionPolicy<Key: Hashable, Value> {
    case lru(LRUPolicy<Key, Value>)
    case s3fifo(S3FIFOPolicy<Key, Value>)

    init(_ kind: EvictionPolicyKind, capacity: Int) {
        switch kind {
        case .lru: self = .lru(LRUPolicy(capacity: capacity))
        case .s3fifo: self = .s3fifo(S3FIFOPolicy(capacity: capacity))
        }
    }

    var count: Int {
        switch self {
        case let .lru(policy): return policy.count
        case let .s3fifo(policy): return policy.count
        }
    }

    var totalCost: Int {
        switch self {
        case let .lru(policy): return policy.totalCost
        case let .s3fifo(policy): return policy.totalCost
        }
    }

    mutating func get(_ key: Key) -> Value? {
        switch self {
        case var .lru(policy):
            self = .lru(LRUPolicy(capacity: 0))  // release our copy so the mutation below stays in place
            defer { self = .lru(policy) }
            return policy.get(key)
        case var .s3fifo(policy):
            self = .s3fifo(S3FIFOPolicy(capacity: 0))
            defer { self = .s3fifo(policy) }
            return policy.get(key)
        }
    }

    func peek(_ key: Key) -> Value? {
        switch self {
        case let .lru(policy): return policy.peek(key)
        case let .s3fifo(policy): return policy.peek(key)
        }
    }

    mutating func insert(_ key: Key, value: Value, cost: Int) -> [(key: Key, value: Value)] {
        switch self {
        case var .lru(policy):
            self = .lru(LRUPolicy(capacity: 0))
            defer { self = .lru(policy) }
            return policy.insert(key, value: value, cost: cost)
        case var .s3fifo(policy):
            self = .s3fifo(S3FIFOPolicy(capacity: 0))
            defer { self = .s3fifo(policy) }
            return policy.insert(key, value: value, cost: cost)
        }
    }

    mutating func remove(_ key: Key) -> Value? {
        switch self {
        case var .lru(policy):
            self = .lru(LRUPolicy(capacity: 0))
            defer { self = .lru(policy) }
            return policy.remove(key)
        case var .s3fifo(policy):
            self = .s3fifo(S3FIFOPolicy(capacity: 0))
            defer { self = .s3fifo(policy) }
            return policy.remove(key)
        }
    }

    var slotCount: Int {
        switch self {
        case let .lru(policy): return policy.slotCount
        case let .s3fifo(policy): return policy.slotCount
        }
    }

    func entries(inSlots range: Range<Int>) -> [(key: Key, value: Value)] {
        switch self {
        case let .lru(policy): return policy.entries(inSlots: range)
        case let .s3fifo(policy): return policy.entries(inSlots: range)
        }
    }

    mutating func replace(_ key: Key, value: Value) -> Bool {
        switch self {
        case var .lru(policy):
            self = .lru(LRUPolicy(capacity: 0))
            defer { self = .lru(policy) }
            return policy.replace(key, value: value)
        case var .s3fifo(policy):
            self = .s3fifo(S3FIFOPolicy(capacity: 0))
            defer { self = .s3fifo(policy) }
            return policy.replace(key, value: value)
        }
    }
}
