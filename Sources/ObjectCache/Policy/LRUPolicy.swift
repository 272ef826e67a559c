/// Least-recently-used eviction over a byte budget.
public struct LRUPolicy<Key: Hashable, Value>: EvictionPolicy {
    public let capacity: Int
    private var slots = LinkedSlots<Key, Value>()
    private var list = LinkedSlots<Key, Value>.Queue()
    private var index: [Key: Int32] = [:]

    public init(capacity: Int) {
        self.capacity = capacity
    }

    public var totalCost: Int { list.cost }
    public var count: Int { list.count }

    public mutating func get(_ key: Key) -> Value? {
        guard let slot = index[key] else { return nil }
        if list.head != slot {
            slots.unlink(slot, &list)
            slots.pushHead(slot, &list)
        }
        return slots[slot].value
    }

    public func peek(_ key: Key) -> Value? {
        index[key].map { slots[$0].value }
    }

    public mutating func insert(_ key: Key, value: Value, cost: Int) -> [(key: Key, value: Value)] {
        var evicted: [(key: Key, value: Value)] = []
        if let old = remove(key) { evicted.append((key, old)) }
        guard cost <= capacity else { return evicted + [(key, value)] }
        let slot = slots.allocate(key, value: value, cost: cost, queue: 0)
        slots.pushHead(slot, &list)
        index[key] = slot
        while list.cost > capacity, list.tail >= 0 {
            let victim = list.tail
            evicted.append((slots[victim].key, slots[victim].value))
            drop(victim)
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

    private mutating func drop(_ slot: Int32) {
        index[slots[slot].key] = nil
        slots.unlink(slot, &list)
        slots.release(slot)
    }
}
