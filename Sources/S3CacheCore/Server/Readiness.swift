import FastCGI
import S3Client
import Synchronization
import Platform

/// `GET /ready`: whether S3 answers, for every bucket in the access rules, with our credentials.
///
/// The result is reused for `interval` seconds, and while one thread checks, the others answer
/// with the previous result: probes, however many and however often, cost S3 at most one
/// round of HEAD requests per interval.
final class Readiness: Sendable {
    struct Status: Sendable {
        var ready: Bool
        /// Why not ready, or which buckets were checked.
        var detail: String
        var checkedAt: Double
    }

    let interval: Double
    private let state = Mutex<(last: Status?, checking: Bool)>((nil, false))

    init(interval: Double = 3) {
        self.interval = interval
    }

    func status(buckets: [String], store: any ObjectStore) -> Status {
        let now = monotonicSeconds()
        let reuse = state.withLock { state -> Status? in
            if let last = state.last, now - last.checkedAt < interval || state.checking { return last }
            state.checking = true
            return nil
        }
        if let reuse { return reuse }
        let status = Self.check(buckets: buckets, store: store, at: now)
        state.withLock { $0 = (status, false) }
        return status
    }

    private static func check(buckets: [String], store: any ObjectStore, at now: Double) -> Status {
        for bucket in buckets {
            do {
                try store.headBucket(bucket: bucket)
            } catch let error as S3Error {
                let reason: String
                switch BackendOutcome(error) {
                case .notFound: reason = "bucket \(bucket) does not exist in S3"
                case .denied: reason = "S3 refuses the gateway's credentials for bucket \(bucket)"
                default: reason = "bucket \(bucket): \(HTTPError(backend: error).message)"
                }
                return Status(ready: false, detail: reason, checkedAt: now)
            } catch {
                return Status(ready: false, detail: "bucket \(bucket): \(error)", checkedAt: now)
            }
        }
        return Status(ready: true, detail: buckets.joined(separator: ","), checkedAt: now)
    }
}
