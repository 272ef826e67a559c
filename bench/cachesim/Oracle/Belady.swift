/// Bélády's MIN as a reference: on a miss, keep the objects whose next request comes soonest.
///
/// With objects of different sizes, evicting the entry whose next use is furthest in the
/// future is the standard *size-oblivious* oracle, not the true optimum (that is NP-hard for
/// variable sizes; Berger, Beckmann and Harchol-Balter, "Practical Bounds on Optimal Caching
/// with Variable Object Sizes", SIGMETRICS 2018). It is still the usual yardstick, and an
/// online policy can beat it, in byte hit ratio above all, since it will evict one large
/// object needed soon-ish to keep several small ones needed later, or the reverse, blindly.
///
/// The incoming object is a candidate like any other: if it is the one used furthest ahead
/// (or never again), it is not kept (bypass), which is what MIN does with unit sizes too.
struct Belady {
    let capacity: Int

    func replay(_ trace: Trace, nextUse: NextUse) -> Outcome {
        var outcome = Outcome()
        // Per object: the next-use position it is filed under while cached, else nil.
        var filedUnder = [Int32?](repeating: nil, count: trace.sizes.count)
        // (next use << 32 | id); entries whose next use changed since are skipped when popped.
        var heap = MaxHeap()
        var used = 0
        for (position, id32) in trace.requests.enumerated() {
            let id = Int(id32)
            let size = Int(trace.sizes[id])
            let next = nextUse[position]
            if filedUnder[id] != nil {
                outcome.record(size: size, hit: true)
                filedUnder[id] = next
                heap.push(UInt64(UInt32(next)) << 32 | UInt64(UInt32(id32)))
                continue
            }
            outcome.record(size: size, hit: false)
            guard size <= capacity else { continue }
            filedUnder[id] = next
            heap.push(UInt64(UInt32(next)) << 32 | UInt64(UInt32(id32)))
            used += size
            while used > capacity, let top = heap.popMax() {
                let victim = Int(top & 0xFFFF_FFFF)
                guard filedUnder[victim] == Int32(top >> 32) else { continue }  // stale entry
                filedUnder[victim] = nil
                used -= Int(trace.sizes[victim])
            }
        }
        return outcome
    }
}
