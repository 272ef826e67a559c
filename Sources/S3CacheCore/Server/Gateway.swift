import FastCGI
import Gzip
public import Logging
import S3Client

/// Everything one worker thread needs to answer requests: routing, access rules, the object
/// handler over this thread's store, and the access log.
public final class Gateway {
    private let rules: AccessRules
    private let objects: ObjectHandler
    private let shared: SharedState
    private let logger: Logger

    /// - Parameters:
    ///   - store: this thread's own connection to S3.
    ///   - shared: what all threads share (cache, backend bound).
    public init(configuration: Configuration, store: any ObjectStore, shared: SharedState, logger: Logger) {
        self.rules = configuration.accessRules
        self.shared = shared
        self.objects = ObjectHandler(
            store: store, maxUploadSize: configuration.maxUploadSize, gate: shared.gate, cache: shared.cache,
            flightTimeout: configuration.s3.connectTimeout + 2 * configuration.s3.readTimeout)
        self.logger = logger
    }

    /// Answers one request completely, whatever goes wrong, and logs it.
    public func handle(_ exchange: any Exchange) {
        let started = monotonicSeconds()
        let method = exchange.param("REQUEST_METHOD") ?? ""
        let route = Route.parse(requestURI: exchange.param("REQUEST_URI") ?? "")
        let response = ResponseWriter(exchange: exchange, isHead: method == "HEAD")
        var failure: (any Error)?
        var cacheReport: CacheReport?
        do {
            cacheReport = try dispatch(method: method, route: route, exchange: exchange, response: response)
        } catch {
            failure = error
            answer(error, response: response)
        }
        log(exchange, method: method, route: route, response: response, cache: cacheReport, failure: failure, started: started)
    }

    private func dispatch(method: String, route: Route, exchange: any Exchange, response: ResponseWriter) throws -> CacheReport? {
        switch route {
        case .health:
            guard method == "GET" || method == "HEAD" else { throw HTTPError.methodNotAllowed(method, allow: "GET, HEAD") }
            try response.sendJSON(status: 200, JSON.object([("status", .string("ok"))]))
        case .stats:
            guard method == "GET" || method == "HEAD" else { throw HTTPError.methodNotAllowed(method, allow: "GET, HEAD") }
            try response.sendJSON(status: 200, shared.statisticsJSON())
        case .notFound:
            throw HTTPError.noRoute
        case let .invalidObject(reason):
            guard ObjectMethod(rawValue: method) != nil else { throw HTTPError.methodNotAllowed(method) }
            throw HTTPError.invalidObject(reason)
        case let .object(address):
            guard let objectMethod = ObjectMethod(rawValue: method) else { throw HTTPError.methodNotAllowed(method) }
            // Checked for every method before any backend call.
            guard rules.permits(objectMethod, on: address.bucket) else {
                throw HTTPError.forbidden(method, bucket: address.bucket)
            }
            return try objects.serve(objectMethod, address, exchange: exchange, response: response)
        }
        return nil
    }

    /// Sends the error response if the status line has not gone out yet; after that the
    /// only honest thing is to cut the body short, which nginx passes on as a broken transfer.
    private func answer(_ error: any Error, response: ResponseWriter) {
        guard !response.headSent else { return }
        let httpError: HTTPError
        switch error {
        case let error as HTTPError: httpError = error
        case let error as S3Error: httpError = HTTPError(backend: error)
        case let error as GzipError: httpError = HTTPError(gzip: error)
        case let error as ClientAbort: httpError = .badRequest(error.description)
        case is FastCGIError: return
        default: httpError = .internalError("unexpected error")
        }
        try? response.sendError(httpError)
    }

    private func log(
        _ exchange: any Exchange, method: String, route: Route, response: ResponseWriter, cache: CacheReport?,
        failure: (any Error)?, started: Double
    ) {
        var metadata: Logger.Metadata = [
            "method": .string(method),
            // 499 as nginx logs it: the client went away before a response could be sent.
            "status": .stringConvertible(response.status == 0 ? 499 : response.status),
            "duration_ms": .stringConvertible(((monotonicSeconds() - started) * 1e6).rounded() / 1e3),
            "bytes_sent": .stringConvertible(response.bodyBytesSent),
            "remote_addr": .string(exchange.param("REMOTE_ADDR") ?? ""),
            "user_agent": .string(exchange.param("HTTP_USER_AGENT") ?? ""),
        ]
        if let requestID = exchange.param("REQUEST_ID") { metadata["request_id"] = .string(requestID) }
        switch route {
        case let .object(address):
            metadata["bucket"] = .string(address.bucket)
            metadata["key"] = .string(address.key)
        case .health: metadata["path"] = "/health"
        case .stats: metadata["path"] = "/stats"
        case .invalidObject, .notFound: break
        }
        if let cache { metadata["cache"] = .string(cache.result.rawValue) }
        if let failure { metadata["error"] = .string(String(describing: failure)) }
        let serverFault = failure != nil && (response.status >= 500 || response.status == 0)
        logger.log(level: serverFault ? .error : .info, "request", metadata: metadata)
    }
}
