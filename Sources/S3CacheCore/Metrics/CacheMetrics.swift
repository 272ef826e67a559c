import CoreMetrics
import ObjectCache
import Synchronization

/// The cache's figures as Prometheus metrics.
///
/// `CacheStatistics` (lock-free atomics the hot path already updates, also behind `/stats`)
/// stays the one source of truth: at scrape time each counter is advanced by what its
/// statistic grew since the previous scrape, and the gauges are set to the current usage.
final class CacheMetrics: Sendable {
    private let counters: StatisticCounters<CacheStatistics>
    private let entries, bytes, capacity, originalBytes, storedBytes, compressionRatio, backendInFlight: CoreMetrics.Meter
    private let fileCounters: StatisticCounters<FileTierStatistics>
    private let fileEntries, fileBytes, fileCapacity: CoreMetrics.Meter

    init(_ registry: MetricsRegistry) {
        func tracked(
            _ name: String, _ help: String, labels: [(String, String)] = [], _ statistic: @escaping @Sendable (CacheStatistics) -> Int
        ) -> StatisticCounters<CacheStatistics>.Tracked {
            .init(registry, name, help: help, labels: labels, statistic)
        }
        counters = StatisticCounters([
            tracked("s3cache_cache_hits_total", "Requests answered from a fresh cache entry") { $0.hits.load(ordering: .relaxed) },
            tracked("s3cache_cache_misses_total", "Requests that fetched the object from S3") { $0.misses.load(ordering: .relaxed) },
            tracked("s3cache_cache_revalidations_total", "Expired entries renewed by a 304 from S3, without a download") {
                $0.revalidations.load(ordering: .relaxed)
            },
            tracked("s3cache_cache_revalidations_changed_total", "Expired entries S3 answered with a new version (200) when revalidated") {
                $0.revalidationsChanged.load(ordering: .relaxed)
            },
            tracked("s3cache_cache_stale_while_revalidate_total", "Expired entries served while another request revalidated them") {
                $0.staleWhileRevalidating.load(ordering: .relaxed)
            },
            tracked("s3cache_purges_total", "PURGE requests, by mode", labels: [("mode", "hard")]) {
                $0.hardPurges.load(ordering: .relaxed)
            },
            tracked("s3cache_purges_total", "PURGE requests, by mode", labels: [("mode", "soft")]) {
                $0.softPurges.load(ordering: .relaxed)
            },
            tracked("s3cache_purged_entries_total", "Cache entries dropped or expired by PURGE requests") {
                $0.purgedEntries.load(ordering: .relaxed)
            },
            tracked("s3cache_cache_stale_total", "Expired entries served because S3 failed (stale-if-error)") {
                $0.staleServes.load(ordering: .relaxed)
            },
            tracked("s3cache_cache_bypasses_total", "Reads streamed from S3 without caching (too large, ranges on a miss)") {
                $0.bypasses.load(ordering: .relaxed)
            },
            tracked("s3cache_cache_negative_hits_total", "Requests answered 404 from a remembered S3 404") {
                $0.negativeHits.load(ordering: .relaxed)
            },
            tracked("s3cache_cache_coalesced_total", "Requests served by another request's fetch (single flight)") {
                $0.coalesced.load(ordering: .relaxed)
            },
            tracked("s3cache_cache_evictions_total", "Entries evicted to stay within the byte bound") { $0.evictions.load(ordering: .relaxed) },
            tracked("s3cache_cache_expired_total", "Entries dropped by cleanup after their grace window") { $0.expired.load(ordering: .relaxed) },
            tracked("s3cache_backend_rejections_total", "Misses refused with 503 because too many requests were waiting on S3") {
                $0.backendRejections.load(ordering: .relaxed)
            },
            tracked("s3cache_cache_served_bytes_total", "Body bytes sent to clients from memory (origin bytes saved)") {
                $0.bytesServedFromCache.load(ordering: .relaxed)
            },
            tracked("s3cache_cache_fetched_bytes_total", "Body bytes received from S3 to fill the memory tier") {
                $0.bytesFetched.load(ordering: .relaxed)
            },
        ])
        entries = registry.gauge("s3cache_cache_entries", help: "Entries held, negative ones included")
        bytes = registry.gauge("s3cache_cache_bytes", help: "Bytes held, counted against the bound (bodies as stored, keys, metadata)")
        capacity = registry.gauge("s3cache_cache_capacity_bytes", help: "The cache's byte bound (MAX_CACHE_SIZE)")
        originalBytes = registry.gauge("s3cache_cache_original_bytes", help: "Sum of the cached objects' own sizes")
        storedBytes = registry.gauge("s3cache_cache_stored_bytes", help: "Sum of the cached bodies as stored (gzip where it pays)")
        compressionRatio = registry.gauge(
            "s3cache_cache_compression_ratio", help: "Stored body bytes divided by original bytes (1 when nothing is compressed)")
        backendInFlight = registry.gauge("s3cache_backend_in_flight", help: "Requests waiting on S3 right now")
        func file(_ name: String, _ help: String, _ statistic: @escaping @Sendable (FileTierStatistics) -> Int)
            -> StatisticCounters<FileTierStatistics>.Tracked
        {
            .init(registry, name, help: help, statistic)
        }
        fileCounters = StatisticCounters([
            file("s3cache_file_hits_total", "Requests answered from the file tier") { $0.hits.load(ordering: .relaxed) },
            file("s3cache_file_entries_created_total", "Objects given a body in the file tier (first fetches)") {
                $0.entriesCreated.load(ordering: .relaxed)
            },
            file("s3cache_file_slices_filled_total", "Slices fetched from S3 and stored in the file tier") {
                $0.slicesFilled.load(ordering: .relaxed)
            },
            file("s3cache_file_evictions_total", "File-tier bodies removed to stay within CACHE_DIR_SIZE or replaced") {
                $0.evictions.load(ordering: .relaxed)
            },
            file("s3cache_file_fetched_bytes_total", "Bytes received from S3 for the file tier") { $0.bytesFetched.load(ordering: .relaxed) },
            file("s3cache_file_redirected_bytes_total", "Bytes nginx sent from files (X-Accel-Redirect)") {
                $0.bytesRedirected.load(ordering: .relaxed)
            },
            file("s3cache_file_streamed_bytes_total", "Bytes the worker read from files and sent itself") {
                $0.bytesStreamed.load(ordering: .relaxed)
            },
            file("s3cache_file_redirects_total", "Answers handed to nginx to send from a file") { $0.redirects.load(ordering: .relaxed) },
            file("s3cache_file_io_errors_total", "Failed file-tier writes and reads (the response streamed from S3 instead)") {
                $0.ioErrors.load(ordering: .relaxed)
            },
        ])
        fileEntries = registry.gauge("s3cache_file_entries", help: "Objects held in the file tier")
        fileBytes = registry.gauge("s3cache_file_bytes", help: "Bytes the file tier holds on disk, counted against CACHE_DIR_SIZE")
        fileCapacity = registry.gauge("s3cache_file_capacity_bytes", help: "The file tier's byte bound (CACHE_DIR_SIZE)")
    }

