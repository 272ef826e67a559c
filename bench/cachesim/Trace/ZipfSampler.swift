#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Draws popularity ranks 0..<count with P(rank k) ∝ 1 / (k + 1)^alpha.
///
/// Inverse transform over a precomputed cumulative table: exact, and a draw is one binary
/// search (17 steps for 100k objects), which is plenty fast for a few million requests.
struct ZipfSampler {
    let count: Int
    let alpha: Double
    private let cumulative: [Double]

    init(count: Int, alpha: Double) {
        precondition(count > 0)
        self.count = count
        self.alpha = alpha
        var sums = [Double](repeating: 0, count: count)
        var total = 0.0
        for k in 0..<count {
            total += 1 / pow(Double(k + 1), alpha)
            sums[k] = total
        }
        cumulative = sums.map { $0 / total }
    }

    func rank(using generator: inout SplitMix64) -> Int {
        let u = generator.nextUnit()
        var low = 0
        var high = count - 1
        while low < high {
            let middle = (low + high) / 2
            if cumulative[middle] > u { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
