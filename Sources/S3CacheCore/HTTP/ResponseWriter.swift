/// Writes one CGI response (status and headers, then body) and remembers what it sent,
/// for the access log.
final class ResponseWriter {
    private let exchange: any Exchange
    let isHead: Bool
    private(set) var status = 0
    private(set) var bodyBytesSent: Int64 = 0
    /// Set once the status line went out; from then on an error can only cut the body short.
    var headSent: Bool { status != 0 }
    /// For object responses: the headers that keep uploaded content from acting as the site.
    var contentSafety: ContentSafety?
    /// Set for a SigV4-signed request: errors go out as S3's XML error document, which is what
    /// SDKs read the error code from, and successful writes in S3's shape.
    var speaksS3 = false
    /// Headers every response to this request carries (CORS, `Cache-Control: private`).
    var addedHeaders: [(name: String, value: String)] = []
    /// Set when this request is nginx's second try after a file of the file tier was gone:
    /// the answer is streamed, never redirected again, and leaves out the headers nginx already
    /// copied from the first answer (they would be doubled).
    var answersMissingFile = false
    /// What nginx copies from an answer that redirects (`ngx_http_upstream.c`'s redirect flag;
    /// Content-Type too, but a second one replaces it).
    static let copiedOnRedirect: Set<String> = ["cache-control", "expires", "content-disposition", "set-cookie", "accept-ranges"]
    /// Set once the client has everything the response promised (a bodyless response's head,
    /// a complete generated response); a streamed body is not known to be complete here.
    private(set) var isComplete = false

    init(exchange: any Exchange, isHead: Bool) {
        self.exchange = exchange
        self.isHead = isHead
    }

    /// Sends the status and headers. For HEAD the headers are exactly GET's, and no body follows.
    func sendHead(status: Int, headers: [(name: String, value: String)]) throws {
        try sendHead(status: status, prepared: "", headers: headers)
    }

    /// Whether a response of `contentType` must go out sandboxed (`ContentSafety`); callers with
    /// prepared header lines check this first and send those headers as a list instead.
    func sandboxes(contentType: String) -> Bool {
        contentSafety?.sandboxes(contentType: contentType) ?? false
    }

    /// Sends the status, header lines rendered beforehand (`Name: value` + CRLF each), then
    /// `headers`.
    func sendHead(status: Int, prepared: String, headers: [(name: String, value: String)]) throws {
        precondition(!headSent, "response head sent twice")
        var head = "Status: \(status) \(HTTPStatus.reason(status))\r\n"
        head += prepared
        var sandboxed = false
        if let contentSafety {
            head += ContentSafety.noSniff
            if contentSafety.sandboxesActiveContent, status == 200 || status == 206,
               let type = headers.first(where: { $0.name.lowercased() == "content-type" })?.value
            {
                sandboxed = contentSafety.sandboxes(contentType: type)
            }
        }
        // One Vary line for all its values: nginx 1.22 reads only the first line into
        // $upstream_http_vary, which a file-tier answer's headers are restored from.
        var vary: [String] = []
        for (name, value) in headers where !(sandboxed && name.lowercased() == "content-disposition") {
            if answersMissingFile, Self.copiedOnRedirect.contains(name.lowercased()) { continue }
            if name.utf8.count == 4, name.lowercased() == "vary" {
                vary.append(value)
                continue
            }
            head += name
            head += ": "
            head += value
            head += "\r\n"
        }
        if sandboxed {
            for (name, value) in ContentSafety.sandboxHeaders where !(answersMissingFile && Self.copiedOnRedirect.contains(name.lowercased())) {
                head += "\(name): \(value)\r\n"
            }
        }
        for (name, value) in addedHeaders {
            if answersMissingFile, Self.copiedOnRedirect.contains(name.lowercased()) { continue }
            if name.utf8.count == 4, name.lowercased() == "vary" {
                vary.append(value)
            } else {
                head += "\(name): \(value)\r\n"
            }
        }
        if !vary.isEmpty { head += "Vary: \(vary.joined(separator: ", "))\r\n" }
        head += "\r\n"
        self.status = status
        isComplete = isHead || status == 204 || status == 304
        try exchange.write(head)
    }

    /// The head just sent handed the body to nginx (`X-Accel-Redirect`): it answers `status`
    /// (a 206 comes from its range filter) with `bytes`, which the access log records.
    func redirected(status: Int, bytes: Int) {
        self.status = status
        bodyBytesSent = Int64(bytes)
        isComplete = true
    }

    /// Whether the client went away (nginx closed the connection), waiting up to `seconds`.
    func clientGone(within seconds: Double) -> Bool {
        exchange.peerClosed(within: seconds)
    }

    func sendBody(_ bytes: UnsafeRawBufferPointer) throws {
        guard !isHead, bytes.count > 0 else { return }
        try exchange.write(bytes)
        bodyBytesSent += Int64(bytes.count)
    }

    /// A complete JSON response.
    func sendJSON(status: Int, _ body: String, headers: [(name: String, value: String)] = []) throws {
        try send(status: status, contentType: "application/json", body: Array(body.utf8), headers: headers)
    }

    /// A complete response generated by the worker itself (never cached by anyone in front).
    func send(status: Int, contentType: String, body: [UInt8], headers: [(name: String, value: String)] = []) throws {
        try sendHead(
            status: status,
            headers: [("Content-Type", contentType), ("Content-Length", String(body.count)), ("Cache-Control", "no-store")]
                + headers)
        try body.withUnsafeBytes { try sendBody($0) }
        isComplete = true
    }

    func sendError(_ error: HTTPError) throws {
        if speaksS3 {
            // Resource and request id are read only here, on the error path.
            let target = exchange.param("REQUEST_URI") ?? ""
            let resource = String(Substring(target.utf8.prefix { $0 != UInt8(ascii: "?") }))
            let requestID = exchange.param("REQUEST_ID") ?? ""
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>\(XML.escaped(error.s3ErrorCode))</Code>"
                + "<Message>\(XML.escaped(error.message))</Message><Resource>\(XML.escaped(resource))</Resource>"
                + "<RequestId>\(XML.escaped(requestID))</RequestId></Error>"
            try send(status: error.status, contentType: "application/xml", body: Array(body.utf8), headers: error.headers)
            return
        }
        try sendJSON(
            status: error.status, JSON.object([("error", .string(error.code)), ("message", .string(error.message))]),
            headers: error.headers)
    }
}

/// Text escaped for XML character data and attribute values.
enum XML {
    static func escaped(_ text: String) -> String {
        var output = ""
        output.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": output += "&amp;"
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            case "\"": output += "&quot;"
            case "'": output += "&apos;"
            // XML 1.0 has no way to write most control characters: they are dropped.
            case _ where character.value < 0x20 && character != "\t" && character != "\n" && character != "\r": break
            default: output.unicodeScalars.append(character)
            }
        }
        return output
    }
}
