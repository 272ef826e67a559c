#if canImport(Glibc)
import Glibc
#endif
import CoreMetrics
import ObjectCache
public import Prometheus
import S3Client
import Synchronization

/// Every metric the worker exports on `GET /metrics`, created once at startup.
///
/// Label values are bounded by construction: methods are the four object methods or `other`,
/// statuses are the codes the worker sends, buckets are the names in `ALLOWED_BUCKETS` (any
/// other request is labelled `-`), backend operations and outcomes are fixed lists.
public final class GatewayMetrics: Sendable {
    let registry: MetricsRegistry
    private let backendCalls: [BackendOperation: [BackendOutcome: CoreMetrics.Counter]]
    private let backendDurations: [BackendOperation: CoreMetrics.Timer]
    private let backendErrors: [BackendOperation: [BackendOutcome: CoreMetrics.Counter]]
    private let cache: CacheMetrics
    private let notifications: StatisticCounters<NotificationStatistics>
    private let configurationReloads: [Bool: CoreMetrics.Counter]
    private let authenticationFailures: [String: CoreMetrics.Counter]

    public init(registry prometheus: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), version: String) {
        let registry = MetricsRegistry(prometheus: prometheus)
        self.registry = registry
        var calls: [BackendOperation: [BackendOutcome: CoreMetrics.Counter]] = [:]
        var errors: [BackendOperation: [BackendOutcome: CoreMetrics.Counter]] = [:]
        var durations: [BackendOperation: CoreMetrics.Timer] = [:]
        for operation in BackendOperation.allCases {
            let labels = [("operation", operation.rawValue)]
            durations[operation] = registry.timer(
                "s3cache_backend_request_duration_seconds", help: "Time S3 took to answer, by operation",
                labels: labels, buckets: MetricsRegistry.latencyBuckets)
            for outcome in BackendOutcome.allCases {
                calls[operation, default: [:]][outcome] = registry.counter(
                    "s3cache_backend_requests_total", help: "Requests sent to S3, by operation and outcome",
                    labels: labels + [("outcome", outcome.rawValue)])
                if outcome.isError {
                    errors[operation, default: [:]][outcome] = registry.counter(
                        "s3cache_backend_errors_total",
                        help: "S3 requests that failed (unreachable, timed out, refused our credentials, 5xx, throttled)",
                        labels: labels + [("kind", outcome.rawValue)])
                }
            }
        }
        backendCalls = calls
        backendErrors = errors
        backendDurations = durations
        cache = CacheMetrics(registry)
        func notification(_ name: String, _ help: String, _ labels: [(String, String)], _ statistic: @escaping @Sendable (NotificationStatistics) -> Int)
            -> StatisticCounters<NotificationStatistics>.Tracked
        {
            .init(registry, name, help: help, labels: labels, statistic)
        }
        let requests = "POST /notifications requests, by result", events = "Bucket events received, by what was done"
        notifications = StatisticCounters([
            notification("s3cache_notifications_total", requests, [("result", "accepted")]) { $0.received.load(ordering: .relaxed) },
            notification("s3cache_notifications_total", requests, [("result", "refused")]) { $0.refused.load(ordering: .relaxed) },
            notification("s3cache_notification_events_total", events, [("result", "applied")]) {
                $0.eventsApplied.load(ordering: .relaxed)
            },
            notification("s3cache_notification_events_total", events, [("result", "ignored")]) {
                $0.eventsIgnored.load(ordering: .relaxed)
            },
            notification("s3cache_sns_confirmations_total", "SNS subscriptions confirmed", []) {
                $0.confirmations.load(ordering: .relaxed)
            },
        ])
        configurationReloads = [
            true: registry.counter("s3cache_config_reloads_total", help: "Configuration reloads (SIGHUP) by result", labels: [("result", "applied")]),
            false: registry.counter("s3cache_config_reloads_total", help: "Configuration reloads (SIGHUP) by result", labels: [("result", "refused")]),
        ]
        authenticationFailures = Dictionary(uniqueKeysWithValues: Self.authenticationFailureReasons.map { reason in
            (reason, registry.counter(
                "s3cache_auth_failures_total", help: "Requests refused by authentication or by a key's grants, by reason",
                labels: [("reason", reason)]))
        })
        registry.gauge("s3cache_build_info", help: "Always 1; the version is a label", labels: [("version", version)]).set(1)
        registry.gauge("s3cache_start_time_seconds", help: "Start time of the process since the Unix epoch")
            .set(Double(time(nil)))
    }

    /// One worker thread's recorder of request metrics.
    func makeRequestRecorder() -> RequestRecorder {
        RequestRecorder(registry: registry)
    }

    func recordBackend(_ operation: BackendOperation, _ outcome: BackendOutcome, nanoseconds: Int64) {
        backendDurations[operation]?.recordNanoseconds(nanoseconds)
        backendCalls[operation]?[outcome]?.increment()
        backendErrors[operation]?[outcome]?.increment()
    }

    /// The reasons `s3cache_auth_failures_total` counts: a fixed list, so labels stay bounded.
    static let authenticationFailureReasons = [
        "signature", "unknown_key", "skew", "expired", "malformed", "sigv2", "denied", "anonymous",
    ]

    func recordAuthenticationFailure(_ reason: String) {
        (authenticationFailures[reason] ?? authenticationFailures["malformed"])?.increment()
    }

    func recordReload(applied: Bool) {
        configurationReloads[applied]?.increment()
    }

    /// The exposition, with the cache's figures brought up to date first.
    func render(cache objectCache: ObjectCache?, notifications statistics: NotificationStatistics, backendInFlight: Int) -> [UInt8] {
        cache.update(from: objectCache, backendInFlight: backendInFlight)
        notifications.update(from: statistics)
        return registry.exposition()
    }
}

