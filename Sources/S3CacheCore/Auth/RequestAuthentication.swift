import S3Client

/// Who made a request.
enum Principal: Equatable {
    case anonymous
    /// A gateway key whose signature checked out.
    case key(AccessKey)

    var keyID: String? {
        if case let .key(key) = self { return key.id }
        return nil
    }
}

/// How the body of a signed request is checked while it streams.
enum PayloadSigning: Equatable {
    /// Nothing signed about the body (`UNSIGNED-PAYLOAD`, anonymous and presigned requests).
    case unsigned
    /// `x-amz-content-sha256` is the hex SHA-256 of the body.
    case sha256(String)
    /// An `aws-chunked` body; `signing` is set when each chunk is signed
    /// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`), `trailer` when a trailer follows the last chunk.
    case chunked(signing: ChunkSigning?, trailer: Bool)

    var isChunked: Bool {
        if case .chunked = self { return true }
        return false
    }

    var declaredSHA256: String? {
        if case let .sha256(hex) = self { return hex }
        return nil
    }
}

/// What a chunk signature is computed with: the request's signing key and scope, and the
/// request's own signature, which seeds the chain.
struct ChunkSigning: Equatable {
    var key: [UInt8]
    var timestamp: String
    var scope: String
    var seedSignature: String
}

/// A request that passed authentication.
struct Authentication: Equatable {
    var principal: Principal
    var payload: PayloadSigning
    /// Whether the client speaks SigV4 (a signed or presigned request): its errors are S3's XML
    /// and its successful writes look like S3's.
    var speaksS3: Bool

    static let anonymous = Authentication(principal: .anonymous, payload: .unsigned, speaksS3: false)
}

/// Why authentication failed, in S3's terms.
struct AuthenticationFailure: Error, Equatable, CustomStringConvertible {
    /// S3's error code: `SignatureDoesNotMatch`, `InvalidAccessKeyId`, …
    var code: String
    var status: Int
    /// For the client; never a secret, a signature or the `Authorization` value.
    var message: String
    /// The metric label and audit reason (`signature`, `unknown_key`, `skew`, `expired`, …).
    var reason: String
    /// The key id the request named, when it named one (for the audit log).
    var keyID: String?

    var description: String { "\(status) \(code): \(message)" }

    static func malformed(_ message: String, query: Bool) -> AuthenticationFailure {
        AuthenticationFailure(
            code: query ? "AuthorizationQueryParametersError" : "AuthorizationHeaderMalformed", status: 400, message: message,
            reason: "malformed")
    }
}

/// Checks AWS Signature Version 4 on a client's request, as S3 does: the `Authorization`
/// header, or the `X-Amz-*` query parameters of a presigned URL. The canonical request is
/// built with the same functions our S3 signer uses (`SigV4Signer`), from what nginx passed:
/// the raw request target and the headers the signature names.
struct RequestAuthenticator {
    let keys: AccessKeys
    /// Unix seconds now (injected for tests).
    let now: Int64
    /// This thread's derived signing keys, when it keeps them.
    var signingKeys: SigningKeyCache? = nil

    /// Largest clock difference accepted, as S3's (`RequestTimeTooSkewed`).
    static let maxSkew: Int64 = 15 * 60
    /// Longest presigned URL lifetime, as S3's.
    static let maxPresignedLifetime: Int64 = 7 * 24 * 3600

    /// The request's principal; anonymous when it carries no signature at all. `target` is the
    /// raw `REQUEST_URI` when the caller has read it already.
    func authenticate(_ exchange: any Exchange, method: String, target: String? = nil) throws(AuthenticationFailure) -> Authentication {
        let target = target ?? exchange.param("REQUEST_URI") ?? ""
        let query = QueryParameters(target)
        if let authorization = exchange.param("HTTP_AUTHORIZATION") {
            if authorization.hasPrefix("AWS4-HMAC-SHA256 ") || authorization == "AWS4-HMAC-SHA256" {
                return try headerSignature(authorization, exchange: exchange, method: method, target: target, query: query)
            }
            if authorization.hasPrefix("AWS ") { throw Self.sigV2 }
            throw AuthenticationFailure(
                code: "InvalidArgument", status: 400, message: "Unsupported Authorization Type", reason: "malformed")
        }
        if query.value("X-Amz-Algorithm") != nil || query.value("X-Amz-Signature") != nil {
            return try presigned(exchange: exchange, method: method, target: target, query: query)
        }
        if query.value("AWSAccessKeyId") != nil || query.value("Signature") != nil { throw Self.sigV2 }
        return .anonymous
    }

