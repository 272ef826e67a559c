#if canImport(Glibc)
import Glibc
#endif
import CLinux
import FastCGI
public import Logging
import ObjectCache
import S3Client
import Platform

/// The running worker: listen socket, thread pool, signals, and systemd's notify protocol.
public enum Server {
    /// How long in-flight requests may take to finish after SIGTERM before the process exits
    /// anyway; below the unit's `TimeoutStopSec=30`, so systemd never has to SIGKILL us.
    static let drainTimeout: Double = 25
    /// Seconds between `STATUS=` updates to systemd.
    static let statusInterval: Double = 5

    /// Starts serving and blocks until SIGTERM or SIGINT, then drains and returns.
    ///
    /// - Parameters:
    ///   - source: where the configuration came from; SIGHUP reads it again.
    ///   - configuration: what `source` gave at startup.
    ///   - logLevel: the level every logger of the process uses; a reload changes it.
    ///   - environment: the process environment (systemd's `LISTEN_FDS`, `NOTIFY_SOCKET`, `WATCHDOG_USEC`).
    public static func run(
        source: ConfigurationSource, configuration: Configuration, logLevel: LogLevelSetting,
        environment: [String: String], logger: Logger
    ) throws {
        // Block the signals we wait for before any thread exists, so every thread inherits the
        // mask and they are delivered only to `sigtimedwait` below, never interrupting a request.
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        // A client that goes away must surface as a write error, not kill the process.
        Glibc.signal(SIGPIPE, SIG_IGN)

        S3Connection.globalInit()
        let notifier = SystemdNotifier(environment: environment)
        let listen: ListenSocket
        if let inherited = ListenSocket.fromSystemd(environment: environment) {
            listen = inherited
        } else {
            listen = try ListenSocket.open(configuration.listen, backlog: configuration.backlog)
        }

        let shared = SharedState(configuration: configuration, logLevel: logLevel, reportFileFailure: { error in
            logger.error(
                "file tier: writing failed; objects stream from S3 uncached until a write succeeds",
                metadata: ["error": .string(error.description)])
        })
        try LogOutput.standardOutput.startFlushing(every: 0.1)
        let pool = WorkerPool(
            listen: listen, threads: configuration.threads, maxThreads: configuration.maxThreads,
            restingTimeout: configuration.uploadIdleTimeout,
            reportError: { message in logger.error("worker thread failure", metadata: ["error": .string(message)]) },
            makeHandler: { makeRequestHandler(shared: shared, logger: logger) })
        try pool.start()
        if let cache = shared.cache {
            try startCleanup(cache, every: configuration.cleanupInterval, logger: logger)
        }
        logger.info("started", metadata: startupMetadata(configuration, listen: listen, files: shared.cache?.files))
        if let error = shared.fileTierError {
            logger.error(
                "file tier off: CACHE_DIR cannot be used; large objects stream from S3",
                metadata: ["cache_dir": .string(configuration.cacheDirectory), "error": .string(error.description)])
        }
        notifier.notify("READY=1\nSTATUS=\(status(shared, pool: pool))\nMAINPID=\(getpid())")

        let tick = min(statusInterval, notifier.watchdogInterval ?? statusInterval)
        var lastStatus = monotonicSeconds()
        while true {
            var timeout = timespec(tv_sec: Int(tick), tv_nsec: Int((tick - tick.rounded(.down)) * 1e9))
            let received = sigtimedwait(&signals, nil, &timeout)
            if received == SIGHUP {
                reload(source, shared: shared, notifier: notifier, logger: logger)
            } else if received == SIGTERM || received == SIGINT {
                stop(pool, signal: received, notifier: notifier, logger: logger)
                return
            }
            // A thread that could not start or died makes the process unhealthy: let the
            // watchdog restart it rather than serve with fewer threads than configured.
            if notifier.watchdogInterval != nil && pool.running >= configuration.threads {
                notifier.notify("WATCHDOG=1")
            }
            if monotonicSeconds() - lastStatus >= statusInterval {
                notifier.notify("STATUS=\(status(shared, pool: pool))")
                lastStatus = monotonicSeconds()
            }
        }
    }

