#if canImport(Glibc)
import Glibc
#endif

/// The process environment as a dictionary, read without Foundation.
public func processEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var cursor = environ
    while let entry = cursor.pointee {
        let pair = String(cString: entry)
        if let equals = pair.firstIndex(of: "=") {
            result[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
        }
        cursor += 1
    }
    return result
}

/// Writes to fd 2 directly: C's `stderr` is a global `var` that strict concurrency rejects.
public func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { writeLine(UnsafeRawBufferPointer($0), to: 2) }
}

/// The version, one place for the binary, the logs, the metrics and the Debian package.
public enum S3CacheVersion {
    public static let current = "0.2.0"
}

/// What the command line asks for.
public struct CommandLineOptions: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        case serve, checkConfiguration, version, help
    }

    public var action: Action = .serve
    /// `--config PATH`; nil means the default path, which may be absent.
    public var configPath: String?

    public struct UsageError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(parsing arguments: [String]) throws(UsageError) {
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            switch argument {
            case "--version", "-V": action = .version
            case "--help", "-h": action = .help
            case "--check-config", "-t": action = .checkConfiguration
            case "--config", "-c":
                guard let path = remaining.popFirst(), !path.isEmpty else { throw UsageError(description: "\(argument) needs a path") }
                configPath = path
            case _ where argument.hasPrefix("--config="):
                configPath = String(argument.dropFirst("--config=".count))
                guard configPath?.isEmpty == false else { throw UsageError(description: "--config= needs a path") }
            default:
                throw UsageError(description: "unknown argument \(argument)")
            }
        }
    }

    public static let usage = """
        Usage: s3cache [--config PATH] [--check-config] [--version] [--help]

        A caching gateway for S3-compatible object storage, run as a FastCGI worker behind nginx.
        It takes its listen socket from systemd (socket activation) or from FCGI_LISTEN.

          -c, --config PATH   KEY=VALUE settings (default \(ConfigurationSource.defaultPath), skipped
                              when absent); environment variables override the file. SIGHUP reads
                              it again and applies bucket rules, credentials, TTLs and the log level.
          -t, --check-config  validate the configuration and exit: 0 when usable, 78 with the reason
          -V, --version       print the version
          -h, --help          print this help

        Exit status 78 means the configuration is invalid; the message names the variable.
        """
}
