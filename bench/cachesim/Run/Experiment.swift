/// The grid the simulator runs: every trace × cache size × contender.
struct Experiment: Sendable {
    var generator = TraceGenerator()
    /// Cache sizes as fractions of each trace's working-set bytes.
    var fractions = [0.01, 0.05, 0.10]
    var contenders = Contender.allCases

    /// One replay's result.
    struct Cell: Sendable {
        var trace: Int
        var fraction: Int
        var contender: Contender
        var capacity: Int
        var outcome: Outcome
        var seconds: Double
    }

    func traces() -> [Trace] {
        [
            generator.zipf(alpha: 0.8),
            generator.zipf(alpha: 1.0),
            generator.scanHeavy(alpha: 0.8),
            generator.scanHeavy(alpha: 1.0),
            generator.churn(alpha: 0.8),
        ]
    }

    /// Replays everything, as many at once as the machine has cores (each replay is single
    /// threaded and independent: the traces are shared read-only).
    func run(_ traces: [Trace], progress: @escaping @Sendable (Cell) -> Void) async -> [Cell] {
        let nextUses = traces.map(NextUse.init)
        let workingSets = traces.map(\.workingSetBytes)
        return await withTaskGroup(of: Cell.self) { group in
            for (t, trace) in traces.enumerated() {
                for (f, fraction) in fractions.enumerated() {
                    let capacity = Int(Double(workingSets[t]) * fraction)
                    for contender in contenders {
                        let nextUse = nextUses[t]
                        group.addTask {
                            let start = ContinuousClock.now
                            let outcome = contender.replay(trace, nextUse: nextUse, capacity: capacity)
                            let elapsed = ContinuousClock.now - start
                            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
                            return Cell(trace: t, fraction: f, contender: contender, capacity: capacity, outcome: outcome, seconds: seconds)
                        }
                    }
                }
            }
            var cells: [Cell] = []
            for await cell in group {
                progress(cell)
                cells.append(cell)
            }
            return cells
        }
    }
}
