import Synchronization

/// Bytes that cache fills in flight may hold at once (`FILL_BUDGET`).
///
/// Each fill keeps a copy of the object while it streams, and compressing it holds a second
/// buffer: without a shared bound, `BACKEND_CONCURRENCY` × `MAX_OBJECT_SIZE` could be held on top
/// of the cache (1.8 GiB at the defaults). A fill that does not fit streams through uncached.
final class FillBudget: Sendable {
    let limit: Int
    private let used = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// Bytes reserved right now.
    var current: Int { used.load(ordering: .relaxed) }

    /// Reserves `bytes` if they fit under the limit.
    func tryReserve(_ bytes: Int) -> Bool {
        guard bytes >= 0, bytes <= limit else { return false }
        var current = used.load(ordering: .relaxed)
        while current <= limit - bytes {
            let (exchanged, original) = used.compareExchange(expected: current, desired: current + bytes, ordering: .acquiring)
            if exchanged { return true }
            current = original
        }
        return false
    }

    func release(_ bytes: Int) {
        used.subtract(bytes, ordering: .releasing)
    }
}
