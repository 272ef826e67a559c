/// Storage for doubly linked FIFO/LRU queues of entries, addressed by slot number.
///
/// Slots live in one array with a free list, so linking and unlinking are index writes:
/// no allocation per operation and no reference counting on the hot path.
struct LinkedSlots<Key: Hashable, Value> {
    struct Slot {
        var key: Key
        var value: Value
        var cost: Int
        var previous: Int32
        var next: Int32
        /// Which queue the slot is on (policy-defined).
        var queue: UInt8
        /// Access counter (policy-defined meaning).
        var frequency: UInt8
    }

    /// A queue's ends and byte total; `head` is the newest, `tail` the oldest.
    struct Queue {
        var head: Int32 = -1
        var tail: Int32 = -1
        var cost = 0
        var count = 0
    }

    private(set) var slots: [Slot?] = []
    private var free: [Int32] = []

    subscript(slot: Int32) -> Slot {
        get { slots[Int(slot)]! }
        set { slots[Int(slot)] = newValue }
    }

    /// The entries held in slots `range`, clamped to the slots there are.
    func entries(inSlots range: Range<Int>) -> [(key: Key, value: Value)] {
        let clamped = range.clamped(to: 0..<slots.count)
        return slots[clamped].compactMap { $0.map { ($0.key, $0.value) } }
    }

    mutating func allocate(_ key: Key, value: Value, cost: Int, queue: UInt8) -> Int32 {
        let slot = Slot(key: key, value: value, cost: cost, previous: -1, next: -1, queue: queue, frequency: 0)
        if let reused = free.popLast() {
            slots[Int(reused)] = slot
            return reused
        }
        slots.append(slot)
        return Int32(slots.count - 1)
    }

    mutating func release(_ slot: Int32) {
        slots[Int(slot)] = nil
        free.append(slot)
    }

    /// Links `slot` as the newest entry of `queue`.
    mutating func pushHead(_ slot: Int32, _ queue: inout Queue) {
        self[slot].previous = -1
        self[slot].next = queue.head
        if queue.head >= 0 { self[queue.head].previous = slot }
        queue.head = slot
        if queue.tail < 0 { queue.tail = slot }
        queue.cost += self[slot].cost
        queue.count += 1
    }

    mutating func unlink(_ slot: Int32, _ queue: inout Queue) {
        let (previous, next) = (self[slot].previous, self[slot].next)
        if previous >= 0 { self[previous].next = next } else { queue.head = next }
        if next >= 0 { self[next].previous = previous } else { queue.tail = previous }
        self[slot].previous = -1
        self[slot].next = -1
        queue.cost -= self[slot].cost
        queue.count -= 1
    }
}
