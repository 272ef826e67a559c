import CCurl

/// Building, signing and running requests: everything between the public operations and curl.
extension S3Connection {
    /// Headers the client itself sets; a caller value would be sent twice or contradict the signature.
    private static let ownedHeaders: Set<String> = [
        "host", "authorization", "x-amz-date", "x-amz-content-sha256", "content-length", "transfer-encoding", "expect",
    ]

    func objectRequest(
        _ method: String, bucket: String, key: String, headers: [(name: String, value: String)], retryable: Bool
    ) throws(S3Error) -> S3Request {
        let label = "\(method) \(bucket)/\(key)"
        guard !bucket.isEmpty, !key.isEmpty else { throw .aborted(message: "\(label) refused: empty bucket or key") }
        try Self.validate(headers, label: label)
        let (host, path) = endpoint.location(bucket: bucket, key: key)
        return S3Request(method: method, path: path, host: host, headers: headers, retryable: retryable, label: label)
    }

    func bucketRequest(_ method: String, bucket: String, retryable: Bool) throws(S3Error) -> S3Request {
        let label = "\(method) \(bucket)"
        guard !bucket.isEmpty else { throw .aborted(message: "\(label) refused: empty bucket name") }
        let (host, path) = endpoint.location(bucket: bucket, key: nil)
        return S3Request(method: method, path: path, host: host, retryable: retryable, label: label)
    }

    /// Refuses header fields that would corrupt the request (line breaks) or fight the signer.
    private static func validate(_ headers: [(name: String, value: String)], label: String) throws(S3Error) {
        for header in headers {
            let name = header.name.lowercased()
            let badName = name.isEmpty || name.utf8.contains { $0 <= 32 || $0 == UInt8(ascii: ":") || $0 >= 127 }
            let badValue = header.value.utf8.contains { $0 == 10 || $0 == 13 || $0 == 0 }
            guard !badName, !badValue else {
                throw .aborted(message: "\(label) refused: malformed header field \(header.name.debugDescription)")
            }
            guard !ownedHeaders.contains(name) else {
                throw .aborted(message: "\(label) refused: \(header.name) is set by the S3 client")
            }
        }
    }

