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
///
/// The one `EINTR` policy of the worker: an interrupted call is simply made again. (Waits that
/// a signal must end, like the worker pool's, call the kernel themselves.)
@discardableResult
public func systemCall(_ operation: @autoclosure () -> String, _ call: () -> Int32) throws(SystemError) -> Int32 {
    while true {
        let result = call()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemError(operation(), errno: code)
    }
}

/// Writes all of `bytes` to `fd`, resuming after partial writes and `EINTR`.
public func writeAll(_ bytes: UnsafeRawBufferPointer, to fd: Int32, operation: @autoclosure () -> String) throws(SystemError) {
    var offset = 0
    while offset < bytes.count {
        let written = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if written < 0 {
            if Glibc.errno == EINTR { continue }
            throw SystemError(operation(), errno: Glibc.errno)
        }
        offset += written
    }
}
