/// Hits and bytes counted over one replay.
struct Outcome: Sendable {
    private(set) var requests = 0
    private(set) var hits = 0
    private(set) var bytes = 0
    private(set) var hitBytes = 0

    mutating func record(size: Int, hit: Bool) {
        requests += 1
        bytes += size
        if hit {
            hits += 1
            hitBytes += size
        }
    }

    var hitRatio: Double { requests == 0 ? 0 : Double(hits) / Double(requests) }
    var byteHitRatio: Double { bytes == 0 ? 0 : Double(hitBytes) / Double(bytes) }
}
