import ObjectCache

/// One way of running a cache over a trace: the worker's policies, or an oracle.
enum Contender: String, CaseIterable, Sendable {
    case lru = "LRU"
    case s3fifo = "S3-FIFO"
    case belady = "Bélády"
    case beladySize = "Bélády-size"

    func replay(_ trace: Trace, nextUse: NextUse, capacity: Int) -> Outcome {
        switch self {
        case .lru:
            var policy = LRUPolicy<Int32, Int32>(capacity: capacity)
            return Self.replay(&policy, trace)
        case .s3fifo:
            var policy = S3FIFOPolicy<Int32, Int32>(capacity: capacity)
            return Self.replay(&policy, trace)
        case .belady:
            return Belady(capacity: capacity).replay(trace, nextUse: nextUse)
        case .beladySize:
            return BeladySize(capacity: capacity).replay(trace, nextUse: nextUse)
        }
    }

    /// Drives a policy exactly as a cache shard does: a lookup, and on a miss an insert with
    /// the object's size as its cost. An object larger than the capacity is refused by the
    /// policy and counts as a miss, as it does for the oracles.
    private static func replay(_ policy: inout some EvictionPolicy<Int32, Int32>, _ trace: Trace) -> Outcome {
        var outcome = Outcome()
        for id in trace.requests {
            let size = trace.sizes[Int(id)]
            let hit = policy.get(id) != nil
            outcome.record(size: Int(size), hit: hit)
            if !hit { _ = policy.insert(id, value: size, cost: Int(size)) }
        }
        return outcome
    }
}
