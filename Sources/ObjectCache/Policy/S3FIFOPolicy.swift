/// S3-FIFO eviction over a byte budget (Yang et al., "FIFO queues are all you need for cache
/// eviction", SOSP 2023).
///
/// New entries enter a small probationary FIFO (10% of the budget). Leaving it, an entry that
/// was hit moves to the main FIFO; one that was not is evicted and its key remembered in a
/// ghost list, so a quick return goes straight to main. Main evicts from its tail, giving
/// entries that were hit another round (lazy promotion). Most objects in real traces are
/// requested once; they pass through the small queue without displacing the working set, which
/// is what makes the policy resist scans. A hit only bumps a saturating counter: no list is
/// reordered, so a hit's critical section is a hash lookup and one byte write.
///
/// One deliberate difference from the paper: its Algorithm 1 moves an entry from the small
/// queue to main only when `freq > 1` (two hits while probationary; libCacheSim's reference
/// `S3FIFOv0.c` uses `move-to-main-threshold=2`); here one hit is enough. On the simulator's
/// traces (bench/README.md) the two differ by at most 0.2 point of hit ratio on Zipf and
/// scan-heavy traces, and one hit is 0.3–0.7 points better on the churn trace.
public struct S3FIFOPolicy<Key: Hashable, Value>: EvictionPolicy {
    public let capacity: Int
    /// Bytes the two queues may hold: the capacity minus what the ghost list may use.
    private let queueCapacity: Int
    /// Bytes the small queue may hold before evictions take from it.
    private let smallTarget: Int
    private var slots = LinkedSlots<Key, Value>()
    private var small = LinkedSlots<Key, Value>.Queue()
    private var main = LinkedSlots<Key, Value>.Queue()
    private var index: [Key: Int32] = [:]
    private var ghost: GhostList<Key>

    private static var smallQueue: UInt8 { 0 }
    private static var mainQueue: UInt8 { 1 }
    /// Counter ceiling: three hits are enough to survive three rounds through main.
    private static var maxFrequency: UInt8 { 3 }

    /// - Parameter smallFraction: share of the budget for the probationary queue (the paper's 10%).
    public init(capacity: Int, smallFraction: Double = 0.1) {
        self.capacity = capacity
        // The ghost's memory is part of the bound: a thirty-second of it is set aside for the
        // ghost, the rest holds entries.
        let ghostBudget = capacity / 32
        queueCapacity = capacity - ghostBudget
        smallTarget = Int(Double(queueCapacity) * smallFraction)
        // The ghost remembers about as many bytes of entries as main holds (the paper's size),
        // in at most as many keys as its memory allows.
        ghost = GhostList(
            capacity: queueCapacity - smallTarget, maxEntries: ghostBudget / GhostList<Key>.bytesPerEntry)
    }

    /// Entries' costs plus the ghost list's memory.
    public var totalCost: Int { small.cost + main.cost + ghost.memory }
    public var count: Int { small.count + main.count }

    public mutating func get(_ key: Key) -> Value? {
        guard let slot = index[key] else { return nil }
        if slots[slot].frequency < Self.maxFrequency { slots[slot].frequency += 1 }
        return slots[slot].value
    }

    public func peek(_ key: Key) -> Value? {
        index[key].map { slots[$0].value }
    }

    public mutating func insert(_ key: Key, value: Value, cost: Int) -> [(key: Key, value: Value)] {
        var evicted: [(key: Key, value: Value)] = []
        var toMain = ghost.remove(key)
        if let existing = index[key] {
            // A replacement (new version after revalidation) keeps the standing it had earned.
            toMain = toMain || slots[existing].queue == Self.mainQueue
            evicted.append((key, slots[existing].value))
            drop(existing)
        }
        guard cost <= queueCapacity else { return evicted + [(key, value)] }
        let slot = slots.allocate(key, value: value, cost: cost, queue: toMain ? Self.mainQueue : Self.smallQueue)
        if toMain { slots.pushHead(slot, &main) } else { slots.pushHead(slot, &small) }
        index[key] = slot
        while small.cost + main.cost > queueCapacity {
            guard let victim = small.cost > smallTarget || main.count == 0 ? evictFromSmall() : evictFromMain() else { break }
            evicted.append(victim)
        }
        return evicted
    }

    @discardableResult
    public mutating func remove(_ key: Key) -> Value? {
        guard let slot = index[key] else { return nil }
        let value = slots[slot].value
        drop(slot)
        return value
    }

    public func entries() -> [(key: Key, value: Value)] {
        index.values.map { (slots[$0].key, slots[$0].value) }
    }

    public var slotCount: Int { slots.slots.count }

    public func entries(inSlots range: Range<Int>) -> [(key: Key, value: Value)] {
        slots.entries(inSlots: range)
    }

