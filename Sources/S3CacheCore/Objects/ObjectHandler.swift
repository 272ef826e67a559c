import FastCGI
import ObjectCache
import S3Client

/// Serves `/objects/{bucket}/{key}` against an `ObjectStore`, translating between the
/// client's HTTP and the store's objects.
final class ObjectHandler {
    private let store: any ObjectStore
    private let limits: UploadLimits
    private let gate: BackendGate
    /// PUTs have their own bound: a slow uploader holds its thread and S3 connection for as long
    /// as its client trickles, and must never use up what reads need.
    private let uploadGate: BackendGate
    /// Nil when caching is off (`MAX_CACHE_SIZE=0`).
    private let cache: ObjectCache?
    private let cachedReads: CachedReads?

    /// Client request headers stored with the object on PUT (besides Content-Type).
    private static let forwardedWriteHeaders: [(param: StaticString, name: String)] = [
        ("HTTP_CACHE_CONTROL", "Cache-Control"), ("HTTP_CONTENT_DISPOSITION", "Content-Disposition"),
        ("HTTP_CONTENT_LANGUAGE", "Content-Language"),
    ]

    init(
        store: any ObjectStore, limits: UploadLimits, gate: BackendGate, uploadGate: BackendGate, cache: ObjectCache?,
        fillBudget: FillBudget, followerWaits: FollowerWaits, fileMinSize: Int = .max
    ) {
        self.store = store
        self.limits = limits
        self.gate = gate
        self.uploadGate = uploadGate
        self.cache = cache
        self.cachedReads = cache.map {
            CachedReads(
                cache: $0, store: store, gate: gate, fillBudget: fillBudget, waits: followerWaits, fileMinSize: fileMinSize)
        }
    }

    /// Serves one object request; returns what the cache did, when it was involved.
    func serve(
        _ method: ObjectMethod, _ address: ObjectAddress, auth: Authentication = .anonymous, exchange: any Exchange,
        response: ResponseWriter
    ) throws -> CacheReport?
    {
        switch method {
        case .get:
            let request = ReadRequest(exchange)
            if let cachedReads { return try cachedReads.get(address, request: request, response: response) }
            try gate.withPermit {
                try WorkerPool.blocking {
                    try Passthrough(store: store).get(address, request: request, response: response, extraHeaders: [])
                }
            }
        case .head:
            let request = ReadRequest(exchange)
            if let cachedReads { return try cachedReads.head(address, request: request, response: response) }
            try gate.withPermit {
                try WorkerPool.blocking { try Passthrough(store: store).head(address, headers: request.forwardedHeaders, response: response) }
            }
        case .put:
            try writing(address, gate: uploadGate, busy: .uploadsBusy, response: response) {
                try put(address, auth: auth, exchange: exchange)
            }
        case .delete:
            try writing(address, gate: gate, busy: .backendBusy, response: response) {
                try delete(address, conditions: WriteConditions(exchange))
            }
        case .purge:
            let purge = try PurgeRequest(address, exchange: exchange)
            let count = cache?.purge(purge.scope, mode: purge.mode) ?? 0
            try response.sendJSON(status: 200, purge.answer(purged: count))
        }
        return nil
    }

    /// Runs a write, invalidates the key, and only then answers.
    ///
    /// The invalidation happens whatever the outcome (even a failed or timed-out write may have
    /// reached S3) and before the first byte of the answer, so a client that saw the 200 can
    /// never read the old version afterwards: a stale read after a write is the one thing the
    /// cache must never do. The one exception is a write refused on its preconditions (412, or
    /// S3's 409 for a conflicting conditional write): the object is what it was, and so is the
    /// cache's copy.
    private func writing(
        _ address: ObjectAddress, gate: BackendGate, busy: HTTPError, response: ResponseWriter, _ body: () throws -> WriteAnswer
    ) throws {
        guard gate.tryAcquire() else { throw busy }
        let answer: WriteAnswer
        do {
            defer { gate.release() }
            // The client's body and S3's answer both come at their own pace.
            answer = try WorkerPool.blocking(body)
        } catch {
            if !Self.leftObjectUnchanged(error) { cache?.invalidate(address.cacheKey) }
            throw error
        }
        cache?.invalidate(address.cacheKey)
        try answer.send(response, asS3: response.speaksS3)
    }

    private static func leftObjectUnchanged(_ error: any Error) -> Bool {
        switch error {
        case let error as HTTPError: return error.status == 412 || error.status == 409
        case let .service(status, _, _, _) as S3Error: return status == 412 || status == 409
        default: return false
        }
    }

