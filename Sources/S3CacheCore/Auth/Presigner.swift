import S3Client

/// Presigned URLs for the gateway's own keys (`s3cache presign`), exactly as AWS SDKs' presigners
/// make them for S3: query authentication over the `host` header, `UNSIGNED-PAYLOAD`.
public enum Presigner {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// `url` (`http://host[:port]/objects/bucket/key`) signed for `method`, valid for `expires`
    /// seconds from `now` (Unix seconds).
    public static func presign(
        url: String, method: String, expires: Int64, key: AccessKey, region: String, now: Int64
    ) throws(Failure) -> String {
        guard (1...RequestAuthenticator.maxPresignedLifetime).contains(expires) else {
            throw Failure(description: "--expires must be 1 to \(RequestAuthenticator.maxPresignedLifetime) seconds")
        }
        let scheme: String
        if url.hasPrefix("https://") { scheme = "https" } else if url.hasPrefix("http://") { scheme = "http" } else {
            throw Failure(description: "the URL must start with http:// or https://")
        }
        let rest = url.dropFirst(scheme.count + 3)
        guard let slash = rest.firstIndex(of: "/"), slash > rest.startIndex else {
            throw Failure(description: "the URL needs a host and a path such as /objects/bucket/key")
        }
        let host = String(rest[..<slash])
        let pathAndQuery = rest[slash...]
        guard !pathAndQuery.contains("?"), !pathAndQuery.contains("#") else {
            throw Failure(description: "the URL must not have a query or a fragment")
        }
        guard let decoded = PercentDecoding.decodeText(Substring(pathAndQuery)) else {
            throw Failure(description: "the URL's path has a malformed %-escape")
        }
        let date = AmzDate(secondsSinceEpoch: now)
        let scope = SigV4Signer.scope(day: date.day, region: region, service: "s3")
        let query: [(name: String, value: String)] = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Credential", "\(key.id)/\(scope)"), ("X-Amz-Date", date.timestamp),
            ("X-Amz-Expires", String(expires)), ("X-Amz-SignedHeaders", "host"),
        ]
        let canonicalQuery = SigV4Signer.canonicalQuery(query)
        let encodedPath = S3URIEncoding.path(decoded)
        let canonicalRequest = SigV4Signer.canonicalRequest(
            method: method, canonicalURI: encodedPath, canonicalQuery: canonicalQuery, headers: [("host", host)],
            payloadHash: "UNSIGNED-PAYLOAD")
        let signingKey = SigV4Signer.signingKey(secretKey: key.secret, day: date.day, region: region, service: "s3")
        let signature = SigV4Signer.signature(
            key: signingKey, stringToSign: SigV4Signer.stringToSign(timestamp: date.timestamp, scope: scope, canonicalRequest: canonicalRequest))
        return "\(scheme)://\(host)\(encodedPath)?\(canonicalQuery)&X-Amz-Signature=\(signature)"
    }
}
