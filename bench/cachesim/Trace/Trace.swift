/// A request sequence over objects numbered 0..<sizes.count, each with a fixed size.
struct Trace: Sendable {
    let name: String
    /// How the trace was made, one fact a line, for the report.
    let parameters: [String]
    /// Object ids in request order.
    let requests: [Int32]
    /// Size in bytes of each object id.
    let sizes: [Int32]
    /// Object ids that belong to the working set (not one-off scan keys).
    let workingSetCount: Int

    /// Bytes of the working-set objects the trace requests: cache sizes are fractions of this,
    /// so one cache size means the same bytes on a trace with and without scans.
    var workingSetBytes: Int {
        bytes(of: requested.enumerated().filter { $0.offset < workingSetCount && $0.element }.map(\.offset))
    }

    var uniqueObjects: Int { requested.lazy.filter { $0 }.count }
    var uniqueBytes: Int { bytes(of: requested.enumerated().filter(\.element).map(\.offset)) }
    var requestedBytes: Int { requests.reduce(0) { $0 + Int(sizes[Int($1)]) } }

    /// Whether each object id is requested at all.
    private var requested: [Bool] {
        var seen = [Bool](repeating: false, count: sizes.count)
        for id in requests { seen[Int(id)] = true }
        return seen
    }

    private func bytes(of ids: [Int]) -> Int {
        ids.reduce(0) { $0 + Int(sizes[$1]) }
    }
}
