/// Why a gzip stream could not be processed.
public enum GzipError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The input is not a valid gzip stream (bad header, bad checksum, truncated).
    case corrupt(String)
    /// Inflating would produce more than the allowed number of bytes (a gzip bomb or an oversized body).
    case tooLarge(limit: Int64)
    /// zlib could not set up its state (out of memory).
    case setupFailed(Int32)

    public var description: String {
        switch self {
        case let .corrupt(reason): return "invalid gzip data: \(reason)"
        case let .tooLarge(limit): return "inflated body exceeds \(limit) bytes"
        case let .setupFailed(code): return "zlib initialisation failed (code \(code))"
        }
    }
}
