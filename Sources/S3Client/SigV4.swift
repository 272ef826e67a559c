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
        let canonical = Self.canonicalRequest(
            method: request.method, canonicalURI: S3URIEncoding.path(request.path.isEmpty ? "/" : request.path),
            canonicalQuery: Self.canonicalQuery(request.query), headers: headers, payloadHash: request.payloadHash)
        let scope = Self.scope(day: date.day, region: region, service: service)
        let stringToSign = Self.stringToSign(timestamp: date.timestamp, scope: scope, canonicalRequest: canonical)
        let key = Self.signingKey(secretKey: credentials.secretKey, day: date.day, region: region, service: service)
        let signature = Self.signature(key: key, stringToSign: stringToSign)
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKey)/\(scope), "
            + "SignedHeaders=\(canonical.signedHeaders), Signature=\(signature)"
        return SigV4Signature(
            canonicalRequest: canonical.text, stringToSign: String(decoding: stringToSign, as: UTF8.self),
            signedHeaders: canonical.signedHeaders, signature: signature, authorization: authorization, amzDate: date.timestamp)
    }

    /// The canonical request: the six lines whose hash is signed, built as bytes (it is built for
    /// every signed request the gateway checks, and Swift string joins cost more than the HMACs).
    public struct CanonicalRequest: Sendable {
        public let bytes: [UInt8]
        /// `host;x-amz-date`: the lower-cased, sorted names of the signed headers.
        public let signedHeaders: String

        public var text: String { String(decoding: bytes, as: UTF8.self) }
    }

    /// `canonicalURI` is the path already encoded (`S3URIEncoding.path`), `canonicalQuery` from
    /// `canonicalQuery(_:)`. Header names are lower-cased, values trimmed with inner runs of
    /// spaces collapsed, repeated names joined with commas in the order given, lines sorted by
    /// name (bytewise).
    public static func canonicalRequest(
        method: String, canonicalURI: String, canonicalQuery: String, headers: [(name: String, value: String)], payloadHash: String
    ) -> CanonicalRequest {
        var entries: [(name: [UInt8], value: [UInt8])] = []
        entries.reserveCapacity(headers.count)
        for header in headers {
            let name = asciiLowercased(header.name)
            let value = collapsedSpaces(header.value)
            if let index = entries.firstIndex(where: { $0.name == name }) {
                entries[index].value.append(UInt8(ascii: ","))
                entries[index].value += value
            } else {
                entries.append((name, value))
            }
        }
        entries.sort { $0.name.lexicographicallyPrecedes($1.name) }
        var signed: [UInt8] = []
        for (index, entry) in entries.enumerated() {
            if index > 0 { signed.append(UInt8(ascii: ";")) }
            signed += entry.name
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256 + canonicalURI.utf8.count + canonicalQuery.utf8.count + signed.count * 4)
        let newline = UInt8(ascii: "\n")
        bytes += method.utf8
        bytes.append(newline)
        bytes += canonicalURI.utf8
        bytes.append(newline)
        bytes += canonicalQuery.utf8
        bytes.append(newline)
        for entry in entries {
            bytes += entry.name
            bytes.append(UInt8(ascii: ":"))
            bytes += entry.value
            bytes.append(newline)
        }
        bytes.append(newline)
        bytes += signed
        bytes.append(newline)
        bytes += payloadHash.utf8
        return CanonicalRequest(bytes: bytes, signedHeaders: String(decoding: signed, as: UTF8.self))
    }

    /// `20150830/us-east-1/s3/aws4_request`.
    public static func scope(day: String, region: String, service: String) -> String {
        "\(day)/\(region)/\(service)/aws4_request"
    }

    /// `AWS4-HMAC-SHA256`, the timestamp, the scope and the canonical request's hex SHA-256, one per line.
    public static func stringToSign(timestamp: String, scope: String, canonicalRequest: CanonicalRequest) -> [UInt8] {
        var bytes = Array("AWS4-HMAC-SHA256\n".utf8)
        bytes.reserveCapacity(128)
        bytes += timestamp.utf8
        bytes.append(UInt8(ascii: "\n"))
        bytes += scope.utf8
        bytes.append(UInt8(ascii: "\n"))
        bytes += Hex.encodeBytes(canonicalRequest.bytes.withUnsafeBytes { SHA256.digest($0) })
        return bytes
    }

    /// Lower-case hex HMAC of `stringToSign` under the derived `key`.
    public static func signature(key: [UInt8], stringToSign: [UInt8]) -> String {
        Hex.encode(HMACSHA256.authenticate(key: key, message: stringToSign))
    }

    /// As `signature(key:stringToSign:)`, for the chunk and trailer strings.
    static func signature(key: [UInt8], stringToSign: String) -> String {
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

    /// Header names are ASCII: lowercasing them byte by byte avoids Unicode case mapping on
    /// every signed request, and names already lower-case come back as they are.
    static func asciiLowercased(_ text: String) -> [UInt8] {
        text.utf8.map { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) ? $0 + 0x20 : $0 }
    }

    /// Orders by UTF-8 bytes, as SigV4 requires (String's `<` compares Unicode scalars
    /// after normalisation, which is not the same order for every input).
    static func bytewiseLess(_ lhs: String, _ rhs: String) -> Bool {
        lhs.utf8.lexicographicallyPrecedes(rhs.utf8)
    }

    /// Trims spaces and tabs at both ends and turns each inner run of them into one space.
    static func collapsedSpaces(_ value: String) -> [UInt8] {
        var output = [UInt8]()
        output.reserveCapacity(value.utf8.count)
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
        return output
    }
}
