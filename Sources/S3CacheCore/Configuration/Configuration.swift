#if canImport(Glibc)
import Glibc
#endif
public import FastCGI
public import ObjectCache
public import Logging
public import S3Client

/// Everything the worker reads from its environment at startup.
///
/// The seed's variables keep their names and defaults; ours follow the same style.
public struct Configuration: Sendable, Equatable {
    /// Backend address, credentials, region, timeouts (`S3_*`).
    public var s3: S3Configuration
    /// Which buckets may be used and how (`ALLOWED_BUCKETS`, default `public:read,private:all,local:all`).
    public var accessRules: AccessRules
    /// What requests without a signature may do (`ANONYMOUS_BUCKETS`, same syntax, default equal
    /// to `ALLOWED_BUCKETS`; empty: nothing), within `ALLOWED_BUCKETS`.
    public var anonymousRules: AccessRules
    /// The gateway keys file (`ACCESS_KEYS_FILE`, default `/etc/s3cache/keys`, skipped when the
    /// default is absent). Its keys are in `accessKeys`, read by `ConfigurationSource`.
    public var accessKeysFile: String
    /// Whether `ACCESS_KEYS_FILE` was set: then the file must exist.
    public var accessKeysFileRequired: Bool
    /// The keys clients sign with (read from `accessKeysFile`; empty until then).
    public var accessKeys = AccessKeys()
    /// Origins allowed to use each bucket from a browser (`CORS_ORIGINS`,
    /// `bucket:origin|origin,...`, an origin `*` for any); unset, no CORS headers at all.
    public var corsOrigins: CORSOrigins
    /// Bytes the cache may hold (`MAX_CACHE_SIZE`, MB unless a unit is given, default 300).
    public var maxCacheSize: Int64
    /// Seconds an entry is fresh when the object's metadata does not say (`CACHE_TTL`, default 300).
    public var cacheTTL: Double
    /// Longest freshness an object's own `Cache-Control: max-age`/`s-maxage` or `Expires` may
    /// give it, seconds (`CACHE_TTL_MAX`, default 86400).
    public var cacheTTLMax: Double
    /// Seconds after expiry during which, while one request revalidates an entry, concurrent
    /// requests get the expired copy at once (`CACHE_SWR`, default 10; 0 turns it off). An
    /// object's `stale-while-revalidate` directive overrides it.
    public var cacheSWR: Double
    /// Seconds between cleanups of expired entries (`CLEANUP_INTERVAL`, default 60).
    public var cleanupInterval: Double
    /// Largest object kept in the cache, bytes (`MAX_OBJECT_SIZE`, default 1/8 of the cache, at most half).
    /// Like every size setting, a bare number is megabytes (as the seed's `MAX_CACHE_SIZE`):
    /// `1048576` means 1 TiB; write `1048576b` or `1M`.
    /// `MAX_CACHE_SIZE=0` turns the cache off: every read goes to S3.
    public var maxObjectSize: Int64
    /// Bytes cache fills in flight may hold together (`FILL_BUDGET`, default a quarter of the
    /// cache, at least twice MAX_OBJECT_SIZE: a compressible object is held twice while it is
    /// compressed); a fill that does not fit streams through uncached. The
    /// worker's memory stays within MAX_CACHE_SIZE + FILL_BUDGET + a constant.
    public var fillBudget: Int64
    /// The file tier's directory (`CACHE_DIR`, default `/var/cache/s3cache`, which systemd's
    /// `CacheDirectory=` creates; empty turns the tier off). Objects of at least `fileMinSize`
    /// live there as files that nginx sends itself; the shipped snippet's `alias` must name
    /// `CACHE_DIR/objects/`.
    public var cacheDirectory: String
    /// Bytes the file tier may hold on disk (`CACHE_DIR_SIZE`, MB unless a unit is given,
    /// default 1024; 0 turns the tier off).
    public var cacheDirectorySize: Int64
    /// Bytes per slice: large objects are fetched from S3 and stored in slices of this size
    /// (`SLICE_SIZE`, default 1M, from 64K to 64M).
    public var sliceSize: Int64
    /// Smallest object kept in the file tier rather than in memory (`FILE_MIN_SIZE`, default
    /// 128K). Compressible objects up to `MAX_OBJECT_SIZE` stay in memory, stored gzipped.
    public var fileMinSize: Int64
    /// Seconds a 404 from S3 is remembered (`NEGATIVE_TTL`, default 10).
    public var negativeTTL: Double
    /// Seconds past expiry an entry is kept for revalidation and served if S3 fails (`STALE_IF_ERROR`, default 3600).
    public var staleIfError: Double
    /// Eviction policy (`CACHE_POLICY`: `s3fifo` or `lru`, default `s3fifo`; bench/README has the comparison).
    public var cachePolicy: EvictionPolicyKind
    /// Requests that may wait on S3 at once (`BACKEND_CONCURRENCY`, default max(48, 12 × CPUs
    /// + 24)): the bound on S3 connections and on what a slow S3 can pile up. Beyond it a miss
    /// gets 503 at once.
    public var backendConcurrency: Int
    /// PUTs that may be in progress at once (`UPLOAD_CONCURRENCY`, default as
    /// `BACKEND_CONCURRENCY`), counted apart from it: past it an upload gets 503 at once, and
    /// slow uploaders never take what reads need.
    public var uploadConcurrency: Int
    /// Seconds a PUT may go without a byte of its body arriving (`UPLOAD_IDLE_TIMEOUT`, default
    /// 30): then it is aborted with 408, nothing is stored, and its permit is free again.
    public var uploadIdleTimeout: Double
    /// nginx's `fastcgi_read_timeout` for the worker's locations, seconds (`NGINX_READ_TIMEOUT`,
    /// default 60 as in the shipped snippet): a request that waits for another's fetch gives up
    /// waiting in time to fetch for itself before nginx stops waiting for it.
    public var nginxReadTimeout: Double
    /// Largest request body accepted by PUT, bytes, after gzip inflation (`MAX_UPLOAD_SIZE`, default 5G, S3's single-PUT limit).
    public var maxUploadSize: Int64
    /// Largest object a gzip-encoded PUT may inflate to, bytes (`MAX_INFLATED_SIZE`, default 64M,
    /// at most `MAX_UPLOAD_SIZE`). A small gzip body can inflate a thousandfold; this bounds the
    /// spool file and the object such a body makes, apart from the limit on plain uploads.
    public var maxInflatedSize: Int64
    /// Buckets whose active content (HTML, SVG, XML, JavaScript) is served as a download in a
    /// sandbox (`SAFE_CONTENT_BUCKETS`, comma-separated bucket names or `*`, default none), so
    /// that what a writer uploads cannot run as the operator's site.
    public var safeContentBuckets: BucketSet
    /// Where to accept FastCGI when not socket-activated (`FCGI_LISTEN`, default `/run/s3cache/s3cache.sock`).
    public var listen: ListenAddress
    /// Listen backlog for a socket we open ourselves (`FCGI_BACKLOG`, default 4096, as
    /// `s3cache.socket` and Debian 12's `net.core.somaxconn`): a burst of new connections from nginx
    /// waits there while every thread is busy, instead of failing with EAGAIN (nginx's 502).
    public var backlog: Int32
    /// Worker threads the pool keeps (`FCGI_THREADS`, default max(8, 4 × CPUs)): requests
    /// served at once while none waits. A kept connection between requests holds none, and a
    /// request waiting on S3 (or on another request's fetch, or on its client's upload) gets a
    /// thread of its own while it waits, up to `maxThreads`.
    public var threads: Int

