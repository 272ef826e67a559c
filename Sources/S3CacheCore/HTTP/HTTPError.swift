/// An error answered to the client as `{"error": code, "message": message}` with `status`.
public struct HTTPError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    /// Stable, machine-readable: `not_found`, `forbidden`, `invalid_key`, …
    public var code: String
    /// For a person reading the response; never holds a secret.
    public var message: String
    /// Extra response headers (`Allow`, `Retry-After`).
    public var headers: [(name: String, value: String)]
    /// S3's code for the same error (`NoSuchKey`), for clients that speak S3 (a SigV4-signed
    /// request gets S3's XML error document); nil derives it from `status` and `code`.
    public var s3Code: String?

    public init(status: Int, code: String, message: String, headers: [(name: String, value: String)] = [], s3Code: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.s3Code = s3Code
    }

    /// The code S3 would answer with, for the XML error document.
    var s3ErrorCode: String {
        if let s3Code { return s3Code }
        switch (status, code) {
        case (404, _): return "NoSuchKey"
        case (403, _): return "AccessDenied"
        case (405, _): return "MethodNotAllowed"
        case (408, _): return "RequestTimeout"
        case (409, _): return "ConditionalRequestConflict"
        case (411, _): return "MissingContentLength"
        case (412, _): return "PreconditionFailed"
        case (413, _): return "EntityTooLarge"
        case (416, _): return "InvalidRange"
        case (503, _): return "SlowDown"
        case (504, _): return "RequestTimeout"
        case (500..., _): return "InternalError"
        default: return "InvalidArgument"
        }
    }

    public static func == (lhs: HTTPError, rhs: HTTPError) -> Bool {
        lhs.status == rhs.status && lhs.code == rhs.code && lhs.message == rhs.message
            && lhs.headers.elementsEqual(rhs.headers) { $0 == $1 }
    }

    public var description: String { "\(status) \(code): \(message)" }

    static func badRequest(_ message: String) -> HTTPError { HTTPError(status: 400, code: "bad_request", message: message) }
    static func invalidObject(_ message: String) -> HTTPError { HTTPError(status: 400, code: "invalid_object", message: message) }
    static func forbidden(_ method: String, bucket: String) -> HTTPError {
        HTTPError(status: 403, code: "forbidden", message: "\(method) is not allowed on bucket \(bucket)")
    }
    static let notFound = HTTPError(status: 404, code: "not_found", message: "no such object")
    static let noRoute = HTTPError(status: 404, code: "not_found", message: "no such resource")
    static func methodNotAllowed(_ method: String, allow: String = ObjectMethod.allowHeader) -> HTTPError {
        HTTPError(
            status: 405, code: "method_not_allowed", message: "\(method) is not supported here",
            headers: [("Allow", allow)])
    }
    static let lengthRequired = HTTPError(
        status: 411, code: "length_required", message: "PUT needs a Content-Length (or a gzip Content-Encoding)")
    static func payloadTooLarge(limit: Int64) -> HTTPError {
        HTTPError(status: 413, code: "payload_too_large", message: "the object is larger than the \(limit)-byte upload limit")
    }
    static func unsupportedEncoding(_ encoding: String) -> HTTPError {
        HTTPError(status: 415, code: "unsupported_encoding", message: "Content-Encoding \(encoding) is not supported; use gzip or none")
    }
    static func internalError(_ message: String) -> HTTPError {
        HTTPError(status: 500, code: "internal_error", message: message)
    }
}

/// Reason phrases for the status codes we send.
enum HTTPStatus {
    static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 204: return "No Content"
        case 206: return "Partial Content"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 412: return "Precondition Failed"
        case 413: return "Content Too Large"
        case 415: return "Unsupported Media Type"
        case 416: return "Range Not Satisfiable"
        case 500: return "Internal Server Error"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 507: return "Insufficient Storage"
        default: return "Status \(status)"
        }
    }
}
