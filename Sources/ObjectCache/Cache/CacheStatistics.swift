public import Synchronization

/// Counters of what the cache did, updated without locks.
public final class CacheStatistics: Sendable {
    /// Served from a fresh entry.
    public let hits = Atomic<Int>(0)
    /// Fetched from S3 (no usable entry).
    public let misses = Atomic<Int>(0)
    /// Expired entry confirmed by a 304: renewed without downloading the body.
    public let revalidations = Atomic<Int>(0)
    /// Expired entry answered by S3 with a new version (200) when revalidated.
    public let revalidationsChanged = Atomic<Int>(0)
    /// Expired entry served while another request revalidated it (stale-while-revalidate).
    public let staleWhileRevalidating = Atomic<Int>(0)
    /// Purges that dropped entries.
    public let hardPurges = Atomic<Int>(0)
    /// Purges that expired entries (`Purge-Mode: soft`).
    public let softPurges = Atomic<Int>(0)
    /// Entries dropped or expired by purges.
    public let purgedEntries = Atomic<Int>(0)
    /// Expired entry served because S3 failed (stale-if-error).
    public let staleServes = Atomic<Int>(0)
    /// Streamed through without caching (too large, ranges on a miss, or refused by the policy).
    public let bypasses = Atomic<Int>(0)
    /// Answered from a remembered 404.
    public let negativeHits = Atomic<Int>(0)
    /// Requests that waited for another request's fetch instead of making their own.
    public let coalesced = Atomic<Int>(0)
    /// Entries pushed out by the eviction policy to make room.
    public let evictions = Atomic<Int>(0)
    /// Entries dropped by cleanup after their grace window.
    public let expired = Atomic<Int>(0)
    /// Misses refused with 503 because too many requests were already waiting on S3.
    public let backendRejections = Atomic<Int>(0)
    /// Body bytes sent to clients from memory.
    public let bytesServedFromCache = Atomic<Int>(0)
    /// Body bytes received from S3 by fills for the heap tier (whole-object misses and
    /// revalidations that changed; the file tier counts its own).
    public let bytesFetched = Atomic<Int>(0)

    public init() {}
}
