#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A request time in the two forms SigV4 uses: `20150830T123600Z` and `20150830`.
///
/// Built from seconds since the epoch that the caller supplies, so signing has no
/// hidden clock and tests can pin the published examples' dates. Formatted with
/// `gmtime_r` (thread-safe, no locale, no Foundation).
public struct AmzDate: Sendable, Equatable, CustomStringConvertible {
    /// `YYYYMMDD'T'HHMMSS'Z'`, the value of `x-amz-date`.
    public let timestamp: String
    /// `YYYYMMDD`, the date in the credential scope.
    public var day: String { String(timestamp.prefix(8)) }

    /// - Parameter secondsSinceEpoch: UTC seconds since 1970-01-01T00:00:00Z.
    public init(secondsSinceEpoch: Int64) {
        var seconds = time_t(secondsSinceEpoch)
        var parts = tm()
        // gmtime_r fails only for years that do not fit an int; clamp to the epoch then.
        if gmtime_r(&seconds, &parts) == nil { parts = tm(); parts.tm_year = 70; parts.tm_mday = 1 }
        timestamp = Self.digits(Int(parts.tm_year) + 1900, 4) + Self.digits(Int(parts.tm_mon) + 1, 2)
            + Self.digits(Int(parts.tm_mday), 2) + "T" + Self.digits(Int(parts.tm_hour), 2)
            + Self.digits(Int(parts.tm_min), 2) + Self.digits(Int(parts.tm_sec), 2) + "Z"
    }

    /// The current time, for callers that do not inject one.
    public static func now() -> AmzDate {
        AmzDate(secondsSinceEpoch: Int64(time(nil)))
    }

    public var description: String { timestamp }

    private static func digits(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }
}