    /// Sends a request whose body fits in memory and collects a response body of at most
    /// `responseLimit` bytes. For bucket creation and, in tests, other services' APIs.
    func send(_ request: S3Request, body: [UInt8], responseLimit: Int = 1 << 20) throws
        -> (head: S3ResponseHead, body: [UInt8])
    {
        var request = request
        request.body = .upload(length: Int64(body.count), payloadHash: SHA256.hexDigest(body))
        var offset = 0
        var received: [UInt8] = []
        let supply: (UnsafeMutableRawBufferPointer) throws -> Int = { buffer in
            let count = min(buffer.count, body.count - offset)
            body.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + count])) }
            offset += count
            return count
        }
        let collect: (UnsafeRawBufferPointer) throws -> Void = { chunk in
            guard received.count + chunk.count <= responseLimit else {
                throw S3Error.aborted(message: "response body over \(responseLimit) bytes")
            }
            received.append(contentsOf: chunk)
        }
        let context = TransferContext(onHead: { _ in }, onBody: collect, upload: supply, uploadLength: Int64(body.count))
        let head = try execute(request, context)
        return (head, received)
    }

    /// Runs `request`, once more after a transport error when it is replayable and no
    /// response head reached the caller: a keep-alive connection the server had closed.
    func execute(_ request: S3Request, _ makeContext: @autoclosure () -> TransferContext) throws -> S3ResponseHead {
        var attempt = 1
        while true {
            let context = makeContext()
            do {
                return try transfer(request, context)
            } catch let error as S3Error {
                guard case .transport = error, request.retryable, attempt == 1, !context.headDelivered else { throw error }
                attempt += 1
            }
        }
    }

    /// Signs, configures the handle, performs, and turns the outcome into a head or an error.
    private func transfer(_ request: S3Request, _ context: TransferContext) throws -> S3ResponseHead {
        let date = AmzDate(secondsSinceEpoch: clock())
        let signingHeaders = [(name: "host", value: request.host)] + request.headers
            + [(name: "x-amz-content-sha256", value: request.payloadHash)]
        var requestSigner = signer
        requestSigner.service = request.service
        let signature = requestSigner.sign(
            SigV4Request(
                method: request.method, path: request.path, query: request.query,
                headers: signingHeaders, payloadHash: request.payloadHash),
            date: date)
        var lines = [
            "Host: \(request.host)",
            "x-amz-content-sha256: \(request.payloadHash)",
            "x-amz-date: \(signature.amzDate)",
            "Authorization: \(signature.authorization)",
            "Expect:",  // no 100-continue round trip before the body
            "Accept:",  // curl's default `Accept: */*` is noise to S3
        ]
        // "Name;" is curl's spelling for a header with an empty value ("Name:" would delete it).
        lines += request.headers.map { $0.value.isEmpty ? "\($0.name);" : "\($0.name): \($0.value)" }
        let headerList = try CurlHeaderList(lines)

        curl.reset()
        defer { curl.reset() }  // drop libcurl's pointers to the context and the header list
        try configureHandle()
        let url = endpoint.url(host: request.host, path: request.path, query: request.query)
        try curl.set(CURLOPT_URL, url, "CURLOPT_URL")
        try curl.set(CURLOPT_HTTPHEADER, pointer: headerList.pointer, "CURLOPT_HTTPHEADER")
        let contextPointer = Unmanaged.passUnretained(context).toOpaque()
        try curl.set(CURLOPT_HEADERFUNCTION, writeFunction: CurlCallbacks.header, "CURLOPT_HEADERFUNCTION")
        try curl.set(CURLOPT_HEADERDATA, pointer: contextPointer, "CURLOPT_HEADERDATA")
        try curl.set(CURLOPT_WRITEFUNCTION, writeFunction: CurlCallbacks.write, "CURLOPT_WRITEFUNCTION")
        try curl.set(CURLOPT_WRITEDATA, pointer: contextPointer, "CURLOPT_WRITEDATA")
        context.idleLimit = .milliseconds(readTimeoutMilliseconds)
        try curl.set(CURLOPT_NOPROGRESS, 0, "CURLOPT_NOPROGRESS")
        try curl.set(CURLOPT_XFERINFOFUNCTION, progressFunction: CurlCallbacks.progress, "CURLOPT_XFERINFOFUNCTION")
        try curl.set(CURLOPT_XFERINFODATA, pointer: contextPointer, "CURLOPT_XFERINFODATA")
        switch request.body {
        case .none:
            if request.method != "GET" { try curl.set(CURLOPT_CUSTOMREQUEST, request.method, "CURLOPT_CUSTOMREQUEST") }
        case .headOnly:
            try curl.set(CURLOPT_NOBODY, 1, "CURLOPT_NOBODY")
        case .upload(let length, _):
            try curl.set(CURLOPT_UPLOAD, 1, "CURLOPT_UPLOAD")
            try curl.set(CURLOPT_INFILESIZE_LARGE, size: length, "CURLOPT_INFILESIZE_LARGE")
            try curl.set(CURLOPT_READFUNCTION, readFunction: CurlCallbacks.read, "CURLOPT_READFUNCTION")
            try curl.set(CURLOPT_READDATA, pointer: contextPointer, "CURLOPT_READDATA")
            try curl.set(CURLOPT_SEEKFUNCTION, seekFunction: CurlCallbacks.seek, "CURLOPT_SEEKFUNCTION")
            try curl.set(CURLOPT_SEEKDATA, pointer: contextPointer, "CURLOPT_SEEKDATA")
            if request.method != "PUT" { try curl.set(CURLOPT_CUSTOMREQUEST, request.method, "CURLOPT_CUSTOMREQUEST") }
        }

        let code = withExtendedLifetime(headerList) { curl.perform() }
        return try outcome(code, context, request, url: url)
    }

    /// Options every request needs; set again after each `reset()`.
    private func configureHandle() throws(S3Error) {
        try curl.attachErrorBuffer()
        try curl.set(CURLOPT_NOSIGNAL, 1, "CURLOPT_NOSIGNAL")  // no SIGALRM for DNS timeouts: we are threaded
        try curl.set(CURLOPT_PROTOCOLS_STR, "http,https", "CURLOPT_PROTOCOLS_STR")
        try curl.set(CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1, "CURLOPT_HTTP_VERSION")
        try curl.set(CURLOPT_PATH_AS_IS, 1, "CURLOPT_PATH_AS_IS")  // keys may hold `..` segments
        try curl.set(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1, "CURLOPT_SUPPRESS_CONNECT_HEADERS")
        try curl.set(CURLOPT_TCP_KEEPALIVE, 1, "CURLOPT_TCP_KEEPALIVE")
        try curl.set(CURLOPT_BUFFERSIZE, 128 * 1024, "CURLOPT_BUFFERSIZE")
        try curl.set(CURLOPT_UPLOAD_BUFFERSIZE, 128 * 1024, "CURLOPT_UPLOAD_BUFFERSIZE")
        let connectMilliseconds = max(1, Int((configuration.connectTimeout * 1000).rounded(.up)))
        try curl.set(CURLOPT_CONNECTTIMEOUT_MS, connectMilliseconds, "CURLOPT_CONNECTTIMEOUT_MS")
        // A read timeout, not a total one: abandon only after readTimeout seconds below
        // 1 byte/s, so a 1 GiB transfer may take as long as it needs while bytes flow.
        // (Once body bytes flowed, `TransferContext.progress` enforces it: this check
        // averages over 5 s and would fire that much late.)
        try curl.set(CURLOPT_LOW_SPEED_LIMIT, 1, "CURLOPT_LOW_SPEED_LIMIT")
        try curl.set(CURLOPT_LOW_SPEED_TIME, max(1, Int(configuration.readTimeout.rounded(.up))), "CURLOPT_LOW_SPEED_TIME")
        if configuration.useSSL {
            try curl.set(CURLOPT_SSL_VERIFYPEER, 1, "CURLOPT_SSL_VERIFYPEER")
            try curl.set(CURLOPT_SSL_VERIFYHOST, 2, "CURLOPT_SSL_VERIFYHOST")
            if let caFile = configuration.caFile { try curl.set(CURLOPT_CAINFO, caFile, "CURLOPT_CAINFO") }
        }
    }

    /// The read timeout in whole milliseconds, at least 1.
    private var readTimeoutMilliseconds: Int {
        max(1, Int((configuration.readTimeout * 1000).rounded(.up)))
    }

    private func outcome(_ code: CURLcode, _ context: TransferContext, _ request: S3Request, url: String) throws
        -> S3ResponseHead
    {
        if let failure = context.failure { throw failure }
        if context.stalled {
            throw S3Error.timeout(
                message: "\(request.label) at \(url): no byte sent or received for \(readTimeoutMilliseconds) ms")
        }
        let answered = context.headComplete && context.status >= 100
        if code != CURLE_OK {
            // S3 may answer an upload with an error and close before reading it all: its answer says more.
            if answered && !TransferContext.isSuccess(context.status) { throw serviceError(context) }
            throw transferError(code, request, url: url)
        }
        guard answered else { throw S3Error.transport(message: "\(request.label) at \(url): no HTTP response head") }
        guard TransferContext.isSuccess(context.status) else { throw serviceError(context) }
        return context.head
    }

    private func serviceError(_ context: TransferContext) -> S3Error {
        let document = S3ErrorDocument(parsing: context.errorBody)
        let headerID = context.head.header("x-amz-request-id")
        return .service(
            status: context.status, code: document?.code, message: document?.message,
            requestID: document?.requestID ?? headerID)
    }

    private func transferError(_ code: CURLcode, _ request: S3Request, url: String) -> S3Error {
        let message = "\(request.label) at \(url): \(curl.describe(code))"
        switch code {
        case CURLE_OPERATION_TIMEDOUT: return .timeout(message: message)
        case CURLE_ABORTED_BY_CALLBACK, CURLE_WRITE_ERROR, CURLE_READ_ERROR: return .aborted(message: message)
        default: return .transport(message: message)
        }
    }
}
