#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Object sizes: log-normal, clamped to a range.
///
/// Object stores and CDNs see sizes spread over orders of magnitude with a heavy upper tail;
/// a log-normal is the usual first approximation. Sizes are drawn independently of
/// popularity, so hot objects are neither systematically small nor large.
struct ObjectSizes: CustomStringConvertible {
    /// Median size in bytes (e^mu).
    var median = 16 * 1024
    /// Standard deviation of ln(size).
    var sigma = 1.5
    var minimum = 1024
    var maximum = 1024 * 1024

    func draw(using generator: inout SplitMix64) -> Int32 {
        let size = Double(median) * exp(sigma * generator.nextNormal())
        return Int32(min(max(size.rounded(), Double(minimum)), Double(maximum)))
    }

    var description: String {
        "log-normal sizes, median \(median / 1024) KiB, sigma \(sigma), clamped to \(minimum / 1024) KiB–\(maximum / 1024 / 1024) MiB"
    }
}
