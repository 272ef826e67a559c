import FastCGI
import S3Client
import Platform

/// An `ObjectStore` that times and counts every call it passes to the store behind it.
///
/// It wraps the thread's S3 connection, so each backend request is measured once, whichever
/// path (cached read, bypass, write, readiness check) made it.
final class MeteredStore: ObjectStore {
    private let base: any ObjectStore
    private let metrics: GatewayMetrics

    init(_ base: any ObjectStore, metrics: GatewayMetrics) {
        self.base = base
        self.metrics = metrics
    }

    func getObject(
        bucket: String, key: String, headers: [(name: String, value: String)],
        onHead: (S3ResponseHead) throws -> Void, onBody: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> S3ResponseHead {
        try measure(.get) { try base.getObject(bucket: bucket, key: key, headers: headers, onHead: onHead, onBody: onBody) }
    }

    func headObject(bucket: String, key: String, headers: [(name: String, value: String)]) throws -> S3ResponseHead {
        try measure(.head) { try base.headObject(bucket: bucket, key: key, headers: headers) }
    }

    func putObject(
        bucket: String, key: String, contentLength: Int64, headers: [(name: String, value: String)],
        payloadSHA256: String?, body: (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws -> S3ResponseHead {
        try measure(.put) {
            try base.putObject(
                bucket: bucket, key: key, contentLength: contentLength, headers: headers, payloadSHA256: payloadSHA256, body: body)
        }
    }

    func deleteObject(bucket: String, key: String, headers: [(name: String, value: String)]) throws -> S3ResponseHead {
        try measure(.delete) { try base.deleteObject(bucket: bucket, key: key, headers: headers) }
    }

    func headBucket(bucket: String) throws -> S3ResponseHead {
        try measure(.headBucket) { try base.headBucket(bucket: bucket) }
    }

    private func measure(_ operation: BackendOperation, _ call: () throws -> S3ResponseHead) throws -> S3ResponseHead {
        let started = monotonicNanoseconds()
        do {
            let head = try call()
            metrics.recordBackend(operation, head.status == 304 ? .notModified : .ok, nanoseconds: monotonicNanoseconds() - started)
            return head
        } catch let error as S3Error {
            metrics.recordBackend(operation, BackendOutcome(error), nanoseconds: monotonicNanoseconds() - started)
            throw error
        } catch {
            // Our own callbacks stopped the transfer (the client went away).
            metrics.recordBackend(operation, .aborted, nanoseconds: monotonicNanoseconds() - started)
            throw error
        }
    }
}
