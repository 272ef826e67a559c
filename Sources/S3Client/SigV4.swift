/// What SigV4 signs: one HTTP request as it will go on the wire.
public struct SigV4Request: Sendable {
    public var method: String
    /// The path before percent-encoding (`/bucket/my key.txt`); the signer encodes it once,
    /// exactly as `S3URIEncoding.path` encodes the path that is sent.
    public var path: String
    /// Query parameters before percent-encoding, in any order; a parameter without a value
    /// (`?lifecycle`) has an empty value.
    public var query: [(name: String, value: String)]
    /// Every header to sign, `host` included. Do not add `x-amz-date`: the signer does.
    public var headers: [(name: String, value: String)]
    /// Hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
    public var payloadHash: String

    public init(
        method: String, path: String, query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)], payloadHash: String
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.payloadHash = payloadHash
    }
}

/// The result of signing, with the intermediate strings kept so a mismatch can be
/// located (a server only ever answers `SignatureDoesNotMatch`).
public struct SigV4Signature: Sendable, Equatable {
    public var canonicalRequest: String
    public var stringToSign: String
    /// `host;x-amz-date`: the lower-cased, sorted names of the signed headers.
    public var signedHeaders: String
    /// Lower-case hex HMAC of the string to sign.
    public var signature: String
    /// The complete `Authorization` header value.
    public var authorization: String
    /// The `x-amz-date` header value the signature covers; send it with the request.
    public var amzDate: String
}

/// AWS Signature Version 4 with S3's rules: the path is encoded once and never normalised.
///
/// Pure: no clock, no I/O. The date comes in with each call, which is what lets the
/// published examples be checked byte for byte.
public struct SigV4Signer: Sendable {
    public var credentials: S3Credentials
    public var region: String
    /// `s3` for S3; the published test suite uses `service`.
    public var service: String

