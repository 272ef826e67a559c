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
    text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
}

/// Version and usage text.
public enum S3CacheVersion {
    public static let current = "0.1.0"

    public static let usage = """
        Usage: s3cache [--version] [--help]

        A caching gateway for S3-compatible object storage, run as a FastCGI worker behind nginx.
        It takes its listen socket from systemd (socket activation) or from FCGI_LISTEN, and all
        settings from the environment; see /etc/default/s3cache or the README for the variables.
        Exit status 78 means the configuration is invalid; the message names the variable.
        """
}