    private static let sigV2 = AuthenticationFailure(
        code: "InvalidRequest", status: 400,
        message: "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
        reason: "sigv2")

    // MARK: - Authorization header

    private func headerSignature(
        _ authorization: String, exchange: any Exchange, method: String, target: String, query: QueryParameters
    ) throws(AuthenticationFailure) -> Authentication {
        let fields = Self.authorizationFields(authorization)
        guard let credential = fields.credential, let signedHeaders = fields.signedHeaders, let signature = fields.signature
        else {
            throw .malformed("the Authorization header needs Credential, SignedHeaders and Signature", query: false)
        }
        guard let timestamp = exchange.param("HTTP_X_AMZ_DATE") else {
            throw AuthenticationFailure(
                code: "AccessDenied", status: 403, message: "AWS authentication requires a valid x-amz-date header",
                reason: "malformed")
        }
        guard let payloadHash = exchange.param("HTTP_X_AMZ_CONTENT_SHA256") else {
            throw AuthenticationFailure(
                code: "InvalidRequest", status: 400, message: "Missing required header for this request: x-amz-content-sha256",
                reason: "malformed")
        }
        let scope = try Credential(credential, query: false)
        let key = try lookUp(scope.keyID)
        let signed = try signedHeaderNames(signedHeaders, required: ["host", "x-amz-date", "x-amz-content-sha256"], query: false)
        let date = try requestTime(timestamp, scope: scope, query: false)
        try checkSkew(date, keyID: key.id)
        let payload: PayloadSigning
        switch payloadHash {
        case "UNSIGNED-PAYLOAD": payload = .unsigned
        case "STREAMING-UNSIGNED-PAYLOAD-TRAILER": payload = .chunked(signing: nil, trailer: true)
        case "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER": payload = .unsigned  // set below
        case _ where Self.isHexDigest(payloadHash): payload = .sha256(payloadHash)
        default:
            throw AuthenticationFailure(
                code: "InvalidArgument", status: 400, message: "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-… or a SHA-256",
                reason: "malformed", keyID: key.id)
        }
        let canonical = try canonicalRequest(
            method: method, target: target, query: query.canonical(excluding: nil), signedHeaders: signed, exchange: exchange,
            payloadHash: payloadHash, keyID: key.id)
        let signingKey = try verify(signature, canonicalRequest: canonical, scope: scope, timestamp: timestamp, key: key)
        if payloadHash.hasPrefix("STREAMING-AWS4-HMAC-SHA256-PAYLOAD") {
            let chain = ChunkSigning(key: signingKey, timestamp: timestamp, scope: scope.text, seedSignature: signature)
            return Authentication(
                principal: .key(key), payload: .chunked(signing: chain, trailer: payloadHash.hasSuffix("-TRAILER")), speaksS3: true)
        }
        return Authentication(principal: .key(key), payload: payload, speaksS3: true)
    }

    // MARK: - Presigned URL