    /// The most threads the pool grows to while requests wait: its own, one for each request
    /// the two S3 bounds let wait, and 256 for requests waiting on another's fetch (a
    /// stampede's followers). About 35 KiB each.
    public var maxThreads: Int {
        threads + backendConcurrency + uploadConcurrency + 256
    }
    /// The shared secret a bucket notification sender presents on `POST /notifications`
    /// (`NOTIFY_TOKEN`, at least 16 characters): `Authorization: Bearer <token>` or `?token=`.
    /// Unset, the endpoint answers 404.
    public var notifyToken: String?
    /// Whether an SNS `SubscriptionConfirmation` is confirmed by visiting its `SubscribeURL`
    /// (`NOTIFY_CONFIRM_SNS`, default false). Only AWS's own SNS hosts over https are visited,
    /// and the URL prefixes in `notifySNSEndpoints`.
    public var notifyConfirmSNS: Bool
    /// Further SNS-compatible services whose confirmation URLs may be visited
    /// (`NOTIFY_SNS_ENDPOINTS`, comma-separated URL prefixes such as `http://127.0.0.1:4566/`).
    public var notifySNSEndpoints: [String]
    /// Least severe level written (`LOG_LEVEL`: trace, debug, info, notice, warning, error, critical; default info).
    public var logLevel: Logger.Level

