import Synchronization

/// Bounds how many requests wait on S3 at once.
///
/// Past the bound a request is refused at once (503 with `Retry-After`) instead of queuing:
/// when S3 is slow, the threads it would have held stay free to serve cache hits.
final class BackendGate: Sendable {
    let limit: Int
    private let inUse = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// Requests holding a permit right now.
    var current: Int { inUse.load(ordering: .relaxed) }

    /// Takes a permit if one is free.
    func tryAcquire() -> Bool {
        var current = inUse.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = inUse.compareExchange(
                expected: current, desired: current + 1, ordering: .acquiring)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func release() {
        inUse.subtract(1, ordering: .releasing)
    }

    /// Runs `body` holding a permit, or throws 503 when none is free.
    func withPermit<T>(_ body: () throws -> T) throws -> T {
        guard tryAcquire() else { throw HTTPError.backendBusy }
        defer { release() }
        return try body()
    }
}

extension HTTPError {
    static let backendBusy = HTTPError(
        status: 503, code: "backend_busy", message: "too many requests are waiting on S3; retry shortly",
        headers: [("Retry-After", "1")])
    static let uploadsBusy = HTTPError(
        status: 503, code: "uploads_busy", message: "too many uploads are in progress; retry shortly",
        headers: [("Retry-After", "1")])
}
