#if canImport(Glibc)
import Glibc
#endif
import FastCGI
import Gzip
public import Logging
import S3Client
import Platform

/// Everything one worker thread needs to answer requests: routing, access rules, the object
/// handler over this thread's store, and the access log.
public final class Gateway {
    private let rules: AccessRules
    private let permissions: Permissions
    private let keys: AccessKeys
    private let cors: CORSOrigins
    private let signingKeys = SigningKeyCache()
    private let safeContentBuckets: BucketSet
    private let store: any ObjectStore
    private let objects: ObjectHandler
    /// Nil when no `NOTIFY_TOKEN` is set: the endpoint does not exist.
    private let notifications: NotificationEndpoint?
    private let shared: SharedState
    private let logger: Logger
    private let recorder: RequestRecorder
    private let accessLog: AccessLog

    /// - Parameters:
    ///   - configuration: the configuration in force when this gateway was built.
    ///   - store: this thread's own connection to S3 (measured: every call counts in the metrics).
    ///   - shared: what all threads share (cache, backend bound, metrics).
    ///   - recorder: this thread's request metrics, kept across gateways when a reload rebuilds it.
    ///   - accessLog: this thread's access log writer, likewise.
    init(
        configuration: Configuration, store: any ObjectStore, shared: SharedState, logger: Logger, recorder: RequestRecorder,
        accessLog: AccessLog
    ) {
        self.rules = configuration.accessRules
        self.permissions = Permissions(allowed: configuration.accessRules, anonymous: configuration.anonymousRules)
        self.keys = configuration.accessKeys
        self.cors = configuration.corsOrigins
        self.safeContentBuckets = configuration.safeContentBuckets
        self.store = store
        self.shared = shared
        self.objects = ObjectHandler(
            store: store, limits: UploadLimits(configuration), gate: shared.gate, uploadGate: shared.uploadGate,
            cache: shared.cache,
            fillBudget: shared.fillBudget,
            followerWaits: FollowerWaits(configuration), fileMinSize: Int(configuration.fileMinSize))
        self.notifications = NotificationEndpoint(
            configuration, cache: shared.cache, statistics: shared.notificationStatistics)
        self.logger = logger
        self.recorder = recorder
        self.accessLog = accessLog
    }

    /// A gateway for one worker thread, measuring its calls to `connection`.
    public convenience init(configuration: Configuration, connection: any ObjectStore, shared: SharedState, logger: Logger) {
        self.init(
            configuration: configuration, store: MeteredStore(connection, metrics: shared.metrics), shared: shared,
            logger: logger, recorder: shared.metrics.makeRequestRecorder(), accessLog: AccessLog(level: shared.logLevel))
    }

    /// The same thread's gateway for a reloaded configuration.
    func rebuilt(configuration: Configuration, connection: any ObjectStore) -> Gateway {
        Gateway(
            configuration: configuration, store: MeteredStore(connection, metrics: shared.metrics), shared: shared,
            logger: logger, recorder: recorder, accessLog: accessLog)
    }

    /// Answers one request completely, whatever goes wrong, and logs it.
    public func handle(_ exchange: any Exchange) {
        let started = monotonicNanoseconds()
        let method = exchange.param("REQUEST_METHOD") ?? ""
        let target = exchange.param("REQUEST_URI") ?? ""
        let route = Route.parse(requestURI: target)
        let response = ResponseWriter(exchange: exchange, isHead: method == "HEAD")
        var failure: (any Error)?
        var cacheReport: CacheReport?
        var broken = false
        var audit = AuditFacts()
        if case let .object(address) = route {
            response.contentSafety = ContentSafety(sandboxesActiveContent: safeContentBuckets.contains(address.bucket))
            // nginx found no file where an X-Accel-Redirect sent it (removed a moment before)
            // and asks again through @s3cache_file_missing: a parameter, never a client header.
            response.answersMissingFile = exchange.param("S3CACHE_FILE_MISSING") == "1"
        }
        do {
            cacheReport = try dispatch(
                method: method, target: target, route: route, exchange: exchange, response: response, audit: &audit)
        } catch let error as CacheReportedError {
            failure = error.underlying
            cacheReport = error.report
            broken = answer(error.underlying, extraHeaders: error.report.headers, exchange: exchange, response: response)
        } catch {
            failure = error
            broken = answer(error, exchange: exchange, response: response)
        }
        log(
            exchange, method: method, route: route, response: response, cache: cacheReport, failure: failure, broken: broken,
            started: started)
        if audit.isDue(method: method) {
            var entry = AuditEntry(
                method: method, status: response.status == 0 ? 499 : response.status, keyID: audit.keyID,
                remoteAddress: exchange.param("REMOTE_ADDR") ?? "", requestID: exchange.param("REQUEST_ID"), reason: audit.reason)
            if case let .object(address) = route {
                entry.bucket = address.bucket
                entry.key = address.key
            }
            accessLog.writeAudit(entry)
        }
    }