    private func put(_ address: ObjectAddress, auth: Authentication, exchange: any Exchange) throws -> WriteAnswer {
        // Everything about the request is checked before its body is read or S3 is asked.
        var headers = try Self.storedHeaders(exchange, key: address.key)
        let conditions = try WriteConditions(exchange)
        let body = try uploadBody(exchange, auth: auth)
        defer { body.close() }
        if case .stream = body, !auth.payload.isChunked,
           let md5 = try Self.headerValue(exchange, "HTTP_CONTENT_MD5", name: "Content-MD5")
        {
            // Only for bodies sent as they are: the digest covers the bytes on the wire.
            headers.append(("Content-MD5", md5))
        }
        if !conditions.isEmpty {
            // Checked here so that a refused write costs no upload (and for S3 servers that
            // ignore `If-Match` on PUT); passed on as well, so that S3 checks them atomically.
            try conditions.check(current: currentETag(address))
            headers += conditions.forwarded
        }
        var received: Int64 = 0
        let expected = body.contentLength
        let head = try store.putObject(
            bucket: address.bucket, key: address.key, contentLength: expected, headers: headers, payloadSHA256: nil
        ) { buffer in
            let room = Int(min(Int64(buffer.count), expected - received))
            guard room > 0 else { return 0 }
            let count = try body.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<room]))
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

    private func delete(_ address: ObjectAddress, conditions: WriteConditions) throws -> WriteAnswer {
        // S3 answers 204 whether or not the key existed; our API promises 404 for a missing one.
        let head = try store.headObject(bucket: address.bucket, key: address.key, headers: [])
        try conditions.check(current: head.header("ETag") ?? "")
        try store.deleteObject(bucket: address.bucket, key: address.key, headers: conditions.forwarded)
        return .deleted
    }

    /// S3's entity tag for the object, or nil when it does not exist.
    private func currentETag(_ address: ObjectAddress) throws -> String? {
        do {
            return try store.headObject(bucket: address.bucket, key: address.key, headers: []).header("ETag") ?? ""
        } catch let error as S3Error where error.isNotFound {
            return nil
        }
    }

    /// The body as it is to reach S3: its bytes (taken out of `aws-chunked` framing, inflated
    /// from gzip) and its length, with every digest the client declared checked on the way.
    private func uploadBody(_ exchange: any Exchange, auth: Authentication) throws -> UploadBody {
        var encodings = (exchange.param("HTTP_CONTENT_ENCODING") ?? "").split(separator: ",")
            .map { $0.trimmingWhitespace().lowercased() }.filter { !$0.isEmpty && $0 != "identity" }
        if auth.payload.isChunked { encodings.removeAll { $0 == "aws-chunked" } }  // the payload mode's framing
        let encoding = encodings.joined(separator: ",")
        let gzip = encoding == "gzip" || encoding == "x-gzip"
        guard encoding.isEmpty || gzip else {
            if encodings.contains("aws-chunked") {
                throw HTTPError(
                    status: 400, code: "bad_request", message: "an aws-chunked body needs a STREAMING-… x-amz-content-sha256",
                    s3Code: "InvalidArgument")
            }
            throw HTTPError.unsupportedEncoding(encoding)
        }
        var source: any BodySource = ExchangeBody(exchange, idleTimeout: limits.idleTimeout)
        var chunked: AWSChunkedBody?
        let length: Int64
        if case let .chunked(signing, trailer) = auth.payload {
            guard let text = exchange.param("HTTP_X_AMZ_DECODED_CONTENT_LENGTH"), let decoded = Int64(text), decoded >= 0 else {
                throw HTTPError(
                    status: 411, code: "length_required", message: "an aws-chunked upload needs x-amz-decoded-content-length",
                    s3Code: "MissingContentLength")
            }
            length = decoded
            chunked = AWSChunkedBody(source, signing: signing, trailer: trailer)
            source = chunked!
        } else if let text = exchange.param("CONTENT_LENGTH"), !text.isEmpty {
            guard let value = Int64(text), value >= 0 else { throw HTTPError.badRequest("invalid Content-Length") }
            length = value
        } else {
            // A gzip body may come without a length (nginx passes a chunked one on as it
            // arrives); it is inflated as it comes. Digests need the length to hold the end back.
            guard gzip else { throw HTTPError.lengthRequired }
            guard auth.payload.declaredSHA256 == nil, try checks(exchange, chunked: nil).isEmpty else {
                throw HTTPError(
                    status: 411, code: "length_required", message: "a body with a declared digest needs a Content-Length",
                    s3Code: "MissingContentLength")
            }
            return try UploadBody.inflating(from: source, limit: limits.maxInflatedSize)
        }
        // A gzip body is bounded by what it inflates to (MAX_INFLATED_SIZE), not by its own length.
        guard gzip || length <= limits.maxUploadSize else { throw HTTPError.payloadTooLarge(limit: limits.maxUploadSize) }
        let verified = VerifiedBody(
            source, length: length, sha256: auth.payload.declaredSHA256, checksums: try checks(exchange, chunked: chunked))
        guard !gzip else { return try UploadBody.inflating(from: verified, limit: limits.maxInflatedSize) }
        // An empty body is never asked for by the upload: its checks run now.
        if length == 0 { try verified.finish() }
        return .stream(verified.checksAnything || chunked != nil ? verified : source, contentLength: length)
    }

    /// The additional checksums the client declared (`x-amz-checksum-*` headers, or named by
    /// `x-amz-trailer` and sent in the `aws-chunked` trailer).
    private func checks(_ exchange: any Exchange, chunked: AWSChunkedBody?) throws
        -> [(algorithm: PayloadChecksum.Algorithm, expected: () -> String?)]
    {
        var checks: [(algorithm: PayloadChecksum.Algorithm, expected: () -> String?)] = []
        for algorithm in PayloadChecksum.Algorithm.allCases {
            if let value = exchange.param(named: RequestAuthenticator.parameterName(forHeader: algorithm.headerName)) {
                checks.append((algorithm, { value }))
            }
        }
        if let trailer = exchange.param("HTTP_X_AMZ_TRAILER") {
            guard let chunked else {
                throw HTTPError(
                    status: 400, code: "bad_request", message: "x-amz-trailer needs an aws-chunked body", s3Code: "InvalidRequest")
            }
            for name in trailer.split(separator: ",").map({ $0.trimmingWhitespace().lowercased() }) {
                guard let algorithm = PayloadChecksum.Algorithm(headerName: name) else {
                    throw HTTPError(
                        status: 400, code: "bad_request", message: "unsupported trailer \(name)", s3Code: "InvalidRequest")
                }
                checks.append((algorithm, { [unowned chunked] in chunked.trailer[name] }))
            }
        }
        return checks
    }

    /// The headers S3 stores with the object: `Content-Type` (guessed from the key when the
    /// client sent none) and those in `forwardedWriteHeaders`.
    private static func storedHeaders(_ exchange: any Exchange, key: String) throws -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = []
        for (param, name) in forwardedWriteHeaders {
            if let value = try headerValue(exchange, param, name: name) { headers.append((name, value)) }
        }
        let contentType = try headerValue(exchange, "CONTENT_TYPE", name: "Content-Type").flatMap { $0.isEmpty ? nil : $0 }
        headers.append(("Content-Type", contentType ?? ContentTypes.guess(forKey: key)))
        return headers
    }

    /// A request header S3 is to store and relay, exactly as the client sent it: refused with
    /// 400 when its bytes are not UTF-8 (they could not reach S3 unchanged) or hold a control
    /// character (every later reader of the object would get it).
    static func headerValue(_ exchange: any Exchange, _ param: StaticString, name: String) throws -> String? {
        guard let bytes = exchange.rawParam(param) else { return nil }
        guard let value = String(validating: bytes, as: UTF8.self) else {
            throw HTTPError.badRequest("the \(name) header is not valid UTF-8")
        }
        guard HeaderValue.isSafe(value) else { throw HTTPError.badRequest("the \(name) header contains control characters") }
        return value
    }
}

