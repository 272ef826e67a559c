#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CCurl

/// A blocking S3 client for one thread: SigV4 over one libcurl easy handle.
///
/// The gateway serves each request start to finish on one worker thread, so blocking
/// calls are what it wants: curl's easy API blocks, reuses keep-alive connections per
/// handle, verifies TLS, enforces timeouts and streams through callbacks, with no event
/// loop to bridge. Give each worker thread its own connection; it is deliberately not
/// `Sendable`. Bodies stream through the callbacks and are never held in memory.
///
/// Call `S3Connection.globalInit()` once, from the main thread, before starting threads.
public final class S3Connection {
    public let configuration: S3Configuration
    let endpoint: S3Endpoint
    let signer: SigV4Signer
    let curl: CurlEasy
    /// Seconds since the epoch; injected so tests can pin the signing date.
    let clock: @Sendable () -> Int64

    /// Opens no socket yet: the first request connects, later ones reuse the connection.
    ///
    /// - Parameter clock: the time requests are signed with; the system clock by default.
    public init(
        configuration: S3Configuration,
        clock: @escaping @Sendable () -> Int64 = S3Connection.systemTime
    ) throws {
        Self.globalInit()
        if let failure = Self.globalInitFailure { throw failure }
        self.configuration = configuration
        endpoint = S3Endpoint(configuration: configuration)
        signer = SigV4Signer(credentials: configuration.credentials, region: configuration.region, service: "s3")
        curl = try CurlEasy()
        self.clock = clock
    }

    /// Seconds since the epoch from the system clock.
    @Sendable public static func systemTime() -> Int64 {
        Int64(time(nil))
    }

    /// Initialises libcurl (and through it OpenSSL) once per process.
    ///
    /// `curl_global_init` is not thread-safe against other libraries initialising at the
    /// same time, so call this from `main` before any thread starts. Later calls do
    /// nothing. It does not throw so that startup code stays simple: a failure (or a
    /// libcrypto without SHA-256) is reported by every `S3Connection.init` instead.
    public static func globalInit() {
        _ = globalInitFailure
    }

    private static let globalInitFailure: S3Error? = {
        let code = curl_global_init(s3cache_curl_global_default)
        guard code == CURLE_OK else {
            return .transport(message: "curl_global_init failed: \(String(cString: curl_easy_strerror(code)))")
        }
        guard SHA256.cryptoWorks() else {
            return .transport(message: "libcrypto SHA-256/HMAC self-test failed (OpenSSL default provider missing?)")
        }
        return nil
    }()

    /// Streams an object. `onHead` runs once, before any body byte, for a 2xx or 304
    /// answer (so the caller can send its own response head); `onBody` then gets the
    /// body in chunks as they arrive. Any other status throws `S3Error.service` with the
    /// parsed XML error and `onHead` is not called.
    ///
    /// - Parameter headers: sent verbatim and signed (`Range`, `If-None-Match`, …).
    /// - Returns: the same head `onHead` saw.
    @discardableResult
    public func getObject(
        bucket: String, key: String, headers: [(name: String, value: String)] = [],
        onHead: (S3ResponseHead) throws -> Void,
        onBody: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> S3ResponseHead {
        let request = try objectRequest("GET", bucket: bucket, key: key, headers: headers, retryable: true)
        return try withoutActuallyEscaping(onHead) { onHead in
            try withoutActuallyEscaping(onBody) { onBody in
                try execute(request, TransferContext(onHead: onHead, onBody: onBody))
            }
        }
    }

    /// An object's metadata. 2xx and 304 return; other statuses throw
    /// `S3Error.service` with no code (HEAD answers have no body) and the request id header.
    public func headObject(bucket: String, key: String, headers: [(name: String, value: String)] = []) throws
        -> S3ResponseHead
    {
        var request = try objectRequest("HEAD", bucket: bucket, key: key, headers: headers, retryable: true)
        request.body = .headOnly
        return try execute(request, TransferContext())
    }

    /// Uploads exactly `contentLength` bytes pulled from `body`, with `Content-Length`
    /// (never chunked) and no `Expect: 100-continue`.
    ///
    /// `body` writes into the buffer it is given and returns how many bytes it wrote. If it
    /// throws, or returns 0 before `contentLength` bytes, the upload is aborted mid-request
    /// so S3 never stores a truncated object, and the error is rethrown (`.aborted` for a
    /// short body). Never retried: the body cannot be replayed.
    ///
    /// - Parameter payloadSHA256: hex SHA-256 of the whole body when known (signed);
    ///   nil sends `UNSIGNED-PAYLOAD`.
    @discardableResult
    public func putObject(
        bucket: String, key: String, contentLength: Int64, headers: [(name: String, value: String)] = [],
        payloadSHA256: String?, body: (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws -> S3ResponseHead {
        guard contentLength >= 0 else {
            throw S3Error.aborted(message: "PUT \(bucket)/\(key) refused: negative content length \(contentLength)")
        }
        var request = try objectRequest("PUT", bucket: bucket, key: key, headers: headers, retryable: false)
        request.body = .upload(length: contentLength, payloadHash: payloadSHA256 ?? "UNSIGNED-PAYLOAD")
        return try withoutActuallyEscaping(body) { body in
            try execute(request, TransferContext(upload: body, uploadLength: contentLength))
        }
    }

    /// Deletes an object; S3 answers 204 whether or not it existed. `headers` are conditions
    /// (`If-Match`) S3 checks before deleting.
    @discardableResult
    public func deleteObject(bucket: String, key: String, headers: [(name: String, value: String)] = []) throws -> S3ResponseHead {
        try execute(objectRequest("DELETE", bucket: bucket, key: key, headers: headers, retryable: true), TransferContext())
    }

    /// Whether the bucket exists and our credentials reach it: for readiness checks.
    @discardableResult
    public func headBucket(bucket: String) throws -> S3ResponseHead {
        var request = try bucketRequest("HEAD", bucket: bucket, retryable: true)
        request.body = .headOnly
        return try execute(request, TransferContext())
    }

    /// Creates a bucket, in the configured region (a `LocationConstraint` outside us-east-1).
    /// For tests and setup scripts; the gateway itself never creates buckets.
    @discardableResult
    public func createBucket(bucket: String) throws -> S3ResponseHead {
        let request = try bucketRequest("PUT", bucket: bucket, retryable: false)
        let region = configuration.region
        let document = region == "us-east-1" ? [] : Array(
            ("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                + "<LocationConstraint>\(region)</LocationConstraint></CreateBucketConfiguration>").utf8)
        return try send(request, body: document).head
    }
}

/// One connection per thread: the curl handle must never be used from two at once.
@available(*, unavailable)
extension S3Connection: Sendable {}
