import S3Client

/// Reads answered by S3 itself, streamed to the client without touching the cache: the
/// path when caching is off, for ranges on a miss, and for objects too large to keep.
struct Passthrough {
    let store: any ObjectStore

    /// S3 response headers relayed to the client, by lower-cased name, with the spelling we send;
    /// everything else (x-amz-*, Server) stays behind.
    static let relayedHeaders: [String: String] = Dictionary(uniqueKeysWithValues: [
        "Content-Type", "Content-Length", "Content-Range", "Content-Encoding", "Content-Language",
        "Content-Disposition", "Cache-Control", "Expires", "ETag", "Last-Modified", "Accept-Ranges",
    ].map { ($0.lowercased(), $0) })

    /// The relayed headers of an S3 answer, spelled the same whatever case the server used.
    /// A value holding a control character is dropped: relayed, it could split or smuggle
    /// header lines, and S3 should never have stored it.
    static func clientHeaders(_ head: S3ResponseHead) -> [(name: String, value: String)] {
        head.headers.compactMap { header in
            guard HeaderValue.isSafe(header.value) else { return nil }
            return relayedHeaders[header.name.lowercased()].map { ($0, header.value) }
        }
    }

    /// `Vary: Accept-Encoding` for types the cache may hold compressed: the same URL can then
    /// answer with either coding, and caches in front of us must key on it.
    static func varyHeaders(contentType: String?) -> [(name: String, value: String)] {
        ContentCoding.isCompressible(contentType ?? "") ? [("Vary", "Accept-Encoding")] : []
    }

    func get(
        _ address: ObjectAddress, headers: [(name: String, value: String)], response: ResponseWriter,
        extraHeaders: [(name: String, value: String)] = []
    ) throws {
        try store.getObject(
            bucket: address.bucket, key: address.key, headers: headers,
            onHead: { head in
                try response.sendHead(
                    status: head.status,
                    headers: Self.clientHeaders(head) + Self.varyHeaders(contentType: head.header("Content-Type")) + extraHeaders)
            },
            onBody: { chunk in try response.sendBody(chunk) })
    }

    func head(
        _ address: ObjectAddress, headers: [(name: String, value: String)], response: ResponseWriter,
        extraHeaders: [(name: String, value: String)] = []
    ) throws {
        let head = try store.headObject(bucket: address.bucket, key: address.key, headers: headers)
        try response.sendHead(
            status: head.status,
            headers: Self.clientHeaders(head) + Self.varyHeaders(contentType: head.header("Content-Type")) + extraHeaders)
    }
}
