/// Static credentials for SigV4.
///
/// `description` never shows the secret, so a credentials value can be logged or
/// interpolated by mistake without leaking it.
public struct S3Credentials: Sendable, Equatable, CustomStringConvertible {
    public var accessKey: String
    public var secretKey: String

    public init(accessKey: String, secretKey: String) {
        self.accessKey = accessKey
        self.secretKey = secretKey
    }

    public var description: String { "S3Credentials(accessKey: \(accessKey), secretKey: <redacted>)" }
}

/// How bucket names are placed in request URLs.
public enum S3Addressing: String, Sendable, Equatable {
    /// `http://endpoint/bucket/key`: works with every S3-compatible server.
    case path
    /// `http://bucket.endpoint/key`: what AWS prefers for new buckets.
    case virtualHost = "virtual"
}

/// Where and how to reach the S3 backend.
public struct S3Configuration: Sendable, Equatable {
    /// `host:port` (or `host`) of the backend, without scheme. Default `localhost:9000`.
    public var endpoint: String
    /// HTTPS with certificate verification when true. Default false.
    public var useSSL: Bool
    /// SigV4 region. Default `us-east-1`.
    public var region: String
    public var credentials: S3Credentials
    public var addressing: S3Addressing
    /// Seconds to establish a TCP (and TLS) connection. Default 5.
    public var connectTimeout: Double
    /// Seconds without receiving or sending a byte before a transfer is abandoned. Default 30.
    public var readTimeout: Double
    /// PEM bundle of trusted CAs for HTTPS; nil uses the system store.
    public var caFile: String?

    public init(
        endpoint: String = "localhost:9000",
        useSSL: Bool = false,
        region: String = "us-east-1",
        credentials: S3Credentials = S3Credentials(accessKey: "minioadmin", secretKey: "minioadmin"),
        addressing: S3Addressing = .path,
        connectTimeout: Double = 5,
        readTimeout: Double = 30,
        caFile: String? = nil
    ) {
        self.endpoint = endpoint
        self.useSSL = useSSL
        self.region = region
        self.credentials = credentials
        self.addressing = addressing
        self.connectTimeout = connectTimeout
        self.readTimeout = readTimeout
        self.caFile = caFile
    }
}

/// Status line and headers of an S3 response.
public struct S3ResponseHead: Sendable, Equatable {
    public var status: Int
    /// Header fields in arrival order; names as the server sent them.
    public var headers: [(name: String, value: String)]

    public init(status: Int, headers: [(name: String, value: String)]) {
        self.status = status
        self.headers = headers
    }

    /// The first value of a header, matched case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    public static func == (lhs: S3ResponseHead, rhs: S3ResponseHead) -> Bool {
        lhs.status == rhs.status && lhs.headers.elementsEqual(rhs.headers) { $0 == $1 }
    }
}

/// Why an S3 call failed.
public enum S3Error: Error, Sendable, Equatable, CustomStringConvertible {
    /// S3 answered with an error status. `code` is the XML `<Code>` (e.g. `NoSuchKey`),
    /// or nil when the response had no parsable body (HEAD, or a proxy's HTML page).
    case service(status: Int, code: String?, message: String?, requestID: String?)
    /// No usable answer: connection refused, DNS, TLS verification, reset mid-transfer.
    case transport(message: String)
    /// The connect or read timeout ran out.
    case timeout(message: String)
    /// Our own callback stopped the transfer (client went away, sink refused bytes).
    case aborted(message: String)

    public var description: String {
        switch self {
        case let .service(status, code, message, requestID):
            return "S3 answered \(status) \(code ?? "-"): \(message ?? "no message") (request id \(requestID ?? "-"))"
        case let .transport(message): return "S3 unreachable: \(message)"
        case let .timeout(message): return "S3 timed out: \(message)"
        case let .aborted(message): return "transfer aborted: \(message)"
        }
    }
}