    func update(from cache: ObjectCache?, backendInFlight inFlight: Int) {
        backendInFlight.set(inFlight)
        guard let cache else { return }
        counters.update(from: cache.statistics)
        let usage = cache.usage()
        entries.set(usage.entries)
        bytes.set(usage.bytes)
        capacity.set(cache.settings.capacity)
        originalBytes.set(usage.originalBytes)
        storedBytes.set(usage.storedBodyBytes)
        compressionRatio.set(usage.originalBytes > 0 ? Double(usage.storedBodyBytes) / Double(usage.originalBytes) : 1)
        if let files = cache.files {
            fileCounters.update(from: files.statistics)
            let fileUsage = files.usage()
            fileEntries.set(fileUsage.entries)
            fileBytes.set(fileUsage.bytes)
            fileCapacity.set(files.capacity)
        }
    }
}

/// Prometheus counters that follow lock-free statistics (the one source of truth, also behind
/// `/stats`): at scrape time each counter advances by what its statistic grew since the last.
final class StatisticCounters<Source>: Sendable {
    struct Tracked: Sendable {
        let counter: CoreMetrics.Counter
        let statistic: @Sendable (Source) -> Int

        /// A counter registered under `name` that follows `statistic`.
        init(
            _ registry: MetricsRegistry, _ name: String, help: String, labels: [(String, String)] = [],
            _ statistic: @escaping @Sendable (Source) -> Int
        ) {
            counter = registry.counter(name, help: help, labels: labels)
            self.statistic = statistic
        }
    }

    private let counters: [Tracked]
    private let lastSeen: Mutex<[Int]>

    init(_ counters: [Tracked]) {
        self.counters = counters
        lastSeen = Mutex([Int](repeating: 0, count: counters.count))
    }

    func update(from source: Source) {
        lastSeen.withLock { seen in
            for (index, tracked) in counters.enumerated() {
                let value = tracked.statistic(source)
                if value > seen[index] { tracked.counter.increment(by: Int64(value - seen[index])) }
                seen[index] = value
            }
        }
    }
}
