/// How the object cache is bounded and timed.
public struct CacheSettings: Sendable, Equatable {
    /// Bytes the cache may hold, everything counted (`MAX_CACHE_SIZE`).
    public var capacity: Int
    /// Largest object kept; larger ones stream through (`MAX_OBJECT_SIZE`).
    public var maxObjectSize: Int
    /// Seconds an entry is served without asking S3 (`CACHE_TTL`).
    public var ttl: Double
    /// Seconds a 404 from S3 is remembered (`NEGATIVE_TTL`).
    public var negativeTTL: Double
    /// Seconds past expiry an entry is kept to revalidate it, or to serve it when S3 fails (`STALE_IF_ERROR`).
    public var staleGrace: Double
    /// Seconds after expiry during which, while one request revalidates an entry, the others
    /// are answered from the expired copy at once (`CACHE_SWR`), unless the object says otherwise.
    public var staleWhileRevalidate: Double
    /// Longest freshness an object's own `Cache-Control` or `Expires` may give it (`CACHE_TTL_MAX`).
    public var maxTTL: Double
    public var policy: EvictionPolicyKind

    public init(
        capacity: Int, maxObjectSize: Int, ttl: Double = 300, negativeTTL: Double = 10, staleGrace: Double = 3600,
        staleWhileRevalidate: Double = 10, maxTTL: Double = 86_400, policy: EvictionPolicyKind = .s3fifo
    ) {
        self.capacity = capacity
        self.maxObjectSize = maxObjectSize
        self.ttl = ttl
        self.negativeTTL = negativeTTL
        self.staleGrace = staleGrace
        self.staleWhileRevalidate = staleWhileRevalidate
        self.maxTTL = maxTTL
        self.policy = policy
    }

    /// The part of the settings a reload may change.
    var timing: CacheTiming {
        CacheTiming(
            ttl: ttl, negativeTTL: negativeTTL, staleGrace: staleGrace, staleWhileRevalidate: staleWhileRevalidate, maxTTL: maxTTL)
    }

    /// Number of independently locked shards: as many as possible (up to 64) while each
    /// shard's budget still fits the largest cacheable object. Always a power of two.
    var shardCount: Int {
        // An S3-FIFO shard keeps a thirty-second of its budget for its ghost list.
        let usable = capacity - capacity / 32
        let fit = maxObjectSize > 0 ? usable / max(maxObjectSize + CacheRecord.overhead + 2048, 1) : 64
        var count = 1
        while count * 2 <= min(64, fit) { count *= 2 }
        return count
    }
}