/// Request counters and latency histograms, created on first use of a label set and kept
/// by one worker thread, so recording costs an atomic add and no shared lock on the lookup.
final class RequestRecorder {
    private struct Key: Hashable {
        var method: String
        var status: Int
        var bucket: String
    }

    private let registry: MetricsRegistry
    private var counters: [Key: CoreMetrics.Counter] = [:]
    private var durations: [String: CoreMetrics.Timer] = [:]

    init(registry: MetricsRegistry) {
        self.registry = registry
    }

    /// - Parameter bucket: a bucket named in the access rules, or nil.
    func record(method: String, status: Int, bucket: String?, nanoseconds: Int64) {
        let method = ObjectMethod(rawValue: method)?.rawValue ?? "other"
        let key = Key(method: method, status: status, bucket: bucket ?? "-")
        let counter = counters[key] ?? {
            let made = registry.counter(
                "s3cache_requests_total", help: "Requests answered, by method, status and bucket",
                labels: [("method", method), ("status", String(status)), ("bucket", key.bucket)])
            counters[key] = made
            return made
        }()
        counter.increment()
        let timer = durations[method] ?? {
            let made = registry.timer(
                "s3cache_request_duration_seconds", help: "Time from request to the end of the response, by method",
                labels: [("method", method)], buckets: MetricsRegistry.latencyBuckets)
            durations[method] = made
            return made
        }()
        timer.recordNanoseconds(nanoseconds)
    }
}

/// What a backend call was.
enum BackendOperation: String, CaseIterable, Sendable {
    case get, head, put, delete
    case headBucket = "head_bucket"
}

/// How a backend call ended.
enum BackendOutcome: String, CaseIterable, Sendable {
    case ok
    /// 304 to a revalidation.
    case notModified = "not_modified"
    case notFound = "not_found"
    /// Another 4xx that is the request's fault (a bad range, a precondition).
    case clientError = "client_error"
    /// 401/403: S3 refused our credentials or permissions.
    case denied
    /// 503 SlowDown and friends.
    case throttled
    case serverError = "server_error"
    case timeout
    case unreachable
    /// Stopped by us (the client went away, the body ended early).
    case aborted

    var isError: Bool {
        switch self {
        case .ok, .notModified, .notFound, .clientError: return false
        case .denied, .throttled, .serverError, .timeout, .unreachable, .aborted: return true
        }
    }
}

extension BackendOutcome {
    /// How an S3 failure is classified, for the metrics and for choosing a stale answer.
    init(_ error: S3Error) {
        switch error {
        case let .service(status, code, _, _):
            switch status {
            case 404: self = .notFound
            case 401, 403: self = .denied
            case 503: self = .throttled
            case _ where code == "SlowDown": self = .throttled
            case 500...: self = .serverError
            default: self = .clientError
            }
        case .timeout: self = .timeout
        case .transport: self = .unreachable
        case .aborted: self = .aborted
        }
    }
}
