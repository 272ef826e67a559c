#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// cachesim: replays synthetic traces through the worker's eviction policies and Bélády's
// oracle, and prints hit ratios as Markdown. See bench/README.md.
//
//   cachesim [--requests N] [--objects N] [--seed N] [--sizes PERCENT,PERCENT,...]

/// A line on standard error (progress), keeping standard output for the report.
func note(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

let usage = "usage: cachesim [--requests N] [--objects N] [--seed N] [--sizes PERCENT,PERCENT,...]"
var experiment = Experiment()
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    guard let value = arguments.popFirst() else {
        note(usage)
        exit(2)
    }
    switch (flag, Int(value), value.split(separator: ",").compactMap { Double($0) }) {
    case let ("--requests", number?, _) where number > 0: experiment.generator.requests = number
    case let ("--objects", number?, _) where number > 0: experiment.generator.objects = number
    case let ("--seed", number?, _) where number >= 0: experiment.generator.seed = UInt64(number)
    case let ("--sizes", _, percents) where !percents.isEmpty && percents.allSatisfy({ $0 > 0 && $0 <= 100 }):
        experiment.fractions = percents.map { $0 / 100 }
    default:
        note(usage)
        exit(2)
    }
}

let start = ContinuousClock.now
let traces = experiment.traces()
note("traces made in \(ContinuousClock.now - start)")
let cells = await experiment.run(traces) { [experiment, traces] cell in
    note("\(traces[cell.trace].name) \(percent(experiment.fractions[cell.fraction], digits: 0)) "
        + "\(cell.contender.rawValue): \(percent(cell.outcome.hitRatio)) in \(fixed(cell.seconds, digits: 1)) s")
}
print(Report(experiment: experiment, traces: traces, cells: cells).markdown())
note("done in \(ContinuousClock.now - start)")
