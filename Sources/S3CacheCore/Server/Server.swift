#if canImport(Glibc)
import Glibc
#endif
import CMalloc
import FastCGI
public import Logging
import ObjectCache
import S3Client

/// The running worker: listen socket, thread pool and signal handling.
public enum Server {
    /// How long in-flight requests may take to finish after SIGTERM before the process exits anyway.
    static let drainTimeout: Double = 25

    /// Starts serving and blocks until SIGTERM or SIGINT, then drains and returns.
    ///
    /// - Parameter environment: the process environment (for systemd's `LISTEN_FDS`).
    public static func run(configuration: Configuration, environment: [String: String], logger: Logger) throws {
        // Block the signals we wait for before any thread exists, so every thread inherits the
        // mask and they are delivered only to `sigwait` below, never interrupting a request.
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        // A client that goes away must surface as a write error, not kill the process.
        Glibc.signal(SIGPIPE, SIG_IGN)

        S3Connection.globalInit()
        let listen: ListenSocket
        if let inherited = ListenSocket.fromSystemd(environment: environment) {
            listen = inherited
        } else {
            listen = try ListenSocket.open(configuration.listen, backlog: configuration.backlog)
        }

        let shared = SharedState(configuration: configuration)
        let pool = WorkerPool(listen: listen, threads: configuration.threads) {
            makeRequestHandler(configuration: configuration, shared: shared, logger: logger)
        }
        try pool.start()
        if let cache = shared.cache {
            try startCleanup(cache, every: configuration.cleanupInterval, logger: logger)
        }
        logger.info(
            "started",
            metadata: [
                "listen": .string(listen.origin),
                "threads": .stringConvertible(configuration.threads),
                "s3_endpoint": .string(configuration.s3.endpoint),
                "s3_tls": .stringConvertible(configuration.s3.useSSL),
                "s3_region": .string(configuration.s3.region),
                "buckets": .string(configuration.accessRules.description),
                "max_upload_bytes": .stringConvertible(configuration.maxUploadSize),
                "cache_bytes": .stringConvertible(configuration.maxCacheSize),
                "cache_policy": .string(configuration.cachePolicy.rawValue),
                "backend_concurrency": .stringConvertible(configuration.backendConcurrency),
            ])

        while true {
            var received: Int32 = 0
            guard sigwait(&signals, &received) == 0 else { continue }
            if received == SIGHUP {
                logger.notice("SIGHUP received; live reload is not available in this version, configuration unchanged")
                continue
            }
            logger.notice("stopping", metadata: ["signal": .stringConvertible(received), "in_flight": .stringConvertible(pool.inFlight)])
            let unfinished = pool.drain(timeout: drainTimeout)
            if unfinished > 0 {
                logger.warning("requests still running at exit", metadata: ["in_flight": .stringConvertible(unfinished)])
            }
            logger.notice("stopped")
            return
        }
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

    /// One thread's handler: its own S3 connection (kept alive across requests) and gateway.
    static func makeRequestHandler(configuration: Configuration, shared: SharedState, logger: Logger) -> (FastCGIRequest) -> Void {
        let connection: S3Connection
        do {
            connection = try S3Connection(configuration: configuration.s3)
        } catch {
            logger.critical("cannot create S3 connection", metadata: ["error": .string(String(describing: error))])
            exit(1)
        }
        let gateway = Gateway(configuration: configuration, store: connection, shared: shared, logger: logger)
        return { request in gateway.handle(request) }
    }
}
