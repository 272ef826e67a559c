/// Renders the results as Markdown: the trace parameters, then one table.
struct Report {
    let experiment: Experiment
    let traces: [Trace]
    let cells: [Experiment.Cell]

    func markdown() -> String {
        var lines: [String] = []
        let generator = experiment.generator
        lines.append("Seed \(generator.seed). Cache sizes are fractions of each trace's working-set bytes "
            + "(the distinct objects it requests, one-off scan keys excluded), so a size means the same bytes "
            + "with and without scans. Cells: hit ratio / byte hit ratio.")
        lines.append("")
        for trace in traces {
            lines.append("- `\(trace.name)`: " + trace.parameters.joined(separator: "; ")
                + "; \(trace.uniqueObjects) distinct objects, \(mebibytes(trace.uniqueBytes)) distinct, "
                + "working set \(mebibytes(trace.workingSetBytes)), \(mebibytes(trace.requestedBytes)) requested.")
        }
        lines.append("")
        let contenders = experiment.contenders
        let compare = contenders.contains(.lru) && contenders.contains(.s3fifo)
        lines.append("| trace | cache | " + contenders.map(\.rawValue).joined(separator: " | ")
            + (compare ? " | S3-FIFO − LRU |" : " |"))
        lines.append("|---|---:|" + String(repeating: "---:|", count: contenders.count + (compare ? 1 : 0)))
        for (t, trace) in traces.enumerated() {
            for (f, fraction) in experiment.fractions.enumerated() {
                let row = contenders.compactMap { contender in
                    cells.first { $0.trace == t && $0.fraction == f && $0.contender == contender }
                }
                guard let capacity = row.first?.capacity else { continue }
                var line = "| \(trace.name) | \(percent(fraction, digits: fraction < 0.001 ? 2 : fraction < 0.01 ? 1 : 0)) (\(mebibytes(capacity))) | "
                line += row.map { "\(percent($0.outcome.hitRatio)) / \(percent($0.outcome.byteHitRatio))" }
                    .joined(separator: " | ")
                if compare, let lru = row.first(where: { $0.contender == .lru })?.outcome,
                    let fifo = row.first(where: { $0.contender == .s3fifo })?.outcome
                {
                    line += " | \(points(fifo.hitRatio - lru.hitRatio)) / \(points(fifo.byteHitRatio - lru.byteHitRatio))"
                }
                lines.append(line + " |")
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// `0.1234` as "12.3%".
func percent(_ ratio: Double, digits: Int = 1) -> String {
    fixed(ratio * 100, digits: digits) + "%"
}

/// A difference of ratios in percentage points, signed: "+1.2 pp".
func points(_ difference: Double) -> String {
    (difference >= 0 ? "+" : "−") + fixed(abs(difference) * 100, digits: 1) + " pp"
}

func mebibytes(_ bytes: Int) -> String {
    bytes >= 10 << 30 ? fixed(Double(bytes) / Double(1 << 30), digits: 1) + " GiB"
        : fixed(Double(bytes) / Double(1 << 20), digits: 1) + " MiB"
}

/// A non-negative number with a fixed count of decimals (no Foundation formatting).
func fixed(_ value: Double, digits: Int) -> String {
    var scale = 1
    for _ in 0..<digits { scale *= 10 }
    let scaled = Int((value * Double(scale)).rounded())
    guard digits > 0 else { return String(scaled) }
    let fraction = String(scaled % scale)
    return "\(scaled / scale)." + String(repeating: "0", count: digits - fraction.count) + fraction
}