    public init(credentials: S3Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// Signs `request` as made at `date`.
    public func sign(_ request: SigV4Request, date: AmzDate) -> SigV4Signature {
        var headers = request.headers.filter { $0.name.lowercased() != "x-amz-date" }
        headers.append((name: "x-amz-date", value: date.timestamp))
        let (canonicalHeaders, signedHeaders) = Self.canonicalHeaders(headers)
        let canonicalRequest = Self.canonicalRequest(
            method: request.method, canonicalURI: S3URIEncoding.path(request.path.isEmpty ? "/" : request.path),
            canonicalQuery: Self.canonicalQuery(request.query), canonicalHeaders: canonicalHeaders, signedHeaders: signedHeaders,
            payloadHash: request.payloadHash)
        let scope = Self.scope(day: date.day, region: region, service: service)
        let stringToSign = Self.stringToSign(timestamp: date.timestamp, scope: scope, canonicalRequest: canonicalRequest)
        let key = Self.signingKey(secretKey: credentials.secretKey, day: date.day, region: region, service: service)
        let signature = Self.signature(key: key, stringToSign: stringToSign)
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKey)/\(scope), "
            + "SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return SigV4Signature(
            canonicalRequest: canonicalRequest, stringToSign: stringToSign, signedHeaders: signedHeaders,
            signature: signature, authorization: authorization, amzDate: date.timestamp)
    }

    /// The canonical request: the six lines whose hash is signed. `canonicalURI` is the path
    /// already encoded (`S3URIEncoding.path`), `canonicalHeaders` ends with a newline.
    public static func canonicalRequest(
        method: String, canonicalURI: String, canonicalQuery: String, canonicalHeaders: String, signedHeaders: String,
        payloadHash: String
    ) -> String {
        [method, canonicalURI, canonicalQuery, canonicalHeaders, signedHeaders, payloadHash].joined(separator: "\n")
    }

    /// `20150830/us-east-1/s3/aws4_request`.
    public static func scope(day: String, region: String, service: String) -> String {
        "\(day)/\(region)/\(service)/aws4_request"
    }

    public static func stringToSign(timestamp: String, scope: String, canonicalRequest: String) -> String {
        ["AWS4-HMAC-SHA256", timestamp, scope, SHA256.hexDigest(canonicalRequest)].joined(separator: "\n")
    }

    /// Lower-case hex HMAC of `stringToSign` under the derived `key`.
    public static func signature(key: [UInt8], stringToSign: String) -> String {
        Hex.encode(HMACSHA256.authenticate(key: key, message: stringToSign.utf8))
    }

    /// The signature of one chunk of an `aws-chunked` body
    /// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`): each chunk signs its bytes and the signature
    /// before it, the first chunk the request's own.
    public static func chunkSignature(
        key: [UInt8], timestamp: String, scope: String, previousSignature: String, chunkHash: String
    ) -> String {
        let stringToSign = [
            "AWS4-HMAC-SHA256-PAYLOAD", timestamp, scope, previousSignature, SHA256.emptyPayloadHash, chunkHash,
        ].joined(separator: "\n")
        return signature(key: key, stringToSign: stringToSign)
    }

    /// The signature of the trailer of a signed `aws-chunked` body
    /// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`): its header lines, each ending in `\n`.
    public static func trailerSignature(
        key: [UInt8], timestamp: String, scope: String, previousSignature: String, trailerHash: String
    ) -> String {
        let stringToSign = ["AWS4-HMAC-SHA256-TRAILER", timestamp, scope, previousSignature, trailerHash].joined(separator: "\n")
        return signature(key: key, stringToSign: stringToSign)
    }

    /// The key derived from the secret for one day, region and service.
    public static func signingKey(secretKey: String, day: String, region: String, service: String) -> [UInt8] {
        let dateKey = HMACSHA256.authenticate(key: Array("AWS4\(secretKey)".utf8), message: day.utf8)
        let regionKey = HMACSHA256.authenticate(key: dateKey, message: region.utf8)
        let serviceKey = HMACSHA256.authenticate(key: regionKey, message: service.utf8)
        return HMACSHA256.authenticate(key: serviceKey, message: "aws4_request".utf8)
    }

    /// Name/value pairs encoded, sorted by encoded name then value (byte order), joined with `&`.
    public static func canonicalQuery(_ query: [(name: String, value: String)]) -> String {
        query
            .map { (S3URIEncoding.component($0.name), S3URIEncoding.component($0.value)) }
            .sorted { $0.0 == $1.0 ? bytewiseLess($0.1, $1.1) : bytewiseLess($0.0, $1.0) }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// The canonical header block (each line ending in a newline) and the signed-header list.
    ///
    /// Names are lower-cased; values trimmed with inner runs of spaces collapsed; repeated
    /// names joined with commas in the order given; lines sorted by name.
    public static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> (canonical: String, signed: String) {
        var order: [String] = []
        var values: [String: [String]] = [:]
        for header in headers {
            let name = header.name.lowercased()
            if values[name] == nil { order.append(name) }
            values[name, default: []].append(collapseSpaces(header.value))
        }
        let names = order.sorted(by: bytewiseLess)
        let canonical = names.map { "\($0):\(values[$0]!.joined(separator: ","))\n" }.joined()
        return (canonical, names.joined(separator: ";"))
    }

    /// Orders by UTF-8 bytes, as SigV4 requires (String's `<` compares Unicode scalars
    /// after normalisation, which is not the same order for every input).
    static func bytewiseLess(_ lhs: String, _ rhs: String) -> Bool {
        lhs.utf8.lexicographicallyPrecedes(rhs.utf8)
    }

    /// Trims spaces and tabs at both ends and turns each inner run of them into one space.
    static func collapseSpaces(_ value: String) -> String {
        var output = [UInt8]()
        var pendingSpace = false
        for byte in value.utf8 {
            if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") {
                pendingSpace = !output.isEmpty
            } else {
                if pendingSpace { output.append(UInt8(ascii: " ")) }
                pendingSpace = false
                output.append(byte)
            }
        }
        return String(decoding: output, as: UTF8.self)
    }
}