    private func presigned(exchange: any Exchange, method: String, target: String, query: QueryParameters)
        throws(AuthenticationFailure) -> Authentication
    {
        guard query.value("X-Amz-Algorithm") == "AWS4-HMAC-SHA256" else {
            throw .malformed("X-Amz-Algorithm must be AWS4-HMAC-SHA256", query: true)
        }
        guard let credential = query.value("X-Amz-Credential"), let timestamp = query.value("X-Amz-Date"),
              let expiresText = query.value("X-Amz-Expires"), let signedHeaders = query.value("X-Amz-SignedHeaders"),
              let signature = query.value("X-Amz-Signature")
        else {
            throw .malformed(
                "a presigned URL needs X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature",
                query: true)
        }
        let scope = try Credential(credential, query: true)
        let key = try lookUp(scope.keyID)
        guard let expires = Int64(expiresText), expires >= 1, expires <= Self.maxPresignedLifetime else {
            throw .malformed("X-Amz-Expires must be a number of seconds from 1 to 604800", query: true)
        }
        let signed = try signedHeaderNames(signedHeaders, required: ["host"], query: true)
        let date = try requestTime(timestamp, scope: scope, query: true)
        guard date <= now + Self.maxSkew else {
            throw AuthenticationFailure(
                code: "AccessDenied", status: 403, message: "Request is not valid yet", reason: "skew", keyID: key.id)
        }
        guard now <= date + expires else {
            throw AuthenticationFailure(
                code: "AccessDenied", status: 403, message: "Request has expired", reason: "expired", keyID: key.id)
        }
        let payloadHash = query.value("X-Amz-Content-Sha256") ?? "UNSIGNED-PAYLOAD"
        let canonical = try canonicalRequest(
            method: method, target: target, query: query.canonical(excluding: "X-Amz-Signature"), signedHeaders: signed,
            exchange: exchange, payloadHash: payloadHash, keyID: key.id)
        _ = try verify(signature, canonicalRequest: canonical, scope: scope, timestamp: timestamp, key: key)
        return Authentication(
            principal: .key(key), payload: Self.isHexDigest(payloadHash) ? .sha256(payloadHash) : .unsigned, speaksS3: true)
    }

    // MARK: - Shared steps

    /// `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`, split on bytes: the header
    /// is ASCII, and splitting Characters costs grapheme breaking on every signed request.
    static func authorizationFields(_ header: String) -> (credential: String?, signedHeaders: String?, signature: String?) {
        var result: (credential: String?, signedHeaders: String?, signature: String?) = (nil, nil, nil)
        var header = header
        header.withUTF8 { bytes in
            var position = min(bytes.count, "AWS4-HMAC-SHA256".utf8.count)
            while position < bytes.count {
                var end = position
                while end < bytes.count, bytes[end] != UInt8(ascii: ",") { end += 1 }
                var start = position
                while start < end, bytes[start] == UInt8(ascii: " ") || bytes[start] == UInt8(ascii: "\t") { start += 1 }
                var stop = end
                while stop > start, bytes[stop - 1] == UInt8(ascii: " ") || bytes[stop - 1] == UInt8(ascii: "\t") { stop -= 1 }
                if let equals = UnsafeBufferPointer(rebasing: bytes[start..<stop]).firstIndex(of: UInt8(ascii: "=")) {
                    let name = UnsafeBufferPointer(rebasing: bytes[start..<(start + equals)])
                    let value = String(decoding: UnsafeBufferPointer(rebasing: bytes[(start + equals + 1)..<stop]), as: UTF8.self)
                    if name.elementsEqual("Credential".utf8) {
                        result.credential = value
                    } else if name.elementsEqual("SignedHeaders".utf8) {
                        result.signedHeaders = value
                    } else if name.elementsEqual("Signature".utf8) {
                        result.signature = value
                    }
                }
                position = end + 1
            }
        }
        return result
    }

    private func lookUp(_ id: String) throws(AuthenticationFailure) -> AccessKey {
        guard let key = keys[id] else {
            throw AuthenticationFailure(
                code: "InvalidAccessKeyId", status: 403, message: "The AWS Access Key Id you provided does not exist in our records.",
                reason: "unknown_key", keyID: AccessKeys.isValidID(id) ? id : nil)
        }
        return key
    }

