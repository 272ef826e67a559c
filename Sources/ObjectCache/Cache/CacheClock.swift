#if canImport(Glibc)
import Glibc
#endif
import Platform
import Synchronization

/// Where the cache reads the time: seconds on a clock that never jumps.
///
/// Injected so that expiry, revalidation and grace windows are tested with a manual clock.
public protocol CacheClock: Sendable {
    func now() -> Double
}

/// `CLOCK_MONOTONIC`: unaffected by NTP steps or an operator changing the date.
public struct MonotonicClock: CacheClock {
    public init() {}

    public func now() -> Double { monotonicSeconds() }
}

/// A clock that moves only when told to, for tests.
public final class ManualClock: CacheClock {
    private let current: Mutex<Double>

    public init(_ start: Double = 1_000) {
        current = Mutex(start)
    }

    public func now() -> Double { current.withLock { $0 } }

    public func advance(by seconds: Double) {
        current.withLock { $0 += seconds }
    }
}
