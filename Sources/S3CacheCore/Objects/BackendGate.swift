import Synchronization

/// A count that never exceeds its limit, taken and given back by many threads without a lock.
///
/// Bounds how many requests wait on S3 at once (`BackendGate`, one per request) and how many
/// bytes cache fills hold (`FillBudget`). Past the bound a request is refused at once (503 with
/// `Retry-After`) instead of queuing: when S3 is slow, the threads it would have held stay free
/// to serve cache hits.
final class BoundedCounter: Sendable {
    let limit: Int
    private let inUse = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// Taken right now.
    var current: Int { inUse.load(ordering: .relaxed) }

    /// Takes `count` if it fits under the limit.
    func tryAcquire(_ count: Int = 1) -> Bool {
        guard count >= 0, count <= limit else { return false }
        var current = inUse.load(ordering: .relaxed)
        while current <= limit - count {
            let (exchanged, original) = inUse.compareExchange(
                expected: current, desired: current + count, ordering: .acquiring)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func release(_ count: Int = 1) {
        inUse.subtract(count, ordering: .releasing)
    }

    /// Runs `body` holding one, or throws 503 when none is free.
    func withPermit<T>(_ body: () throws -> T) throws -> T {
        guard tryAcquire() else { throw HTTPError.backendBusy }
        defer { release() }
        return try body()
    }
}

/// Requests that may wait on S3 at once (`BACKEND_CONCURRENCY`), or PUTs in progress (`UPLOAD_CONCURRENCY`).
typealias BackendGate = BoundedCounter

/// Bytes that cache fills in flight may hold at once (`FILL_BUDGET`). Each fill keeps a copy of
/// the object while it streams, and compressing it holds a second buffer: without a shared
/// bound, `BACKEND_CONCURRENCY` × `MAX_OBJECT_SIZE` could be held on top of the cache (1.8 GiB
/// at the defaults). A fill that does not fit streams through uncached.
typealias FillBudget = BoundedCounter

extension HTTPError {
    static let backendBusy = HTTPError(
        status: 503, code: "backend_busy", message: "too many requests are waiting on S3; retry shortly",
        headers: [("Retry-After", "1")])
    static let uploadsBusy = HTTPError(
        status: 503, code: "uploads_busy", message: "too many uploads are in progress; retry shortly",
        headers: [("Retry-After", "1")])

    /// One of the refusals above: a bound of ours was full, nothing failed.
    var isRefusalUnderLoad: Bool {
        status == 503 && (code == Self.backendBusy.code || code == Self.uploadsBusy.code)
    }
}
