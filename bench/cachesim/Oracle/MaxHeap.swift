/// A binary max-heap of 64-bit keys, with no removal but of the maximum.
struct MaxHeap {
    private var keys: [UInt64] = []

    var isEmpty: Bool { keys.isEmpty }

    mutating func push(_ key: UInt64) {
        keys.append(key)
        var child = keys.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard keys[parent] < keys[child] else { break }
            keys.swapAt(parent, child)
            child = parent
        }
    }

    mutating func popMax() -> UInt64? {
        guard let last = keys.popLast() else { return nil }
        guard !keys.isEmpty else { return last }
        let top = keys[0]
        keys[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < keys.count else { break }
            let right = left + 1
            let larger = right < keys.count && keys[right] > keys[left] ? right : left
            guard keys[larger] > keys[parent] else { break }
            keys.swapAt(parent, larger)
            parent = larger
        }
        return top
    }
}