    public mutating func replace(_ key: Key, value: Value) -> Bool {
        guard let slot = index[key] else { return false }
        slots[slot].value = value
        return true
    }

    /// Changes a held entry's cost in place (a file body that grows as its slices are filled)
    /// and counts the change as a use, then evicts others until the budget holds. Unlike a
    /// second `insert`, the entry keeps its queue and its hits, so a body being filled is not
    /// exposed to eviction by its own growth. Returns what was evicted (the entry itself when it
    /// no longer fits at all), or nil when `key` is not held.
    public mutating func resize(_ key: Key, cost: Int) -> [(key: Key, value: Value)]? {
        guard let slot = index[key] else { return nil }
        guard cost <= queueCapacity else {
            let value = slots[slot].value
            drop(slot)
            return [(key, value)]
        }
        let delta = cost - slots[slot].cost
        slots[slot].cost = cost
        if slots[slot].queue == Self.mainQueue { main.cost += delta } else { small.cost += delta }
        if slots[slot].frequency < Self.maxFrequency { slots[slot].frequency += 1 }
        var evicted: [(key: Key, value: Value)] = []
        while small.cost + main.cost > queueCapacity {
            guard let victim = small.cost > smallTarget || main.count == 0 ? evictFromSmall() : evictFromMain() else { break }
            evicted.append(victim)
        }
        return evicted
    }

    private mutating func evictFromSmall() -> (key: Key, value: Value)? {
        while small.tail >= 0 {
            let slot = small.tail
            slots.unlink(slot, &small)
            if slots[slot].frequency > 0 {
                slots[slot].frequency = 0
                slots[slot].queue = Self.mainQueue
                slots.pushHead(slot, &main)
                if main.cost > queueCapacity - smallTarget, let victim = evictFromMain() { return victim }
                continue
            }
            let victim = (slots[slot].key, slots[slot].value)
            ghost.add(victim.0, cost: slots[slot].cost)
            index[victim.0] = nil
            slots.release(slot)
            return victim
        }
        return evictFromMain()
    }

    private mutating func evictFromMain() -> (key: Key, value: Value)? {
        while main.tail >= 0 {
            let slot = main.tail
            slots.unlink(slot, &main)
            if slots[slot].frequency > 0 {
                slots[slot].frequency -= 1
                slots.pushHead(slot, &main)
                continue
            }
            let victim = (slots[slot].key, slots[slot].value)
            index[victim.0] = nil
            slots.release(slot)
            return victim
        }
        return nil
    }

    private mutating func drop(_ slot: Int32) {
        index[slots[slot].key] = nil
        if slots[slot].queue == Self.mainQueue { slots.unlink(slot, &main) } else { slots.unlink(slot, &small) }
        slots.release(slot)
    }
}

/// Keys recently evicted from the small queue, forgotten oldest first once their remembered
/// costs exceed `capacity` or their number exceeds `maxEntries`.
///
/// It holds 64-bit hashes, never keys or values, so its memory does not depend on key length:
/// at most `maxEntries × bytesPerEntry`, which the policy counts against its bound. Two keys
/// with the same hash only mean that one of them may skip the small queue once.
struct GhostList<Key: Hashable> {
    /// Memory per remembered key, rounded up: the dictionary slot (hash and stamp at the
    /// dictionary's load factor) plus the FIFO entry, which may be twice as long as needed
    /// between compactions.
    static var bytesPerEntry: Int { 96 }

    private let capacity: Int
    private let maxEntries: Int
    private var members: [Int: UInt64] = [:]
    private var order: [(hash: Int, stamp: UInt64, cost: Int)] = []
    private var start = 0
    private var cost = 0
    private var nextStamp: UInt64 = 0

    init(capacity: Int, maxEntries: Int) {
        self.capacity = capacity
        self.maxEntries = maxEntries
    }

    /// Bytes the list may be using now (every remembered slot, also those a hit emptied).
    var memory: Int { (order.count - start) * Self.bytesPerEntry }

    mutating func add(_ key: Key, cost: Int) {
        guard maxEntries > 0 else { return }
        nextStamp += 1
        let hash = key.hashValue
        members[hash] = nextStamp
        order.append((hash, nextStamp, cost))
        self.cost += cost
        while (self.cost > capacity || order.count - start > maxEntries), start < order.count {
            let oldest = order[start]
            start += 1
            self.cost -= oldest.cost
            if members[oldest.hash] == oldest.stamp { members[oldest.hash] = nil }
        }
        if start > 1024 && start * 2 > order.count {
            order.removeFirst(start)
            start = 0
        }
    }

    /// Whether `key` was remembered; it is forgotten either way.
    mutating func remove(_ key: Key) -> Bool {
        members.removeValue(forKey: key.hashValue) != nil
    }
}