/// The bounds on a PUT body.
struct UploadLimits {
    /// Largest body, plain or inflated (`MAX_UPLOAD_SIZE`).
    var maxUploadSize: Int64
    /// Largest object a gzip body may inflate to (`MAX_INFLATED_SIZE`).
    var maxInflatedSize: Int64
    /// Longest wait for the next byte of the body (`UPLOAD_IDLE_TIMEOUT`): a client that stops
    /// sending gives its permit back, and nothing is stored.
    var idleTimeout: Double

    init(maxUploadSize: Int64, maxInflatedSize: Int64, idleTimeout: Double) {
        self.maxUploadSize = maxUploadSize
        self.maxInflatedSize = min(maxInflatedSize, maxUploadSize)
        self.idleTimeout = idleTimeout
    }

    init(_ configuration: Configuration) {
        self.init(
            maxUploadSize: configuration.maxUploadSize, maxInflatedSize: configuration.maxInflatedSize,
            idleTimeout: configuration.uploadIdleTimeout)
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

    /// `asS3`: for a SigV4 client, S3's own shape: a PUT is 200 with the `ETag` and no body (an
    /// SDK treats a 200 whose body is not S3's as a failure, and retries the write).
    func send(_ response: ResponseWriter, asS3: Bool) throws {
        switch self {
        case let .stored(_, etag) where asS3:
            try response.send(status: 200, contentType: "application/xml", body: [], headers: etag.isEmpty ? [] : [("ETag", etag)])
        case let .stored(json, etag):
            try response.sendJSON(status: 200, json, headers: etag.isEmpty ? [] : [("ETag", etag)])
        case .deleted:
            try response.sendHead(status: 204, headers: [])
        }
    }
}
