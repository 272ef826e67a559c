import ObjectCache
import S3Client

/// Serves `/objects/{bucket}/{key}` against an `ObjectStore`, translating between the
/// client's HTTP and the store's objects.
final class ObjectHandler {
    private let store: any ObjectStore
    private let maxUploadSize: Int64
    private let gate: BackendGate
    /// Nil when caching is off (`MAX_CACHE_SIZE=0`).
    private let cache: ObjectCache?
    private let cachedReads: CachedReads?

    /// Client request headers stored with the object on PUT (besides Content-Type).
    private static let forwardedWriteHeaders = [
        ("HTTP_CACHE_CONTROL", "Cache-Control"), ("HTTP_CONTENT_DISPOSITION", "Content-Disposition"),
        ("HTTP_CONTENT_LANGUAGE", "Content-Language"),
    ]

    init(store: any ObjectStore, maxUploadSize: Int64, gate: BackendGate, cache: ObjectCache?, flightTimeout: Double) {
        self.store = store
        self.maxUploadSize = maxUploadSize
        self.gate = gate
        self.cache = cache
        self.cachedReads = cache.map { CachedReads(cache: $0, store: store, gate: gate, flightTimeout: flightTimeout) }
    }

    /// Serves one object request; returns what the cache did, when it was involved.
    func serve(_ method: ObjectMethod, _ address: ObjectAddress, exchange: any Exchange, response: ResponseWriter) throws
        -> CacheReport?
    {
        switch method {
        case .get:
            let request = ReadRequest(exchange)
            if let cachedReads { return try cachedReads.get(address, request: request, response: response) }
            try gate.withPermit { try Passthrough(store: store).get(address, request: request, response: response, extraHeaders: []) }
        case .head:
            let request = ReadRequest(exchange)
            if let cachedReads { return try cachedReads.head(address, request: request, response: response) }
            try gate.withPermit { try Passthrough(store: store).head(address, headers: request.forwardedHeaders, response: response) }
        case .put:
            try writing(address, response: response) { try put(address, exchange: exchange) }
        case .delete:
            try writing(address, response: response) { try delete(address) }
        }
        return nil
    }

    /// Runs a write, invalidates the key, and only then answers.
    ///
    /// The invalidation happens whatever the outcome (even a failed or timed-out write may have
    /// reached S3) and before the first byte of the answer, so a client that saw the 200 can
    /// never read the old version afterwards: a stale read after a write is the one thing the
    /// cache must never do.
    private func writing(_ address: ObjectAddress, response: ResponseWriter, _ body: () throws -> WriteAnswer) throws {
        let answer: WriteAnswer
        do {
            defer { cache?.invalidate(address.cacheKey) }
            answer = try gate.withPermit(body)
        }
        try answer.send(response)
    }

    private func put(_ address: ObjectAddress, exchange: any Exchange) throws -> WriteAnswer {
        let body = try uploadBody(exchange)
        defer { body.close() }
        var headers = forwarded(Self.forwardedWriteHeaders, from: exchange)
        let contentType = exchange.param("CONTENT_TYPE").flatMap { $0.isEmpty ? nil : $0 }
        headers.append(("Content-Type", contentType ?? ContentTypes.guess(forKey: address.key)))
        if case .stream = body, let md5 = exchange.param("HTTP_CONTENT_MD5") {
            // Only for bodies sent as they are: the digest covers the bytes on the wire.
            headers.append(("Content-MD5", md5))
        }
        var received: Int64 = 0
        let expected = body.contentLength
        let head = try store.putObject(
            bucket: address.bucket, key: address.key, contentLength: expected, headers: headers, payloadSHA256: nil
        ) { buffer in
            let room = Int(min(Int64(buffer.count), expected - received))
            guard room > 0 else { return 0 }
            let count = try body.read(from: exchange, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<room]))
            if count == 0 { throw ClientAbort(received: received, expected: expected) }
            received += Int64(count)
            return count
        }
        let etag = head.header("ETag") ?? ""
        return .stored(
            JSON.object([
                ("bucket", .string(address.bucket)), ("key", .string(address.key)),
                ("etag", .string(etag)), ("size", .int(expected)),
            ]),
            etag: etag)
    }

    private func delete(_ address: ObjectAddress) throws -> WriteAnswer {
        // S3 answers 204 whether or not the key existed; our API promises 404 for a missing one.
        _ = try store.headObject(bucket: address.bucket, key: address.key, headers: [])
        try store.deleteObject(bucket: address.bucket, key: address.key)
        return .deleted
    }

    private func uploadBody(_ exchange: any Exchange) throws -> UploadBody {
        let encoding = (exchange.param("HTTP_CONTENT_ENCODING") ?? "").trimmingWhitespace().lowercased()
        switch encoding {
        case "gzip", "x-gzip":
            return try UploadBody.inflating(from: exchange, limit: maxUploadSize)
        case "", "identity":
            guard let text = exchange.param("CONTENT_LENGTH"), !text.isEmpty else { throw HTTPError.lengthRequired }
            guard let length = Int64(text), length >= 0 else { throw HTTPError.badRequest("invalid Content-Length") }
            guard length <= maxUploadSize else { throw HTTPError.payloadTooLarge(limit: maxUploadSize) }
            return .stream(contentLength: length)
        default:
            throw HTTPError.unsupportedEncoding(encoding)
        }
    }

    private func forwarded(_ names: [(String, String)], from exchange: any Exchange) -> [(name: String, value: String)] {
        names.compactMap { param, header in exchange.param(param).map { (header, $0) } }
    }
}

/// The client's body ended before its Content-Length: the upload is abandoned, nothing is stored.
struct ClientAbort: Error, CustomStringConvertible {
    let received: Int64
    let expected: Int64
    var description: String { "request body ended after \(received) of \(expected) bytes" }
}

/// The answer to a write, decided once S3 has it and sent only after the cache forgot the key.
enum WriteAnswer {
    /// PUT: 200 with a JSON summary and S3's ETag.
    case stored(_ json: String, etag: String)
    /// DELETE: 204.
    case deleted

    func send(_ response: ResponseWriter) throws {
        switch self {
        case let .stored(json, etag):
            try response.sendJSON(status: 200, json, headers: etag.isEmpty ? [] : [("ETag", etag)])
        case .deleted:
            try response.sendHead(status: 204, headers: [])
        }
    }
}
