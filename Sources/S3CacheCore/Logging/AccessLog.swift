#if canImport(Glibc)
import Glibc
#endif
import Logging

/// The access log: one JSON line per request, in the same shape as `JSONLogHandler`'s lines
/// (`time`, `level`, `msg`, then the fields in name order), built by each worker thread
/// straight into a buffer it reuses and handed to the `LogOutput`, which writes info lines in
/// batches and error lines at once.
///
/// Requests do not go through swift-log: building its metadata dictionary, boxing every value
/// and sorting the keys cost more than the rest of a cache hit (bench/README.md, "Where the
/// time goes"). Operational messages (start, reload, failures) still do.
final class AccessLog {
    /// One request's line, fields as they are logged.
    struct Entry {
        var method: String
        var status: Int
        var elapsedNanoseconds: Int64
        var bytesSent: Int64
        var remoteAddress: String
        var userAgent: String
        var requestID: String?
        var bucket: String?
        var key: String?
        var path: String?
        var cache: String?
        var error: String?
        var severity: Severity
    }

    /// A request line's level.
    enum Severity {
        /// Answered as asked, or refused for the client's own mistake (4xx).
        case info
        /// Refused because a bound of ours was full (503 with `Retry-After`): the service is
        /// working as configured, under more load than it was sized for.
        case refusal
        /// A failure of ours: any other 5xx, or a broken response.
        case serverFault

        var level: Logger.Level {
            switch self {
            case .info: .info
            case .refusal: .warning
            case .serverFault: .error
            }
        }
    }

    private let level: LogLevelSetting
    private let output: LogOutput
    private var line: [UInt8] = []

    init(level: LogLevelSetting, output: LogOutput = .standardOutput) {
        self.level = level
        self.output = output
        line.reserveCapacity(1024)
    }

    /// Whether a line at `severity` would be written; checked before anything is gathered.
    func isEnabled(_ severity: Severity) -> Bool {
        severity.level >= level.value
    }

    func write(_ entry: Entry) {
        line.removeAll(keepingCapacity: true)
        line += #"{"time":""#.utf8
        Self.appendTimestamp(to: &line)
        switch entry.severity {
        case .info: line += #"","level":"info","msg":"request""#.utf8
        case .refusal: line += #"","level":"warning","msg":"request""#.utf8
        case .serverFault: line += #"","level":"error","msg":"request""#.utf8
        }
        // Name order, as JSONLogHandler writes metadata.
        appendNumber("bytes_sent", entry.bytesSent)
        appendString("bucket", entry.bucket)
        appendString("cache", entry.cache)
        line += #","duration_ms":"#.utf8
        Self.appendMilliseconds(entry.elapsedNanoseconds, to: &line)
        appendString("error", entry.error)
        appendString("key", entry.key)
        appendString("method", entry.method)
        appendString("path", entry.path)
        appendString("remote_addr", entry.remoteAddress)
        appendString("request_id", entry.requestID)
        appendNumber("status", Int64(entry.status))
        appendString("user_agent", entry.userAgent)
        line += "}\n".utf8
        // Refusals come in floods when they come: they wait for the batch like info lines.
        line.withUnsafeBytes { output.append($0, now: entry.severity == .serverFault) }
    }

    /// A line that must not wait for a batch (audit lines).
    func writeImmediately(_ line: [UInt8]) {
        line.withUnsafeBytes { output.append($0, now: true) }
    }

    private func appendString(_ name: StaticString, _ value: String?) {
        Self.appendString(name, value, to: &line)
    }

    private func appendNumber(_ name: StaticString, _ value: Int64) {
        Self.appendNumber(name, value, to: &line)
    }

    /// `,"name":"value"` (escaped), nothing for nil: the fields of request and audit lines.
    static func appendString(_ name: StaticString, _ value: String?, to line: inout [UInt8]) {
        guard let value else { return }
        line += #",""#.utf8
        line += UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        line += #"":""#.utf8
        JSON.appendEscaped(value, to: &line)
        line.append(UInt8(ascii: "\""))
    }

    static func appendNumber(_ name: StaticString, _ value: Int64, to line: inout [UInt8]) {
        line += #",""#.utf8
        line += UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        line += #"":"#.utf8
        line += String(value).utf8
    }

    /// `12.345`: milliseconds with microsecond resolution, as a JSON number.
    static func appendMilliseconds(_ nanoseconds: Int64, to line: inout [UInt8]) {
        let micros = max(0, (nanoseconds + 500) / 1000)
        line += String(micros / 1000).utf8
        let fraction = micros % 1000
        guard fraction > 0 else { return }
        line.append(UInt8(ascii: "."))
        var digits = [UInt8(ascii: "0") + UInt8(fraction / 100), UInt8(ascii: "0") + UInt8(fraction / 10 % 10),
                      UInt8(ascii: "0") + UInt8(fraction % 10)]
        while digits.last == UInt8(ascii: "0") { digits.removeLast() }
        line += digits
    }

    /// RFC 3339 UTC with milliseconds; every log line's `time`.
    static func appendTimestamp(to line: inout [UInt8]) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int32, _ width: Int) {
            var divisor: Int32 = 1
            for _ in 1..<width { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                line.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest / divisor % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        digits(parts.tm_year + 1900, 4)
        line.append(UInt8(ascii: "-"))
        digits(parts.tm_mon + 1, 2)
        line.append(UInt8(ascii: "-"))
        digits(parts.tm_mday, 2)
        line.append(UInt8(ascii: "T"))
        digits(parts.tm_hour, 2)
        line.append(UInt8(ascii: ":"))
        digits(parts.tm_min, 2)
        line.append(UInt8(ascii: ":"))
        digits(parts.tm_sec, 2)
        line.append(UInt8(ascii: "."))
        digits(Int32(now.tv_nsec / 1_000_000), 3)
        line.append(UInt8(ascii: "Z"))
    }
}
