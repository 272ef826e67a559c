public import S3Client

/// Where objects come from and go to: the S3 connection today, and a cache wrapping it.
///
/// The handler speaks HTTP to the client; a store speaks objects. One store per worker
/// thread (its connection is not shared), so implementations need not be `Sendable`.
public protocol ObjectStore: AnyObject {
    /// Streams an object: `onHead` once before any body byte (2xx or 304), then `onBody` chunks.
    /// `headers` are the client's conditional and range headers, forwarded as they are.
    @discardableResult
    func getObject(
        bucket: String, key: String, headers: [(name: String, value: String)],
        onHead: (S3ResponseHead) throws -> Void, onBody: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> S3ResponseHead

    func headObject(bucket: String, key: String, headers: [(name: String, value: String)]) throws -> S3ResponseHead

    /// Uploads exactly `contentLength` bytes pulled from `body`; aborts (nothing stored) if it ends early.
    func putObject(
        bucket: String, key: String, contentLength: Int64, headers: [(name: String, value: String)],
        payloadSHA256: String?, body: (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws -> S3ResponseHead

    /// `headers` are conditions (`If-Match`) for S3 to check.
    @discardableResult
    func deleteObject(bucket: String, key: String, headers: [(name: String, value: String)]) throws -> S3ResponseHead

    /// Whether the bucket exists and our credentials reach it (readiness checks).
    @discardableResult
    func headBucket(bucket: String) throws -> S3ResponseHead
}

extension S3Connection: ObjectStore {}
