#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call, with the errno it left and what we were doing.
public struct SystemError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The operation that failed, e.g. `bind(/run/s3cache/s3cache.sock)`.
    public var operation: String
    public var errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        "\(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Runs a C call that returns -1 and sets errno on failure, and turns that into a thrown error.
@discardableResult
func systemCall(_ operation: @autoclosure () -> String, _ call: () -> Int32) throws(SystemError) -> Int32 {
    while true {
        let result = call()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemError(operation(), errno: code)
    }
}
