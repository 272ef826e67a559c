#if canImport(Glibc)
import Glibc
#endif

/// Nanoseconds on a clock that never jumps, for measuring durations and deadlines.
public func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// `monotonicNanoseconds()` in seconds.
public func monotonicSeconds() -> Double {
    Double(monotonicNanoseconds()) / 1e9
}

/// Seconds since the epoch (`CLOCK_REALTIME`), for what must mean the same after a restart.
public func wallClockSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
