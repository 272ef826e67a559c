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
        /// `keys new --grant GRANTS`: print a new key line.
        case newKey(grants: String)
        /// `presign [--expires S] [--method M] [--region R] --key-id ID URL`.
        case presign(Presign)
    }

    public struct Presign: Sendable, Equatable {
        public var url = ""
        public var keyID = ""
        public var method = "GET"
        public var expires: Int64 = 3600
        public var region = "us-east-1"
    }

    public var action: Action = .serve
    /// `--config PATH`; nil means the default path, which may be absent.
    public var configPath: String?

    public struct UsageError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(parsing arguments: [String]) throws(UsageError) {
        var remaining = arguments[...]
        func value(_ option: String) throws(UsageError) -> String {
            guard let value = remaining.popFirst(), !value.isEmpty else { throw UsageError(description: "\(option) needs a value") }
            return value
        }
        switch remaining.first {
        case "keys":
            remaining.removeFirst()
            guard remaining.popFirst() == "new" else { throw UsageError(description: "keys: the only command is: keys new --grant GRANTS") }
            var grants: String?
            while let argument = remaining.popFirst() {
                switch argument {
                case "--grant": grants = try value(argument)
                case "--config", "-c": configPath = try value(argument)
                default: throw UsageError(description: "unknown argument \(argument)")
                }
            }
            guard let grants else { throw UsageError(description: "keys new needs --grant bucket:level,...") }
            action = .newKey(grants: grants)
            return
        case "presign":
            remaining.removeFirst()
            var presign = Presign()
            while let argument = remaining.popFirst() {
                switch argument {
                case "--key-id": presign.keyID = try value(argument)
                case "--method": presign.method = try value(argument).uppercased()
                case "--region": presign.region = try value(argument)
                case "--config", "-c": configPath = try value(argument)
                case "--expires":
                    guard let seconds = Int64(try value(argument)) else { throw UsageError(description: "--expires needs seconds") }
                    presign.expires = seconds
                case _ where !argument.hasPrefix("-") && presign.url.isEmpty: presign.url = argument
                default: throw UsageError(description: "unknown argument \(argument)")
                }
            }
            guard !presign.keyID.isEmpty, !presign.url.isEmpty else {
                throw UsageError(description: "presign needs --key-id ID and a URL")
            }
            guard ["GET", "PUT", "HEAD", "DELETE"].contains(presign.method) else {
                throw UsageError(description: "--method must be GET, PUT, HEAD or DELETE")
            }
            action = .presign(presign)
            return
        default:
            break
        }
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
               s3cache keys new --grant BUCKET:LEVEL,...
               s3cache presign [--expires SECONDS] [--method GET|PUT|HEAD|DELETE] [--region R]
                               --key-id ID URL

        A caching gateway for S3-compatible object storage, run as a FastCGI worker behind nginx.
        It takes its listen socket from systemd (socket activation) or from FCGI_LISTEN.

          -c, --config PATH   KEY=VALUE settings (default \(ConfigurationSource.defaultPath), skipped
                              when absent); environment variables override the file. SIGHUP reads
                              it again and applies bucket rules, credentials, TTLs and the log level.
          -t, --check-config  validate the configuration and exit: 0 when usable, 78 with the reason
          -V, --version       print the version
          -h, --help          print this help

        keys new prints a new gateway key line (ACCESS_KEY_ID SECRET GRANTS) for ACCESS_KEYS_FILE
        (default /etc/s3cache/keys), from the kernel's random source. presign prints a presigned URL
        (AWS Signature Version 4, default 3600 s, at most 7 days) for a key in that file.

        Exit status 78 means the configuration is invalid; the message names the variable.
        """
}
