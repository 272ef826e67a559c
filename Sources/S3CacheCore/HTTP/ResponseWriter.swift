/// Writes one CGI response (status and headers, then body) and remembers what it sent,
/// for the access log.
final class ResponseWriter {
    private let exchange: any Exchange
    let isHead: Bool
    private(set) var status = 0
    private(set) var bodyBytesSent: Int64 = 0
    /// Set once the status line went out; from then on an error can only cut the body short.
    var headSent: Bool { status != 0 }

    init(exchange: any Exchange, isHead: Bool) {
        self.exchange = exchange
        self.isHead = isHead
    }

    /// Sends the status and headers. For HEAD the headers are exactly GET's, and no body follows.
    func sendHead(status: Int, headers: [(name: String, value: String)]) throws {
        precondition(!headSent, "response head sent twice")
        var head = "Status: \(status) \(HTTPStatus.reason(status))\r\n"
        for (name, value) in headers {
            head += name
            head += ": "
            head += value
            head += "\r\n"
        }
        head += "\r\n"
        self.status = status
        try exchange.write(head)
    }

    func sendBody(_ bytes: UnsafeRawBufferPointer) throws {
        guard !isHead, bytes.count > 0 else { return }
        try exchange.write(bytes)
        bodyBytesSent += Int64(bytes.count)
    }

    /// A complete JSON response.
    func sendJSON(status: Int, _ body: String, headers: [(name: String, value: String)] = []) throws {
        let bytes = Array(body.utf8)
        try sendHead(
            status: status,
            headers: [("Content-Type", "application/json"), ("Content-Length", String(bytes.count)), ("Cache-Control", "no-store")]
                + headers)
        try bytes.withUnsafeBytes { try sendBody($0) }
    }

    func sendError(_ error: HTTPError) throws {
        try sendJSON(
            status: error.status, JSON.object([("error", .string(error.code)), ("message", .string(error.message))]),
            headers: error.headers)
    }
}