    /// Re-reads the configuration and puts it in force, or keeps the current one when the new
    /// one does not parse.
    static func reload(
        _ source: ConfigurationSource, shared: SharedState, notifier: SystemdNotifier, logger: Logger
    ) {
        notifier.notify("RELOADING=1")
        defer { notifier.notify("READY=1") }
        let configuration: Configuration
        do {
            configuration = try source.load()
        } catch {
            shared.metrics.recordReload(applied: false)
            logger.error("configuration reload refused; the current configuration stays", metadata: ["error": .string(error.description)])
            notifier.notify("STATUS=reload refused: \(error.description)")
            return
        }
        let needRestart = shared.reload(configuration)
        var metadata: Logger.Metadata = ["buckets": .string(shared.live.current.accessRules.description)]
        if !needRestart.isEmpty { metadata["needs_restart"] = .string(needRestart.joined(separator: ",")) }
        logger.notice("configuration reloaded", metadata: metadata)
    }

    private static func stop(_ pool: WorkerPool, signal: Int32, notifier: SystemdNotifier, logger: Logger) {
        notifier.notify("STOPPING=1")
        logger.notice("stopping", metadata: ["signal": .stringConvertible(signal), "in_flight": .stringConvertible(pool.inFlight)])
        let unfinished = pool.drain(timeout: drainTimeout)
        if unfinished > 0 {
            logger.warning("requests still running at exit", metadata: ["in_flight": .stringConvertible(unfinished)])
        }
        logger.notice("stopped")
    }

    /// Drops entries past their grace window every `interval` seconds, then hands freed
    /// memory back to the system so RSS follows the cache's bound down as well as up.
    static func startCleanup(_ cache: ObjectCache, every interval: Double, logger: Logger) throws {
        try spawnThread(name: "cache cleanup") {
            while true {
                usleep(UInt32(min(interval, 4000) * 1_000_000))
                let removed = cache.removeExpired()
                malloc_trim(0)
                if removed > 0 { logger.debug("cache cleanup", metadata: ["removed": .stringConvertible(removed)]) }
            }
        }
    }

    /// One thread's handler: its own S3 connection (kept alive across requests) and gateway,
    /// both rebuilt when a reload changed the configuration.
    static func makeRequestHandler(shared: SharedState, logger: Logger) -> (FastCGIRequest) -> Void {
        let gateway: ReloadingGateway
        do {
            gateway = try ReloadingGateway(shared: shared, logger: logger) { try S3Connection(configuration: $0) }
        } catch {
            logger.critical("cannot create S3 connection", metadata: ["error": .string(String(describing: error))])
            exit(1)
        }
        return { request in gateway.handle(request) }
    }

    /// `STATUS=` for `systemctl status`: what the cache holds and does.
    static func status(_ shared: SharedState, pool: WorkerPool) -> String {
        let inFlight = "\(pool.inFlight) requests in flight (\(pool.blocked) waiting), \(pool.running) threads"
        guard let cache = shared.cache else { return "serving without a cache, \(inFlight)" }
        let usage = cache.usage()
        let hits = cache.statistics.hits.load(ordering: .relaxed)
        let misses = cache.statistics.misses.load(ordering: .relaxed)
        let ratio = hits + misses > 0 ? (Double(hits) * 1000 / Double(hits + misses)).rounded() / 10 : 0
        let megabytes = { (bytes: Int) in String((Double(bytes) / 104_857.6).rounded() / 10) }
        return "serving: \(usage.entries) entries, \(megabytes(usage.bytes)) of \(megabytes(cache.settings.capacity)) MiB cached, "
            + "\(ratio)% hits, \(inFlight)"
    }

    private static func startupMetadata(_ configuration: Configuration, listen: ListenSocket, files: FileTier?) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "version": .string(S3CacheVersion.current),
            "listen": .string(listen.origin),
            "threads": .stringConvertible(configuration.threads),
            "max_threads": .stringConvertible(configuration.maxThreads),
            "s3_endpoint": .string(configuration.s3.endpoint),
            "s3_tls": .stringConvertible(configuration.s3.useSSL),
            "s3_region": .string(configuration.s3.region),
            "buckets": .string(configuration.accessRules.description),
            "max_upload_bytes": .stringConvertible(configuration.maxUploadSize),
            "cache_bytes": .stringConvertible(configuration.maxCacheSize),
            "cache_policy": .string(configuration.cachePolicy.rawValue),
            "backend_concurrency": .stringConvertible(configuration.backendConcurrency),
            "upload_concurrency": .stringConvertible(configuration.uploadConcurrency),
        ]
        if let files {
            metadata["cache_dir"] = .string(configuration.cacheDirectory)
            metadata["cache_dir_bytes"] = .stringConvertible(files.capacity)
            metadata["cache_dir_restored"] = .stringConvertible(files.statistics.restoredEntries.load(ordering: .relaxed))
        }
        return metadata
    }
}
