#if canImport(Glibc)
import Glibc
#endif
public import Logging
import Synchronization
import Platform

/// Writes each log record as one JSON line to a `LogOutput` (stdout for journald), at once:
/// these are the operational messages (start, reload, failures), rare and wanted without delay.
/// Metadata keys become top-level fields; integers and doubles stay JSON numbers.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    private let level: LogLevelSetting
    private let label: String
    private let output: LogOutput

    /// - Parameter level: shared by every logger of the process, so a reload changes them all.
    public init(label: String, level: LogLevelSetting, output: LogOutput = .standardOutput) {
        self.label = label
        self.level = level
        self.output = output
    }

    public var logLevel: Logger.Level {
        get { level.value }
        set { level.value = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [(String, JSON.Value)] = [
            ("time", .string(Self.timestamp())),
            ("level", .string(event.level.rawValue)),
            ("msg", .string(event.message.description)),
        ]
        let merged = event.metadata.map { metadata.merging($0) { _, new in new } } ?? metadata
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            fields.append((key, Self.json(value)))
        }
        var line = JSON.object(fields)
        line += "\n"
        line.withUTF8 { output.append(UnsafeRawBufferPointer($0), now: true) }
    }

    static func json(_ value: Logger.Metadata.Value) -> JSON.Value {
        switch value {
        case let .string(text): return .string(text)
        case let .stringConvertible(item):
            if let number = item as? any BinaryInteger { return .int(Int64(clamping: number)) }
            if let number = item as? Double { return .double(number) }
            if let flag = item as? Bool { return .bool(flag) }
            return .string(item.description)
        case let .array(items): return .string("[" + items.map(\.description).joined(separator: ", ") + "]")
        case let .dictionary(items):
            return .object(items.sorted { $0.key < $1.key }.map { ($0.key, json($0.value)) })
        }
    }

    /// RFC 3339 UTC with milliseconds, the same as the access log's `time`.
    static func timestamp() -> String {
        var bytes: [UInt8] = []
        AccessLog.appendTimestamp(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The least severe level logged, changed live by a configuration reload.
public final class LogLevelSetting: Sendable {
    private static let levels = Logger.Level.allCases
    private let index: Atomic<Int>

    public init(_ level: Logger.Level) {
        index = Atomic(Self.levels.firstIndex(of: level) ?? 0)
    }

    public var value: Logger.Level {
        get { Self.levels[index.load(ordering: .relaxed)] }
        set { index.store(Self.levels.firstIndex(of: newValue) ?? 0, ordering: .relaxed) }
    }
}

/// Writes a whole log line with as few `write(2)` calls as the kernel allows (one, for a line
/// below the pipe buffer), so that lines from different threads never interleave. A failed write
/// drops the rest of the line: logging must never stop a request.
func writeLine(_ bytes: UnsafeRawBufferPointer, to fd: Int32) {
    try? writeAll(bytes, to: fd, operation: "write(log)")
}
