/// One request to the backend before signing: what the public operations build.
struct S3Request {
    enum Body {
        /// No body (GET, DELETE).
        case none
        /// HEAD: no body expected in the response either.
        case headOnly
        /// A body of exactly `length` bytes from a callback, sent with `Content-Length`.
        case upload(length: Int64, payloadHash: String)
    }

    var method: String
    /// Unencoded path, e.g. `/bucket/my key.txt`.
    var path: String
    var query: [(name: String, value: String)] = []
    /// The `Host` header value, port included when it is not the scheme's default.
    var host: String
    /// Caller headers sent verbatim and signed.
    var headers: [(name: String, value: String)] = []
    var body: Body = .none
    /// SigV4 service name: `s3`, or another (e.g. `iam`) when talking to a test backend.
    var service = "s3"
    /// Idempotent and replayable: may be retried once after a transport error.
    var retryable: Bool
    /// `GET bucket/key`, for error messages: never a credential, never a header value.
    var label: String

    var payloadHash: String {
        if case .upload(_, let hash) = body { return hash }
        return SHA256.emptyPayloadHash
    }
}

/// Where requests go: the scheme, the host for a bucket, and the path for an object.
struct S3Endpoint {
    var scheme: String
    /// `host` or `host:port` as configured, minus a port that is the scheme's default
    /// (curl would leave it out of `Host`, and the signed host must match what is sent).
    var authority: String
    var addressing: S3Addressing

    init(configuration: S3Configuration) {
        scheme = configuration.useSSL ? "https" : "http"
        let defaultPort = configuration.useSSL ? ":443" : ":80"
        var authority = configuration.endpoint
        if authority.hasSuffix(defaultPort) { authority.removeLast(defaultPort.count) }
        self.authority = authority
        addressing = configuration.addressing
    }

    /// Host and unencoded path of an object (`key` nil: of the bucket itself).
    func location(bucket: String, key: String?) -> (host: String, path: String) {
        let keyPath = key.map { "/" + $0 } ?? "/"
        switch addressing {
        case .path:
            return (authority, "/" + bucket + (key.map { "/" + $0 } ?? ""))
        case .virtualHost:
            return (bucket + "." + authority, keyPath)
        }
    }

    /// The URL curl fetches: path and query encoded exactly as they are signed.
    func url(host: String, path: String, query: [(name: String, value: String)]) -> String {
        let queryText = query.isEmpty ? "" : "?" + SigV4Signer.canonicalQuery(query)
        return scheme + "://" + host + S3URIEncoding.path(path) + queryText
    }
}
