import ObjectCache
import Testing

/// A small deterministic generator, so a failing sequence can be replayed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct EvictionPolicyTests {
    /// Random operations against a model dictionary: the budget always holds, every value
    /// returned is the one inserted last, and what was evicted is really gone.
    func checkInvariants(_ policy: inout some EvictionPolicy<Int, Int>, seed: UInt64) {
        var generator = SplitMix(state: seed)
        var model: [Int: Int] = [:]
        for step in 0..<20_000 {
            let key = Int.random(in: 0..<300, using: &generator)
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<5:
                let got = policy.get(key)
                #expect(got == model[key], "step \(step): get(\(key))")
            case 5..<9:
                let cost = Int.random(in: 1...120, using: &generator)
                for (evictedKey, evictedValue) in policy.insert(key, value: step, cost: cost) where evictedKey != key || evictedValue != step {
                    if model[evictedKey] == evictedValue { model[evictedKey] = nil }
                }
                if policy.peek(key) == step { model[key] = step } else { model[key] = nil }
            default:
                #expect(policy.remove(key) == model.removeValue(forKey: key))
            }
            #expect(policy.totalCost <= policy.capacity)
            #expect(policy.count == model.count)
        }
        #expect(Dictionary(uniqueKeysWithValues: policy.entries().map { ($0.key, $0.value) }) == model)
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func lruKeepsItsInvariants(seed: UInt64) {
        var policy = LRUPolicy<Int, Int>(capacity: 2_000)
        checkInvariants(&policy, seed: seed)
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func s3fifoKeepsItsInvariants(seed: UInt64) {
        var policy = S3FIFOPolicy<Int, Int>(capacity: 2_000)
        checkInvariants(&policy, seed: seed)
    }

    @Test func lruEvictsTheLeastRecentlyUsed() {
        var policy = LRUPolicy<String, Int>(capacity: 30)
        _ = policy.insert("a", value: 1, cost: 10)
        _ = policy.insert("b", value: 2, cost: 10)
        _ = policy.insert("c", value: 3, cost: 10)
        _ = policy.get("a")
        let evicted = policy.insert("d", value: 4, cost: 10)
        #expect(evicted.map(\.key) == ["b"])
        #expect(policy.peek("a") == 1)
    }

    @Test func oversizedEntriesAreNotAdmitted() {
        var lru = LRUPolicy<String, Int>(capacity: 10)
        #expect(lru.insert("big", value: 1, cost: 11).map(\.key) == ["big"])
        #expect(lru.count == 0)
        var fifo = S3FIFOPolicy<String, Int>(capacity: 10)
        #expect(fifo.insert("big", value: 1, cost: 11).map(\.key) == ["big"])
        #expect(fifo.count == 0)
    }

    /// The property S3-FIFO is chosen for: a hot set that was hit survives a long scan of
    /// objects seen once, where LRU loses all of it.
    @Test func s3fifoKeepsTheHotSetThroughAScan() {
        var fifo = S3FIFOPolicy<Int, Int>(capacity: 100)
        var lru = LRUPolicy<Int, Int>(capacity: 100)
        for key in 0..<50 {
            _ = fifo.insert(key, value: key, cost: 1)
            _ = lru.insert(key, value: key, cost: 1)
        }
        for _ in 0..<3 { for key in 0..<50 { _ = fifo.get(key); _ = lru.get(key) } }
        for key in 1000..<2000 {
            _ = fifo.insert(key, value: key, cost: 1)
            _ = lru.insert(key, value: key, cost: 1)
        }
        let fifoSurvivors = (0..<50).filter { fifo.peek($0) != nil }.count
        let lruSurvivors = (0..<50).filter { lru.peek($0) != nil }.count
        #expect(fifoSurvivors == 50)
        #expect(lruSurvivors == 0)
    }

    /// Cost of one entry in the ghost tests: realistic (an entry costs at least 256 bytes of
    /// bookkeeping), so the ghost list's memory share of the budget holds a few dozen keys.
    static let entry = 1_000
    /// A budget whose queues hold exactly 100 entries once the ghost's share (1/32) is set aside.
    static let hundredEntries = 103_300

    /// A cache of 100 entries in steady state: 0..<90 were hit while probationary and
    /// fill main; 90..<100 left the small queue unhit and are remembered by the ghost;
    /// 100..<110 are the small queue.
    func steadyS3FIFO() -> S3FIFOPolicy<Int, Int> {
        var fifo = S3FIFOPolicy<Int, Int>(capacity: Self.hundredEntries)
        for key in 0..<100 { _ = fifo.insert(key, value: key, cost: Self.entry) }
        for key in 0..<90 { _ = fifo.get(key) }
        for key in 100..<110 { _ = fifo.insert(key, value: key, cost: Self.entry) }
        #expect((0..<90).allSatisfy { fifo.peek($0) != nil })
        #expect((90..<100).allSatisfy { fifo.peek($0) == nil })
        return fifo
    }

    @Test func ghostHitsGoStraightToMain() {
        var fifo = steadyS3FIFO()
        _ = fifo.insert(95, value: 95, cost: Self.entry)  // remembered by the ghost: admitted to main
        _ = fifo.insert(96, value: 96, cost: Self.entry)
        for key in 200..<220 { _ = fifo.insert(key, value: key, cost: Self.entry) }  // twice the small queue
        #expect(fifo.peek(95) == 95)
        #expect(fifo.peek(96) == 96)
        #expect(fifo.peek(219) == 219)
    }

    /// The ghost list is bounded: it remembers about main's worth of costs, in no more keys
    /// than its memory share allows, oldest forgotten first.
    @Test func ghostForgetsBeyondItsCapacity() {
        var fifo = steadyS3FIFO()
        for key in 200..<300 { _ = fifo.insert(key, value: key, cost: Self.entry) }  // 100 more keys through the ghost
        _ = fifo.insert(95, value: 95, cost: Self.entry)  // forgotten: probationary again
        for key in 300..<320 { _ = fifo.insert(key, value: key, cost: Self.entry) }
        #expect(fifo.peek(95) == nil)
        #expect((0..<90).filter { fifo.peek($0) != nil }.count >= 80, "main kept its entries")
    }

    /// The ghost's memory is part of the bound, whatever the keys' length: it holds hashes,
    /// and at most a thirty-second of the budget's worth of them.
    @Test func ghostMemoryCountsAgainstTheBound() {
        let capacity = 1 << 20
        var fifo = S3FIFOPolicy<String, Int>(capacity: capacity)
        let longKey = String(repeating: "k", count: 900)
        for index in 0..<50_000 {
            _ = fifo.insert("\(index)/\(longKey)", value: index, cost: 256 + 900 + 8)
            #expect(fifo.totalCost <= capacity)
        }
        #expect(fifo.totalCost > capacity - capacity / 16, "the queues still use the rest of the budget")
    }
}
