import Gzip
import S3Client

extension HTTPError {
    /// How an S3 failure is answered to our client.
    ///
    /// Credentials or permissions S3 refuses are *our* misconfiguration, not the client's:
    /// they become 502 with a message that says so, never a 403 the client could act on.
    init(backend error: S3Error) {
        switch error {
        case let .service(status, code, message, _):
            let detail = [code, message].compactMap { $0 }.joined(separator: ": ")
            switch (status, code) {
            case (404, "NoSuchBucket"):
                self = HTTPError(status: 404, code: "not_found", message: "no such bucket in the backend")
            case (404, _): self = .notFound
            case (412, _): self = HTTPError(status: 412, code: "precondition_failed", message: "precondition failed")
            case (409, _):
                self = HTTPError(
                    status: 409, code: "conflict",
                    message: "S3 refused the write: a conflicting write to the object is in progress\(detail.isEmpty ? "" : " (" + detail + ")")")
            case (416, _): self = HTTPError(status: 416, code: "range_not_satisfiable", message: "the requested range is not satisfiable")
            case (_, "EntityTooLarge"): self = HTTPError(status: 413, code: "payload_too_large", message: detail)
            case (400, _): self = HTTPError(status: 400, code: "bad_request", message: "S3 refused the request: \(detail)")
            case (401, _), (403, _):
                self = HTTPError(
                    status: 502, code: "backend_denied",
                    message: "S3 refused the gateway's credentials or permissions (\(code ?? String(status)))")
            case (503, _), (_, "SlowDown"), (_, "ServiceUnavailable"):
                self = HTTPError(
                    status: 503, code: "backend_unavailable", message: "S3 is throttling or unavailable; retry shortly",
                    headers: [("Retry-After", "1")])
            default:
                self = HTTPError(status: 502, code: "bad_gateway", message: "S3 answered \(status)\(detail.isEmpty ? "" : ": " + detail)")
            }
        case .timeout:
            self = HTTPError(status: 504, code: "gateway_timeout", message: "S3 did not answer in time")
        case .transport:
            self = HTTPError(status: 502, code: "bad_gateway", message: "S3 is unreachable")
        case let .aborted(message):
            self = HTTPError(status: 502, code: "bad_gateway", message: "transfer aborted: \(message)")
        }
    }

    init(gzip error: GzipError) {
        switch error {
        case let .tooLarge(limit):
            self = HTTPError(
                status: 413, code: "payload_too_large", message: "the gzip body inflates to more than the \(limit)-byte limit")
        case let .corrupt(reason): self = .badRequest("request body is not valid gzip: \(reason)")
        case .setupFailed: self = .internalError("cannot inflate the request body")
        }
    }
}