    private func dispatch(
        method: String, target: String, route: Route, exchange: any Exchange, response: ResponseWriter, audit: inout AuditFacts
    ) throws -> CacheReport? {
        switch route {
        case .health:
            try Self.requireRead(method)
            try response.sendJSON(status: 200, JSON.object([("status", .string("ok"))]))
        case .ready:
            try Self.requireRead(method)
            let status = WorkerPool.blocking { shared.readiness.status(buckets: rules.levels.keys.sorted(), store: store) }
            let body = status.ready
                ? JSON.object([("status", .string("ready")), ("buckets", .string(status.detail))])
                : JSON.object([("status", .string("not_ready")), ("reason", .string(status.detail))])
            try response.sendJSON(status: status.ready ? 200 : 503, body)
        case .stats:
            try Self.requireRead(method)
            try response.sendJSON(status: 200, shared.statisticsJSON())
        case .metrics:
            try Self.requireRead(method)
            try response.send(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: shared.metricsText())
        case .notifications:
            guard let notifications else { throw HTTPError.noRoute }
            try notifications.serve(method: method, exchange: exchange, response: response)
        case .notFound:
            throw HTTPError.noRoute
        case let .invalidObject(reason):
            guard ObjectMethod(rawValue: method) != nil else { throw HTTPError.methodNotAllowed(method) }
            throw HTTPError.invalidObject(reason)
        case let .object(address):
            let origin = cors.isEmpty ? nil : exchange.param("HTTP_ORIGIN")
            let allowedOrigin = origin.flatMap { cors.allowedOrigin($0, bucket: address.bucket) }
            if method == "OPTIONS", origin != nil {
                try preflight(address, allowedOrigin: allowedOrigin, exchange: exchange, response: response)
                return nil
            }
            guard let objectMethod = ObjectMethod(rawValue: method) else { throw HTTPError.methodNotAllowed(method) }
            let auth: Authentication
            do {
                auth = try RequestAuthenticator(keys: keys, now: Int64(time(nil)), signingKeys: signingKeys)
                    .authenticate(exchange, method: method, target: target)
            } catch {
                audit.refusedAuthentication(error)
                metrics.recordAuthenticationFailure(error.reason)
                response.speaksS3 = true
                throw HTTPError(
                    status: error.status, code: Self.jsonCode(error), message: error.message, s3Code: error.code)
            }
            audit.principal = auth.principal
            response.speaksS3 = auth.speaksS3
            if let allowedOrigin { response.addedHeaders += CORSOrigins.responseHeaders(allowOrigin: allowedOrigin) }
            // Checked for every method before any backend call.
            guard permissions.permits(objectMethod, on: address.bucket, by: auth.principal) else {
                audit.reason = "denied"
                if case .anonymous = auth.principal, !keys.isEmpty, rules.permits(objectMethod, on: address.bucket) {
                    metrics.recordAuthenticationFailure("anonymous")
                }
                throw HTTPError.forbidden(method, bucket: address.bucket)
            }
            if !permissions.isPublic(address.bucket) { response.addedHeaders.append(("Cache-Control", "private")) }
            return try objects.serve(objectMethod, address, auth: auth, exchange: exchange, response: response)
        }
        return nil
    }

    private var metrics: GatewayMetrics { shared.metrics }

    /// Our JSON code for an authentication failure (S3's is in the XML).
    private static func jsonCode(_ failure: AuthenticationFailure) -> String {
        switch failure.reason {
        case "signature": return "signature_mismatch"
        case "unknown_key": return "invalid_access_key"
        case "skew": return "request_time_too_skewed"
        case "expired": return "request_expired"
        case "sigv2": return "signature_version_not_supported"
        default: return "invalid_authorization"
        }
    }

