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

    public init(settings: CacheSettings, clock: any CacheClock = MonotonicClock()) {
        self.settings = settings
        self.clock = clock
        timing = Mutex(CacheTiming(ttl: settings.ttl, negativeTTL: settings.negativeTTL, staleGrace: settings.staleGrace))
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
            let record = state.policy.get(key)
            if let record, record.isFresh(at: now) { return .hit(record) }
            let stale = record.flatMap { now < $0.keepUntil ? $0 : nil }
            if let flight = state.flights[key] { return .follower(flight, stale: stale) }
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
            guard let record = state.policy.get(key), record.isFresh(at: now) else { return nil }
            return record
        }
    }

    /// An expired entry for `key` that may still be served when S3 fails or is busy (within its
    /// grace window), without counting an access.
    public func staleRecord(_ key: CacheKey) -> CacheRecord? {
        let now = clock.now()
        return shard(for: key).state.withLock { state in
            guard let record = state.policy.peek(key), now < record.keepUntil else { return nil }
            return record
        }
    }

    /// The entry for `key` if one is held (fresh or not), without counting an access.
    public func peek(_ key: CacheKey) -> CacheRecord? {
        shard(for: key).state.withLock { $0.policy.peek(key) }
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
        flight.finish(outcome)
    }

    /// Forgets `key` and supersedes any fetch of it in flight, so that no response read from
    /// S3 before a write can be stored after it. Called once a PUT or DELETE has reached S3.
    public func invalidate(_ key: CacheKey) {
        shard(for: key).state.withLock { state in
            state.remove(key, statistics: statistics)
            if let flight = state.flights.removeValue(forKey: key) { flight.supersede() }
        }
    }

    /// Drops entries past their grace window (expired but still revalidatable ones stay).
    /// Returns how many were dropped.
    @discardableResult
    public func removeExpired() -> Int {
        let now = clock.now()
        var removed = 0
        for shard in shards {
            removed += shard.state.withLock { state in
                let expired = state.policy.entries().filter { $0.value.keepUntil <= now }.map(\.key)
                for key in expired { state.remove(key, statistics: statistics) }
                return expired.count
            }
        }
        statistics.expired.add(removed, ordering: .relaxed)
        return removed
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

    /// A fresh record for a fetched object or a 404, timed by the settings.
    public func makeRecord(_ state: CachedState, key: CacheKey) -> CacheRecord {
        let now = clock.now()
        let timing = timing.withLock { $0 }
        switch state {
        case .object:
            return CacheRecord(state: state, key: key, freshUntil: now + timing.ttl, keepUntil: now + timing.ttl + timing.staleGrace)
        case .missing:
            return CacheRecord(state: state, key: key, freshUntil: now + timing.negativeTTL, keepUntil: now + timing.negativeTTL)
        }
    }

    /// `record` with its freshness restarted (after a 304 from S3), holding `state` (the same
    /// bytes, with the metadata the 304 reported) when given.
    public func renew(_ record: CacheRecord, key: CacheKey, state: CachedState? = nil) -> CacheRecord {
        let now = clock.now()
        let timing = timing.withLock { $0 }
        return record.renewed(
            state ?? record.state, key: key, freshUntil: now + timing.ttl, keepUntil: now + timing.ttl + timing.staleGrace)
    }

    /// Changes how long new and renewed entries stay fresh (a configuration reload). Entries
    /// already held keep the times they were given.
    public func updateTiming(ttl: Double, negativeTTL: Double, staleGrace: Double) {
        timing.withLock { $0 = CacheTiming(ttl: ttl, negativeTTL: negativeTTL, staleGrace: staleGrace) }
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

    func entries() -> [(key: Key, value: Value)] {
        switch self {
        case let .lru(policy): return policy.entries()
        case let .s3fifo(policy): return policy.entries()
        }
    }
}