    /// The cache's bounds and timing.
    public var cacheSettings: CacheSettings {
        CacheSettings(
            capacity: Int(maxCacheSize), maxObjectSize: Int(maxObjectSize), ttl: cacheTTL, negativeTTL: negativeTTL,
            staleGrace: staleIfError, staleWhileRevalidate: cacheSWR, maxTTL: cacheTTLMax, policy: cachePolicy)
    }

    /// Reads the configuration from `KEY=VALUE` pairs (normally the process environment).
    public static func load(from environment: [String: String]) throws(ConfigurationError) -> Configuration {
        let env = EnvironmentReader(values: environment)
        let s3 = S3Configuration(
            endpoint: try endpoint(env),
            useSSL: try env.bool("S3_USE_SSL", default: false),
            region: env.string("S3_REGION", default: "us-east-1"),
            credentials: S3Credentials(
                accessKey: env.string("S3_ACCESS_KEY", default: "minioadmin"),
                secretKey: env.string("S3_SECRET_KEY", default: "minioadmin")),
            addressing: try addressing(env),
            connectTimeout: try env.seconds("S3_CONNECT_TIMEOUT", default: 5, in: 0.1...300),
            readTimeout: try env.seconds("S3_READ_TIMEOUT", default: 30, in: 1...3600),
            caFile: env.raw("S3_CA_FILE"))

        let rulesText = env.string("ALLOWED_BUCKETS", default: "public:read,private:all,local:all")
        let rules: AccessRules
        do {
            rules = try AccessRules(parsing: rulesText)
        } catch {
            throw ConfigurationError(variable: "ALLOWED_BUCKETS", value: rulesText, reason: error.description)
        }

        let anonymousText = env.string("ANONYMOUS_BUCKETS", default: rulesText)
        let anonymousRules: AccessRules
        do {
            anonymousRules = try AccessRules(parsingAllowingNone: anonymousText)
        } catch {
            throw ConfigurationError(variable: "ANONYMOUS_BUCKETS", value: anonymousText, reason: error.description)
        }
        let corsText = env.string("CORS_ORIGINS", default: "")
        guard let corsOrigins = CORSOrigins(parsing: corsText) else {
            throw ConfigurationError(
                variable: "CORS_ORIGINS", value: corsText,
                reason: "expected bucket:origin|origin,... with origins such as https://app.example.com, or *")
        }

        let cacheSize = try env.size("MAX_CACHE_SIZE", default: 300 << 20, in: 0...(1 << 46))!
        let objectSize = try env.size("MAX_OBJECT_SIZE", default: cacheSize / 8, in: 0...(1 << 46))!
        // A cache that can hold a single object caches nothing useful, and each cache shard keeps
        // a little of its budget for bookkeeping.
        guard objectSize <= cacheSize / 2 else {
            throw ConfigurationError(
                variable: "MAX_OBJECT_SIZE", value: env.raw("MAX_OBJECT_SIZE") ?? String(objectSize),
                reason: "cannot exceed half of MAX_CACHE_SIZE (\(cacheSize / 2) bytes)")
        }
        let cacheDirectory = env.values["CACHE_DIR"].map { $0.trimmingWhitespace() } ?? "/var/cache/s3cache"  // blank: the tier is off
        guard cacheDirectory.isEmpty || (cacheDirectory.hasPrefix("/") && !cacheDirectory.split(separator: "/").contains("..")) else {
            throw ConfigurationError(variable: "CACHE_DIR", value: cacheDirectory, reason: "expected an absolute path without ..")
        }
        let fillBudget = try env.size("FILL_BUDGET", default: max(2 * objectSize, cacheSize / 4), in: 0...(1 << 46))!
        let uploadSize = try env.size("MAX_UPLOAD_SIZE", default: 5 << 30, in: 1...(5 << 40))!
        let inflatedSize = try env.size("MAX_INFLATED_SIZE", default: min(64 << 20, uploadSize), in: 1...uploadSize)!
        let safeText = env.string("SAFE_CONTENT_BUCKETS", default: "")
        guard let safeContentBuckets = BucketSet(parsing: safeText) else {
            throw ConfigurationError(
                variable: "SAFE_CONTENT_BUCKETS", value: safeText, reason: "expected bucket names separated by commas, or *")
        }
        let socketMode = try env.octalMode("FCGI_SOCKET_MODE", default: 0o660)
        let listenText = env.string("FCGI_LISTEN", default: "/run/s3cache/s3cache.sock")
        guard let listen = ListenAddress.parse(listenText, socketMode: socketMode) else {
            throw ConfigurationError(
                variable: "FCGI_LISTEN", value: listenText, reason: "expected a socket path or host:port")
        }
        let level = env.string("LOG_LEVEL", default: "info").lowercased()
        guard let logLevel = Logger.Level(rawValue: level == "warn" ? "warning" : level) else {
            throw ConfigurationError(
                variable: "LOG_LEVEL", value: level,
                reason: "expected trace, debug, info, notice, warning, error or critical")
        }
        let threads = try env.integer("FCGI_THREADS", default: defaultThreadCount(), in: 1...10_000)
        let policyName = env.string("CACHE_POLICY", default: "s3fifo").lowercased()
        guard let policy = EvictionPolicyKind(rawValue: policyName) else {
            throw ConfigurationError(variable: "CACHE_POLICY", value: policyName, reason: "expected s3fifo or lru")
        }
        // Not bounded by FCGI_THREADS: a request waiting on S3 gets a thread of its own.
        let notifyToken = env.raw("NOTIFY_TOKEN").flatMap { $0.isEmpty ? nil : $0 }
        if let notifyToken, notifyToken.utf8.count < 16 || notifyToken.utf8.count > 256
            || !notifyToken.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f })
        {
            throw ConfigurationError(
                variable: "NOTIFY_TOKEN", value: notifyToken,
                reason: "expected 16 to 256 printable ASCII characters without spaces (openssl rand -hex 32 makes one)")
        }
        let snsEndpoints = env.string("NOTIFY_SNS_ENDPOINTS", default: "").split(separator: ",").map { $0.trimmingWhitespace() }
        for endpoint in snsEndpoints where !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://"))
            || !endpoint.dropFirst(8).contains("/")
        {
            throw ConfigurationError(
                variable: "NOTIFY_SNS_ENDPOINTS", value: endpoint,
                reason: "expected URL prefixes with a scheme, host and path, such as http://127.0.0.1:4566/")
        }
        let backendConcurrency = try env.integer("BACKEND_CONCURRENCY", default: defaultWaitBound(), in: 1...10_000)
        let uploadConcurrency = try env.integer("UPLOAD_CONCURRENCY", default: defaultWaitBound(), in: 1...10_000)
        return Configuration(
            s3: s3,
            accessRules: rules,
            anonymousRules: anonymousRules,
            accessKeysFile: env.string("ACCESS_KEYS_FILE", default: AccessKeys.defaultPath),
            accessKeysFileRequired: env.raw("ACCESS_KEYS_FILE") != nil,
            corsOrigins: corsOrigins,
            maxCacheSize: cacheSize,
            cacheTTL: try env.seconds("CACHE_TTL", default: 300, in: 0...(86_400 * 365)),
            cacheTTLMax: try env.seconds("CACHE_TTL_MAX", default: 86_400, in: 0...(86_400 * 365)),
            cacheSWR: try env.seconds("CACHE_SWR", default: 10, in: 0...86_400),
            cleanupInterval: try env.seconds("CLEANUP_INTERVAL", default: 60, in: 1...86_400),
            maxObjectSize: objectSize,
            fillBudget: fillBudget,
            cacheDirectory: cacheDirectory,
            cacheDirectorySize: try env.size("CACHE_DIR_SIZE", default: 1 << 30, in: 0...(1 << 50))!,
            sliceSize: try env.size("SLICE_SIZE", default: 1 << 20, in: (64 << 10)...(64 << 20))!,
            fileMinSize: try env.size("FILE_MIN_SIZE", default: 128 << 10, in: 1...(1 << 46))!,
            negativeTTL: try env.seconds("NEGATIVE_TTL", default: 10, in: 0...86_400),
            staleIfError: try env.seconds("STALE_IF_ERROR", default: 3600, in: 0...(86_400 * 30)),
            cachePolicy: policy,
            backendConcurrency: backendConcurrency,
            uploadConcurrency: uploadConcurrency,
            uploadIdleTimeout: try env.seconds("UPLOAD_IDLE_TIMEOUT", default: 30, in: 0.1...3600),
            nginxReadTimeout: try env.seconds("NGINX_READ_TIMEOUT", default: 60, in: 1...86_400),
            maxUploadSize: uploadSize,
            maxInflatedSize: inflatedSize,
            safeContentBuckets: safeContentBuckets,
            listen: listen,
            backlog: Int32(try env.integer("FCGI_BACKLOG", default: 4096, in: 1...65_535)),
            threads: threads,
            notifyToken: notifyToken,
            notifyConfirmSNS: try env.bool("NOTIFY_CONFIRM_SNS", default: false),
            notifySNSEndpoints: snsEndpoints,
            logLevel: logLevel)
    }

    /// Enough threads to outnumber nginx's kept connections (16 per nginx worker, one
    /// nginx worker per CPU) with room for new ones.
    /// Threads that do the work of requests that do not wait: a few per CPU. More only compete
    /// with nginx's own workers for the CPUs (1 KiB hits at 1024 clients on 2 CPUs: tails of
    /// seconds with 64 threads, 130 ms with 4; bench/README.md).
    static func defaultThreadCount() -> Int {
        max(8, 4 * onlineCPUs())
    }

    /// Requests that may wait on S3 at once, reads and uploads each: what three quarters of the
    /// former thread default (max(64, 16 × CPUs + 32)) allowed, so the S3 load is unchanged.
    static func defaultWaitBound() -> Int {
        max(48, 12 * onlineCPUs() + 24)
    }

    private static func onlineCPUs() -> Int {
        max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }

    private static func endpoint(_ env: EnvironmentReader) throws(ConfigurationError) -> String {
        let value = env.string("S3_ENDPOINT", default: "localhost:9000")
        let forbidden: Set<Character> = ["/", "?", "#", "@", " "]
        guard !value.contains(where: { forbidden.contains($0) }), !value.hasPrefix(":") else {
            throw ConfigurationError(
                variable: "S3_ENDPOINT", value: value,
                reason: "expected host or host:port without a scheme or path (use S3_USE_SSL for https)")
        }
        if let colon = value.lastIndex(of: ":"), !value.hasSuffix("]") {
            let port = value[value.index(after: colon)...]
            guard let number = UInt16(port), number > 0 else {
                throw ConfigurationError(variable: "S3_ENDPOINT", value: value, reason: "the port is not a number from 1 to 65535")
            }
        }
        return value
    }

    private static func addressing(_ env: EnvironmentReader) throws(ConfigurationError) -> S3Addressing {
        let value = env.string("S3_ADDRESSING", default: "path").lowercased()
        guard let addressing = S3Addressing(rawValue: value) else {
            throw ConfigurationError(variable: "S3_ADDRESSING", value: value, reason: "expected path or virtual")
        }
        return addressing
    }
}
