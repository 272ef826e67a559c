#if canImport(Glibc)
import Glibc
#endif

/// Where the settings come from: the configuration file (`--config PATH`, default
/// `/etc/s3cache/s3cache.conf`) overlaid by the process environment, which wins.
///
/// Read at startup, by `--check-config`, and again on every SIGHUP, so all three see the same
/// merged values.
public struct ConfigurationSource: Sendable {
    public static let defaultPath = "/etc/s3cache/s3cache.conf"

    /// The file to read; nil reads the environment alone.
    public var path: String?
    /// Whether a missing file is an error (it was named with `--config`) or simply skipped
    /// (the default path on a machine configured through the environment).
    public var pathIsRequired: Bool
    public var environment: [String: String]

    /// Largest configuration file read; anything bigger is not a configuration file.
    static let maxFileSize = 1 << 20

    public init(path: String?, pathIsRequired: Bool, environment: [String: String]) {
        self.path = path
        self.pathIsRequired = pathIsRequired
        self.environment = environment
    }

    /// The merged settings, parsed and checked, with the gateway keys they name.
    public func load() throws(ConfigurationError) -> Configuration {
        var configuration = try Configuration.load(from: values())
        configuration.accessKeys = try AccessKeys.load(
            path: configuration.accessKeysFile, required: configuration.accessKeysFileRequired)
        return configuration
    }

    /// The file's `KEY=VALUE` pairs with the environment's on top.
    func values() throws(ConfigurationError) -> [String: String] {
        guard let path else { return environment }
        guard let text = try Self.read(path, required: pathIsRequired) else { return environment }
        return try ConfigurationFile.parse(text, path: path).merging(environment) { _, fromEnvironment in fromEnvironment }
    }

    /// The file's contents; nil when it does not exist and is not required.
    private static func read(_ path: String, required: Bool) throws(ConfigurationError) -> String? {
        do {
            return try TextFile.read(path, limit: maxFileSize, required: required)
        } catch {
            throw ConfigurationError(file: path, reason: error.reason)
        }
    }
}

/// A small UTF-8 text file read whole (configuration, keys), bounded in size.
enum TextFile {
    struct Failure: Error {
        var reason: String
    }

    /// The contents; nil when the file does not exist and is not `required`.
    static func read(_ path: String, limit: Int, required: Bool) throws(Failure) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT && !required { return nil }
            throw Failure(reason: "cannot open: \(String(cString: strerror(code)))")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw Failure(reason: "cannot read: \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            bytes += buffer[..<count]
            guard bytes.count <= limit else { throw Failure(reason: "larger than \(limit) bytes") }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw Failure(reason: "not valid UTF-8") }
        return text
    }

    /// As `read(_:limit:required:)`, a failure reported against the variable that names the file.
    static func read(_ path: String, limit: Int, required: Bool, variable: String) throws(ConfigurationError) -> String? {
        do {
            return try read(path, limit: limit, required: required)
        } catch {
            throw ConfigurationError(variable: variable, value: path, reason: error.reason)
        }
    }
}

/// The `KEY=VALUE` format shared with systemd's `EnvironmentFile=`: one assignment per line,
/// `#` or `;` comments, blank lines, an optional `export `, values optionally in single or
/// double quotes.
enum ConfigurationFile {
    static func parse(_ text: String, path: String) throws(ConfigurationError) -> [String: String] {
        var values: [String: String] = [:]
        // "\r\n" is one Character, not "\n": a file saved with CRLF line ends would otherwise
        // be one line, every later assignment swallowed into the first value.
        let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
        for (index, rawLine) in lines.enumerated() {
            var line = rawLine.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst("export ".count)).trimmingWhitespace() }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigurationError(file: path, line: index + 1, reason: "expected KEY=VALUE")
            }
            let key = line[..<equals].trimmingWhitespace()
            guard isValidKey(key) else {
                throw ConfigurationError(file: path, line: index + 1, reason: "\"\(key)\" is not a variable name")
            }
            values[key] = try unquote(line[line.index(after: equals)...].trimmingWhitespace(), path: path, line: index + 1)
        }
        return values
    }

    private static func isValidKey(_ key: String) -> Bool {
        guard let first = key.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return key.utf8.allSatisfy { byte in
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_")
        }
    }

    private static func unquote(_ value: String, path: String, line: Int) throws(ConfigurationError) -> String {
        guard let quote = value.first, quote == "\"" || quote == "'" else { return value }
        guard value.count >= 2, value.last == quote else {
            throw ConfigurationError(file: path, line: line, reason: "unterminated \(quote) quote")
        }
        return String(value.dropFirst().dropLast())
    }
}

extension ConfigurationError {
    /// A configuration file that cannot be used as a whole (or one of its lines).
    init(file: String, line: Int? = nil, reason: String) {
        self.init(variable: "--config", value: line.map { "\(file):\($0)" } ?? file, reason: reason)
    }
}