    /// A CORS preflight (`OPTIONS` with `Origin`): 204 with what the origin may do, or 403.
    private func preflight(_ address: ObjectAddress, allowedOrigin: String?, exchange: any Exchange, response: ResponseWriter) throws {
        let requested = exchange.param("HTTP_ACCESS_CONTROL_REQUEST_METHOD") ?? ""
        guard let allowedOrigin, let method = ObjectMethod(rawValue: requested), method != .purge,
              rules.permits(method, on: address.bucket)
        else {
            throw HTTPError(status: 403, code: "cors_forbidden", message: "this origin or method is not allowed for the bucket",
                            s3Code: "AccessForbidden")
        }
        var headers = CORSOrigins.responseHeaders(allowOrigin: allowedOrigin) + [
            ("Access-Control-Allow-Methods", "GET, HEAD, PUT, DELETE"), ("Access-Control-Max-Age", "600"),
            ("Content-Length", "0"), ("Cache-Control", "no-store"),
        ]
        if let names = exchange.param("HTTP_ACCESS_CONTROL_REQUEST_HEADERS").flatMap(CORSOrigins.requestedHeaders), !names.isEmpty {
            headers.append(("Access-Control-Allow-Headers", names))
        }
        try response.sendHead(status: 204, headers: headers)
    }

    /// The service endpoints answer GET and HEAD only.
    private static func requireRead(_ method: String) throws {
        guard method == "GET" || method == "HEAD" else { throw HTTPError.methodNotAllowed(method, allow: "GET, HEAD") }
    }

    /// Sends the error response if the status line has not gone out yet; after that the
    /// only honest thing is to break the response off, which nginx passes on as a broken
    /// transfer (its client's connection closes before the end of the body). Returns whether
    /// it did that.
    private func answer(
        _ error: any Error, extraHeaders: [(name: String, value: String)] = [], exchange: any Exchange, response: ResponseWriter
    ) -> Bool {
        guard !response.headSent else {
            // A response that is whole already (a 304, a HEAD's headers, an error document)
            // stands; so does one whose client went away, which nobody reads any more.
            guard !response.isComplete, !(error is FastCGIError) else { return false }
            exchange.abort()
            return true
        }
        var httpError: HTTPError
        switch error {
        case let error as HTTPError: httpError = error
        case let error as S3Error: httpError = HTTPError(backend: error)
        case let error as GzipError: httpError = HTTPError(gzip: error)
        case let error as ClientAbort: httpError = .badRequest(error.description)
        case let FastCGIError.requestBodyStalled(seconds):
            httpError = HTTPError(
                status: 408, code: "request_timeout", message: "no byte of the request body arrived for \(Int(seconds)) s")
        case is FastCGIError: return false
        default: httpError = .internalError("unexpected error")
        }
        httpError.headers += extraHeaders
        try? response.sendError(httpError)
        return false
    }

    private func log(
        _ exchange: any Exchange, method: String, route: Route, response: ResponseWriter, cache: CacheReport?,
        failure: (any Error)?, broken: Bool, started: Int64
    ) {
        let elapsed = monotonicNanoseconds() - started
        // 499 as nginx logs it: the client went away before a response could be sent.
        let status = response.status == 0 ? 499 : response.status
        var bucket: String?
        if case let .object(address) = route, rules.levels[address.bucket] != nil { bucket = address.bucket }
        recorder.record(method: method, status: status, bucket: bucket, nanoseconds: elapsed)
        let severity: AccessLog.Severity
        if let refusal = failure as? HTTPError, refusal.isRefusalUnderLoad, response.status == refusal.status, !broken {
            severity = .refusal
        } else if failure != nil && (response.status >= 500 || response.status == 0 || broken) {
            severity = .serverFault
        } else {
            severity = .info
        }
        guard accessLog.isEnabled(severity) else { return }
        var entry = AccessLog.Entry(
            method: method, status: status, elapsedNanoseconds: elapsed, bytesSent: response.bodyBytesSent,
            remoteAddress: exchange.param("REMOTE_ADDR") ?? "", userAgent: exchange.param("HTTP_USER_AGENT") ?? "",
            requestID: exchange.param("REQUEST_ID"), cache: cache?.result.rawValue,
            error: failure.map { String(describing: $0) }, severity: severity)
        switch route {
        case let .object(address):
            entry.bucket = address.bucket
            entry.key = address.key
        case .health: entry.path = "/health"
        case .ready: entry.path = "/ready"
        case .stats: entry.path = "/stats"
        case .metrics: entry.path = "/metrics"
        case .notifications: entry.path = "/notifications"
        case .invalidObject, .notFound: break
        }
        accessLog.write(entry)
    }
}
