public import ObjectCache
public import Prometheus
import Synchronization
public import Platform

/// What every worker thread shares: the configuration in force, the cache, the bound on
/// requests waiting for S3, the metrics and the readiness result.
public final class SharedState: Sendable {
    public let live: LiveConfiguration
    /// Nil when caching is off.
    public let cache: ObjectCache?
    let gate: BackendGate
    /// Bounds the PUTs in progress (`UPLOAD_CONCURRENCY`), apart from reads.
    let uploadGate: BackendGate
    /// Bytes the cache fills in flight may hold (`FILL_BUDGET`).
    let fillBudget: FillBudget
    public let metrics: GatewayMetrics
    public let notificationStatistics = NotificationStatistics()
    let readiness: Readiness
    /// The least severe level logged, access log included; a reload changes it.
    public let logLevel: LogLevelSetting
    /// Why the file tier is off although `CACHE_DIR` names one (logged at start).
    public let fileTierError: SystemError?

    public init(
        configuration: Configuration, logLevel: LogLevelSetting? = nil, clock: any CacheClock = MonotonicClock(),
        metricsRegistry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), readinessInterval: Double = 3,
        reportFileFailure: @escaping @Sendable (SystemError) -> Void = { _ in }
    ) {
        live = LiveConfiguration(configuration)
        self.logLevel = logLevel ?? LogLevelSetting(configuration.logLevel)
        var files: FileTier?
        var fileTierError: SystemError?
        if configuration.maxCacheSize > 0, !configuration.cacheDirectory.isEmpty, configuration.cacheDirectorySize > 0 {
            do {
                files = try FileTier(
                    directory: configuration.cacheDirectory, capacity: Int(configuration.cacheDirectorySize),
                    sliceSize: Int(configuration.sliceSize), reportFailure: reportFileFailure)
            } catch {
                fileTierError = error
            }
        }
        self.fileTierError = fileTierError
        cache = configuration.maxCacheSize > 0 ? ObjectCache(settings: configuration.cacheSettings, clock: clock, files: files) : nil
        gate = BackendGate(limit: configuration.backendConcurrency)
        uploadGate = BackendGate(limit: configuration.uploadConcurrency)
        fillBudget = FillBudget(limit: Int(configuration.fillBudget))
        metrics = GatewayMetrics(registry: metricsRegistry, version: S3CacheVersion.current)
        readiness = Readiness(interval: readinessInterval)
    }

    /// Puts a re-read configuration in force (SIGHUP): bucket rules, credentials, endpoint and
    /// timeouts through the next request of each thread, the cache's timing at once.
    ///
    /// - Returns: the variables whose change needs a restart (they keep their current values).
    public func reload(_ configuration: Configuration) -> [String] {
        let deferred = live.apply(configuration)
        logLevel.value = live.current.logLevel
        cache?.updateTiming(live.current.cacheSettings)
        metrics.recordReload(applied: true)
        return deferred
    }

    /// `GET /metrics`.
    func metricsText() -> [UInt8] {
        metrics.render(cache: cache, notifications: notificationStatistics, backendInFlight: gate.current)
    }

    /// `GET /stats`.
    func statisticsJSON() -> String {
        let notified = notificationStatistics
        let notifications = JSON.Value.object([
            ("accepted", .int(Int64(notified.received.load(ordering: .relaxed)))),
            ("refused", .int(Int64(notified.refused.load(ordering: .relaxed)))),
            ("events_applied", .int(Int64(notified.eventsApplied.load(ordering: .relaxed)))),
            ("events_ignored", .int(Int64(notified.eventsIgnored.load(ordering: .relaxed)))),
            ("sns_confirmations", .int(Int64(notified.confirmations.load(ordering: .relaxed)))),
        ])
        guard let cache else {
            return JSON.object([
                ("enabled", .bool(false)), ("backend_in_flight", .int(Int64(gate.current))), ("notifications", notifications),
            ])
        }
        let usage = cache.usage()
        let stats = cache.statistics
        func count(_ counter: borrowing Atomic<Int>) -> JSON.Value { .int(Int64(counter.load(ordering: .relaxed))) }
        let hits = stats.hits.load(ordering: .relaxed), misses = stats.misses.load(ordering: .relaxed)
        // Requests answered without a request to S3 of their own. Revalidations still ask S3 (and
        // save only the body), stale answers follow a request that failed: neither counts.
        let saved = hits + stats.negativeHits.load(ordering: .relaxed) + stats.coalesced.load(ordering: .relaxed)
        let ratio = usage.originalBytes > 0 ? Double(usage.storedBodyBytes) / Double(usage.originalBytes) : 1
        return JSON.object([
            ("enabled", .bool(true)),
            ("policy", .string(cache.settings.policy.rawValue)),
            ("entries", .int(Int64(usage.entries))),
            ("bytes", .int(Int64(usage.bytes))),
            ("bound_bytes", .int(Int64(cache.settings.capacity))),
            ("max_object_bytes", .int(Int64(cache.settings.maxObjectSize))),
            ("hits", count(stats.hits)),
            ("misses", count(stats.misses)),
            ("negative_hits", count(stats.negativeHits)),
            ("revalidations", count(stats.revalidations)),
            ("revalidations_changed", count(stats.revalidationsChanged)),
            ("stale_while_revalidate", count(stats.staleWhileRevalidating)),
            ("purges", .object([("hard", count(stats.hardPurges)), ("soft", count(stats.softPurges))])),
            ("purged_entries", count(stats.purgedEntries)),
            ("stale_serves", count(stats.staleServes)),
            ("bypasses", count(stats.bypasses)),
            ("coalesced", count(stats.coalesced)),
            ("evictions", count(stats.evictions)),
            ("expired", count(stats.expired)),
            ("backend_rejections", count(stats.backendRejections)),
            ("backend_in_flight", .int(Int64(gate.current))),
            ("uploads_in_flight", .int(Int64(uploadGate.current))),
            ("fill_bytes_in_flight", .int(Int64(fillBudget.current))),
            ("fill_budget_bytes", .int(Int64(fillBudget.limit))),
            ("hit_ratio", .double(hits + misses > 0 ? Double(hits) / Double(hits + misses) : 0)),
            ("compression_ratio", .double(ratio)),
            ("original_bytes", .int(Int64(usage.originalBytes))),
            ("stored_body_bytes", .int(Int64(usage.storedBodyBytes))),
            ("bytes_served_from_cache", count(stats.bytesServedFromCache)),
            ("bytes_fetched", count(stats.bytesFetched)),
            ("backend_fetches_saved", .int(Int64(saved))),
            ("files", fileStatistics(cache.files)),
            ("notifications", notifications),
        ])
    }

    /// The file tier's part of `/stats`.
    private func fileStatistics(_ files: FileTier?) -> JSON.Value {
        guard let files else { return .object([("enabled", .bool(false))]) }
        let usage = files.usage()
        let stats = files.statistics
        func count(_ counter: borrowing Atomic<Int>) -> JSON.Value { .int(Int64(counter.load(ordering: .relaxed))) }
        return .object([
            ("enabled", .bool(true)),
            ("directory", .string(files.root)),
            ("entries", .int(Int64(usage.entries))),
            ("bytes", .int(Int64(usage.bytes))),
            ("bound_bytes", .int(Int64(files.capacity))),
            ("slice_bytes", .int(Int64(files.sliceSize))),
            ("hits", count(stats.hits)),
            ("entries_created", count(stats.entriesCreated)),
            ("restored_entries", count(stats.restoredEntries)),
            ("slices_filled", count(stats.slicesFilled)),
            ("evictions", count(stats.evictions)),
            ("bytes_fetched", count(stats.bytesFetched)),
            ("redirects", count(stats.redirects)),
            ("bytes_redirected", count(stats.bytesRedirected)),
            ("bytes_streamed", count(stats.bytesStreamed)),
            ("io_errors", count(stats.ioErrors)),
        ])
    }
}
