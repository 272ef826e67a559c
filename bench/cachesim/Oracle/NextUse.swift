/// For each request, the position of the next request for the same object.
///
/// What makes Bélády's algorithm an oracle: it is computed from the whole trace before the
/// replay starts, one backward pass.
struct NextUse: Sendable {
    /// Position used for "never requested again": later than any real position.
    static let never = Int32.max

    let positions: [Int32]

    init(_ trace: Trace) {
        precondition(trace.requests.count < Int(Self.never))
        var upcoming = [Int32](repeating: Self.never, count: trace.sizes.count)
        var positions = [Int32](repeating: Self.never, count: trace.requests.count)
        for position in trace.requests.indices.reversed() {
            let id = Int(trace.requests[position])
            positions[position] = upcoming[id]
            upcoming[id] = Int32(position)
        }
        self.positions = positions
    }

    subscript(position: Int) -> Int32 { positions[position] }
}
