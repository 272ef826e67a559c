/// A size-aware variant of Bélády's oracle: evict the cached object with the largest
/// (distance to next use) × size, chosen among a random sample of cached objects.
///
/// Keeping what is needed soon *per byte* is the usual size-aware heuristic (libCacheSim's
/// BeladySize also samples 128 candidates and scores size × distance); it trades byte hits
/// for object hits. The score changes as time passes at a different rate for each size, so
/// no static priority queue can hold it: sampling is how such oracles are made tractable.
/// Objects never requested again are not admitted (their score is infinite).
struct BeladySize {
    let capacity: Int
    var sampleSize = 128
    var seed: UInt64 = 7

    func replay(_ trace: Trace, nextUse: NextUse) -> Outcome {
        var outcome = Outcome()
        var generator = SplitMix64(seed: seed)
        var nextOf = [Int32](repeating: NextUse.never, count: trace.sizes.count)
        // Cached ids in a dense array for sampling, and each id's place in it (-1: not cached).
        var cached: [Int32] = []
        var place = [Int32](repeating: -1, count: trace.sizes.count)
        var used = 0
        for (position, id32) in trace.requests.enumerated() {
            let id = Int(id32)
            let size = Int(trace.sizes[id])
            let next = nextUse[position]
            nextOf[id] = next
            if place[id] >= 0 {
                outcome.record(size: size, hit: true)
                continue
            }
            outcome.record(size: size, hit: false)
            guard size <= capacity, next != NextUse.never else { continue }
            place[id] = Int32(cached.count)
            cached.append(id32)
            used += size
            while used > capacity {
                var victimPlace = 0
                var worst = -1.0
                for _ in 0..<min(sampleSize, cached.count) {
                    let candidatePlace = generator.nextInt(below: cached.count)
                    let candidate = Int(cached[candidatePlace])
                    let distance = Double(nextOf[candidate]) - Double(position)
                    let score = distance * Double(trace.sizes[candidate])
                    if score > worst { (worst, victimPlace) = (score, candidatePlace) }
                }
                let victim = Int(cached[victimPlace])
                used -= Int(trace.sizes[victim])
                place[victim] = -1
                let last = cached.removeLast()
                if victimPlace < cached.count {
                    cached[victimPlace] = last
                    place[Int(last)] = Int32(victimPlace)
                }
            }
        }
        return outcome
    }
}