    private func signedHeaderNames(_ text: String, required: [String], query: Bool) throws(AuthenticationFailure) -> [String] {
        let parts = text.utf8.split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false)
        let wellFormed = parts.allSatisfy { part in
            !part.isEmpty && part.allSatisfy { $0 > 0x20 && $0 < 0x7f && !(UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) }
        }
        let names = parts.map { String(Substring($0)) }
        guard !names.isEmpty, names.count <= 64, wellFormed else {
            throw .malformed("SignedHeaders must be lower-case header names separated by ';'", query: query)
        }
        for name in required where !names.contains(name) {
            throw .malformed("SignedHeaders must include \(name)", query: query)
        }
        return names
    }

    /// `20260102T030405Z` as Unix seconds, on the credential's day.
    private func requestTime(_ timestamp: String, scope: Credential, query: Bool) throws(AuthenticationFailure) -> Int64 {
        guard let seconds = Self.parseAmzDate(timestamp) else {
            throw .malformed("the request date is not YYYYMMDDTHHMMSSZ", query: query)
        }
        guard timestamp.hasPrefix(scope.day) else {
            throw .malformed("the credential's date does not match the request's", query: query)
        }
        return seconds
    }

    private func checkSkew(_ date: Int64, keyID: String) throws(AuthenticationFailure) {
        guard abs(now - date) <= Self.maxSkew else {
            throw AuthenticationFailure(
                code: "RequestTimeTooSkewed", status: 403,
                message: "The difference between the request time and the server's time is too large.", reason: "skew", keyID: keyID)
        }
    }

    private func canonicalRequest(
        method: String, target: String, query: String, signedHeaders: [String], exchange: any Exchange, payloadHash: String,
        keyID: String
    ) throws(AuthenticationFailure) -> SigV4Signer.CanonicalRequest {
        let rawPath = target.utf8.prefix { $0 != UInt8(ascii: "?") }
        // S3's canonical URI: the path decoded once and encoded once by the rules our signer
        // uses, so that a client which escaped more (or fewer) characters still matches.
        guard let decoded = PercentDecoding.decode(Substring(rawPath)), let path = String(validating: decoded, as: UTF8.self) else {
            throw AuthenticationFailure(
                code: "SignatureDoesNotMatch", status: 403, message: Self.mismatch, reason: "signature", keyID: keyID)
        }
        var headers: [(name: String, value: String)] = []
        for name in signedHeaders {
            guard let value = exchange.param(named: Self.parameterName(forHeader: name)) else {
                throw AuthenticationFailure(
                    code: "SignatureDoesNotMatch", status: 403, message: "a signed header (\(name)) is missing from the request",
                    reason: "signature", keyID: keyID)
            }
            headers.append((name, value))
        }
        return SigV4Signer.canonicalRequest(
            method: method, canonicalURI: S3URIEncoding.path(path), canonicalQuery: query, headers: headers, payloadHash: payloadHash)
    }

    /// Checks `signature` in constant time; returns the signing key (for chunk signatures).
    private func verify(
        _ signature: String, canonicalRequest: SigV4Signer.CanonicalRequest, scope: Credential, timestamp: String, key: AccessKey
    )
        throws(AuthenticationFailure) -> [UInt8]
    {
        let signingKey = signingKeys?.key(for: key, scope: scope)
            ?? SigV4Signer.signingKey(secretKey: key.secret, day: scope.day, region: scope.region, service: scope.service)
        let stringToSign = SigV4Signer.stringToSign(timestamp: timestamp, scope: scope.text, canonicalRequest: canonicalRequest)
        let expected = SigV4Signer.signature(key: signingKey, stringToSign: stringToSign)
        guard ConstantTime.equal(signature, expected) else {
            throw AuthenticationFailure(code: "SignatureDoesNotMatch", status: 403, message: Self.mismatch, reason: "signature", keyID: key.id)
        }
        return signingKey
    }

    static let mismatch = "The request signature we calculated does not match the signature you provided. Check your key and signing method."

    /// The CGI parameter nginx puts a request header in.
    static func parameterName(forHeader name: String) -> String {
        switch name {
        case "content-type": return "CONTENT_TYPE"
        case "content-length": return "CONTENT_LENGTH"
        default:
            var bytes = Array("HTTP_".utf8)
            bytes.reserveCapacity(5 + name.utf8.count)
            for byte in name.utf8 {
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"): bytes.append(byte - 0x20)
                case UInt8(ascii: "-"): bytes.append(UInt8(ascii: "_"))
                default: bytes.append(byte)
                }
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    static func isHexDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// `YYYYMMDDTHHMMSSZ` as Unix seconds; nil unless exactly that form and a real date.
    static func parseAmzDate(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count == 16, bytes[8] == UInt8(ascii: "T"), bytes[15] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for byte in bytes[range] {
                guard (0x30...0x39).contains(byte) else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8), let hour = number(9..<11),
              let minute = number(11..<13), let second = number(13..<15), (1...12).contains(month)
        else { return nil }
        return HTTPDate.Fields(year: year, month: month, day: day, time: (hour, minute, second)).secondsSinceEpoch
    }
}

/// `AKID/20260102/us-east-1/s3/aws4_request`.
struct Credential {
    let keyID: String
    let day: String
    let region: String
    let service: String

    /// The scope as signed; every signature of the request uses it, so it is made once.
    let text: String

    init(_ credential: String, query: Bool) throws(AuthenticationFailure) {
        let parts = credential.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map { String(Substring($0)) }
        guard parts.count == 5, !parts[0].isEmpty, parts[1].utf8.count == 8, parts[1].utf8.allSatisfy({ (0x30...0x39).contains($0) }),
              !parts[2].isEmpty, parts[2].utf8.count <= 64, parts[4] == "aws4_request"
        else {
            throw .malformed("the credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/s3/aws4_request", query: query)
        }
        guard parts[3] == "s3" else { throw .malformed("the credential's service must be s3", query: query) }
        keyID = parts[0]
        day = parts[1]
        region = parts[2]
        service = parts[3]
        text = SigV4Signer.scope(day: day, region: region, service: service)
    }
}

/// The query of a request target, split and percent-decoded once (`+` stays a plus: SigV4
/// clients write a space as `%20`).
struct QueryParameters {
    let pairs: [(name: String, value: String)]

    init(_ target: String) {
        guard let mark = target.utf8.firstIndex(of: UInt8(ascii: "?")) else {
            pairs = []
            return
        }
        let query = target[target.utf8.index(after: mark)...]
        pairs = query.split(separator: "&", omittingEmptySubsequences: true).map { item in
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decoded(_ text: Substring) -> String {
                PercentDecoding.decode(text).map { String(decoding: $0, as: UTF8.self) } ?? String(text)
            }
            return (decoded(parts[0]), parts.count > 1 ? decoded(parts[1]) : "")
        }
    }

    func value(_ name: String) -> String? {
        pairs.first { $0.name == name }?.value
    }

    /// SigV4's canonical query string, without `excluded` (the presigned signature itself).
    func canonical(excluding excluded: String?) -> String {
        SigV4Signer.canonicalQuery(pairs.filter { $0.name != excluded })
    }
}

/// Signing keys derived from gateway secrets, kept by one worker thread: a key serves every
/// request its client signs that day in that region, and deriving it is four HMACs. Rebuilt with
/// the thread's gateway on a reload, so a changed secret never meets an old key.
final class SigningKeyCache {
    private var keys: [String: [UInt8]] = [:]
    /// The key used last: a thread mostly sees one client in one region on one day.
    private var last: (secret: String, scope: String, key: [UInt8])?
    /// Bound on entries: past it the cache starts over (clients × days × regions is small).
    static let limit = 256

    func key(for key: AccessKey, scope: Credential) -> [UInt8] {
        let text = scope.text
        if let last, last.scope == text, last.secret == key.secret { return last.key }
        let derived = lookUp(key, scope: scope, name: key.id + "/" + text)
        last = (key.secret, text, derived)
        return derived
    }

    private func lookUp(_ key: AccessKey, scope: Credential, name: String) -> [UInt8] {
        if let known = keys[name] { return known }
        if keys.count >= Self.limit { keys.removeAll(keepingCapacity: true) }
        let derived = SigV4Signer.signingKey(secretKey: key.secret, day: scope.day, region: scope.region, service: scope.service)
        keys[name] = derived
        return derived
    }
}

/// Comparisons of secrets (signatures, tokens) in time that does not depend on where they differ.
enum ConstantTime {
    /// Equal strings, in time that depends on their lengths only.
    static func equal(_ left: String, _ right: String) -> Bool {
        equal(Array(left.utf8), Array(right.utf8))
    }

    static func equal(_ left: [UInt8], _ right: [UInt8]) -> Bool {
        guard left.count == right.count else { return false }
        var difference: UInt8 = 0
        for index in left.indices { difference |= left[index] ^ right[index] }
        return difference == 0
    }
}
