/// Decides which entries leave a byte-bounded cache, and holds the entries while they stay.
///
/// A policy owns its entries (key → value) so a hit costs one hash lookup. Every operation is
/// O(1) amortised. Policies are value types, not thread-safe: a cache shard calls them under
/// its lock, the simulator calls them directly.
public protocol EvictionPolicy<Key, Value> {
    associatedtype Key: Hashable
    associatedtype Value

    /// The byte budget this policy keeps `totalCost` within.
    var capacity: Int { get }
    /// Sum of the costs of the entries held.
    var totalCost: Int { get }
    var count: Int { get }

    /// The value for `key`, recording the access (what "recently/frequently used" means is the policy's).
    mutating func get(_ key: Key) -> Value?
    /// The value for `key` without recording an access (for maintenance such as cleanup).
    func peek(_ key: Key) -> Value?
    /// Adds or replaces an entry and evicts until the budget holds again; returns what was evicted.
    /// An entry costing more than the whole capacity is not admitted (returned as evicted).
    mutating func insert(_ key: Key, value: Value, cost: Int) -> [(key: Key, value: Value)]
    /// Removes an entry (invalidation, expiry); returns it if it was held.
    @discardableResult mutating func remove(_ key: Key) -> Value?
    /// Every entry held, in no particular order.
    func entries() -> [(key: Key, value: Value)]
    /// Where `entries(inSlots:)` ends: entries never move between slots while they are held,
    /// so walking the slots in ranges, with other calls in between, visits every entry that was
    /// held throughout exactly once.
    var slotCount: Int { get }
    /// The entries held in slots `range` (clamped to `slotCount`).
    func entries(inSlots range: Range<Int>) -> [(key: Key, value: Value)]
    /// Replaces the value of a held entry in place, keeping its cost and its standing with the
    /// policy; false when `key` is not held.
    mutating func replace(_ key: Key, value: Value) -> Bool
}

/// The eviction policies a cache can be configured with.
public enum EvictionPolicyKind: String, Sendable, CaseIterable {
    /// Least recently used: every hit moves the entry to the front of one list.
    case lru
    /// S3-FIFO (Yang et al., SOSP 2023): a small probationary FIFO, a main FIFO with lazy
    /// reinsertion, and a ghost list; hits only bump a counter.
    case s3fifo
}
