/// Makes the synthetic traces the simulator compares policies on, deterministically from a seed.
struct TraceGenerator {
    /// Distinct objects in the working set.
    var objects = 100_000
    var requests = 2_000_000
    var sizes = ObjectSizes()
    var seed: UInt64 = 2023

    /// Independent requests, popularity Zipf(alpha) over the working set.
    func zipf(alpha: Double) -> Trace {
        var generator = SplitMix64(seed: seed)
        let sampler = ZipfSampler(count: objects, alpha: alpha)
        let sizeTable = (0..<objects).map { _ in sizes.draw(using: &generator) }
        let requests = (0..<requests).map { _ in Int32(sampler.rank(using: &generator)) }
        return Trace(
            name: "zipf-\(alpha)",
            parameters: ["Zipf alpha \(alpha) over \(objects) objects, \(self.requests) requests, \(sizes)"],
            requests: requests, sizes: sizeTable, workingSetCount: objects)
    }

    /// The Zipf working set with sequential scans of keys read exactly once (a backup or a
    /// crawler reading everything), interleaved with the normal traffic.
    ///
    /// The trace is cut into `scans` equal segments. Each starts with a scan of new keys, as
    /// many as `scanFraction` of the segment's requests; while it lasts, each request is the
    /// scan's next key with probability `scanShare`, otherwise a Zipf request. The rest of
    /// the segment is Zipf only.
    func scanHeavy(alpha: Double, scans: Int = 10, scanFraction: Double = 0.25, scanShare: Double = 0.5) -> Trace {
        var generator = SplitMix64(seed: seed &+ 1)
        let scanLength = Int(Double(requests / scans) * scanFraction)
        let sampler = ZipfSampler(count: objects, alpha: alpha)
        let sizeTable = (0..<(objects + scans * scanLength)).map { _ in sizes.draw(using: &generator) }
        let segment = requests / scans
        precondition(Double(scanLength) / scanShare < Double(segment), "scans would not fit their segments")
        var trace: [Int32] = []
        trace.reserveCapacity(requests)
        var nextScanKey = objects
        for position in 0..<requests {
            let scanEnd = objects + (position / segment + 1) * scanLength
            if nextScanKey < scanEnd && position / segment < scans && generator.nextUnit() < scanShare {
                trace.append(Int32(nextScanKey))
                nextScanKey += 1
            } else {
                trace.append(Int32(sampler.rank(using: &generator)))
            }
        }
        return Trace(
            name: "scan-zipf-\(alpha)",
            parameters: [
                "Zipf alpha \(alpha) over \(objects) objects, \(requests) requests, \(sizes)",
                "\(scans) scans of \(scanLength) keys read once each, one starting every \(segment) requests; "
                    + "during a scan \(Int(scanShare * 100))% of requests are scan keys "
                    + "(\(scans * scanLength) scan requests, \(scans * scanLength * 100 / requests)% of the trace)",
            ],
            requests: trace, sizes: sizeTable, workingSetCount: objects)
    }

    /// A popular set that moves: new objects keep arriving at the top and older ones cool down
    /// (news, releases, a feed).
    ///
    /// The trace is cut into `phases`. In phase p, Zipf rank r is object
    /// `p * shift + objects - 1 - r`, with `shift` a `shiftFraction` of the objects: each phase
    /// `shift` never-seen objects take the top ranks and every older object drops `shift`
    /// ranks; those past the last rank are not asked again.
    func churn(alpha: Double, phases: Int = 20, shiftFraction: Double = 0.05) -> Trace {
        let shift = Int(Double(objects) * shiftFraction)
        var generator = SplitMix64(seed: seed &+ 2)
        let sampler = ZipfSampler(count: objects, alpha: alpha)
        let sizeTable = (0..<(objects + (phases - 1) * shift)).map { _ in sizes.draw(using: &generator) }
        let phaseLength = (requests + phases - 1) / phases
        let trace = (0..<requests).map { position in
            let newest = (position / phaseLength) * shift + objects - 1
            return Int32(newest - sampler.rank(using: &generator))
        }
        return Trace(
            name: "churn-zipf-\(alpha)",
            parameters: [
                "Zipf alpha \(alpha) over a window of \(objects) objects, \(requests) requests, \(sizes)",
                "\(phases) phases of \(phaseLength) requests; each phase \(shift) new objects take the top ranks "
                    + "and older ones drop \(shift) ranks (\(sizeTable.count) objects in all)",
            ],
            requests: trace, sizes: sizeTable, workingSetCount: sizeTable.count)
    }
}
