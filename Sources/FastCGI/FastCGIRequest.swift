#if canImport(Glibc)
import Glibc
#endif
import CFastCGI

/// The streams of one FastCGI connection slot: one per worker thread, reused for every request it accepts.
///
/// `FCGX_Request` is a C struct with raw pointers; it is owned here, never shared between
/// threads, and freed in `deinit`.
public final class FastCGIRequest {
    private var request = FCGX_Request()
    private var outputFailed = false
    private var aborted = false
    /// Bodies from this size on bypass libfcgi's 8 KiB buffer (`RecordWriter`).
    static let directWriteThreshold = 16 * 1024

    /// Prepares a request slot for connections handed to it with `adopt(connection:)`.
    ///
    /// libfcgi gets no listen socket (-1): the pool accepts connections itself, so that it can
    /// stop accepting on shutdown. When a kept connection fails, `FCGX_Accept_r` then returns
    /// an error instead of blocking in its own `accept()`.
    public init() {
        FCGX_InitRequest(&request, -1, 0)
    }

    deinit {
        FCGX_Free(&request, 1)
    }

    /// The connection requests are read from, or -1 when none is open.
    ///
    /// `ipcFd` and `keepConnection` are below libfcgi's "don't use" line in `fcgiapp.h`; the
    /// pool needs both to own accepting, and they have kept their meaning since libfcgi 2.4.0.
    public var connection: Int32 { request.ipcFd }

    /// Makes `fd`, a freshly accepted connection, the one the next request is read from.
    public func adopt(connection fd: Int32) {
        precondition(request.ipcFd < 0, "adopting a connection while another is open")
        request.ipcFd = fd
        // FCGX_Accept_r first finishes the previous request and closes its connection unless it
        // was kept; the new connection must survive that.
        request.keepConnection = 1
    }

    /// Reads the next request on the current connection (blocking until its parameters arrived).
    ///
    /// Returns false when the connection ended or broke instead; it is closed then.
    public func readNext() -> Bool {
        outputFailed = false
        aborted = false
        return FCGX_Accept_r(&request) >= 0
    }

    /// Flushes the response and ends the request; the connection stays open if nginx asked to keep it.
    ///
    /// Not for an aborted request: that one ends with `closeConnection()`.
    public func finish() {
        precondition(!aborted, "finishing an aborted request")
        FCGX_Finish_r(&request)
    }

    /// Marks the response as broken: nothing more is written, and the request must end with
    /// `closeConnection()` instead of `finish()`.
    ///
    /// For a response whose head went out but whose body cannot be completed (S3 broke off
    /// mid-body): finishing normally would send END_REQUEST, and nginx would pass the short
    /// body on as if it were whole (chunked) or leave its client waiting for the missing bytes
    /// (Content-Length). A connection that closes before END_REQUEST makes nginx abort the
    /// client's connection at once (../shared/NOTES.md). The close itself is left to the pool,
    /// after the handler returns: until then the request's parameters stay readable (for the
    /// access log), and `FCGX_Free` releases them with the streams, whose buffered output is
    /// dropped unsent.
    public func abort() {
        aborted = true
    }

    /// Whether `abort()` was called for the current request.
    public var isAborted: Bool { aborted }

    /// Closes the current connection, if any (nginx retries a request it sent on a kept
    /// connection that closes before answering).
    public func closeConnection() {
        FCGX_Free(&request, 1)
    }

    /// A FastCGI parameter (`REQUEST_METHOD`, `HTTP_RANGE`, …) of the current request.
    ///
    /// Bytes that are not valid UTF-8 come back as `%XX` (see `ParameterText`).
    public func param(_ name: String) -> String? {
        guard let value = FCGX_GetParam(name, request.envp) else { return nil }
        let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(value).assumingMemoryBound(to: UInt8.self), count: strlen(value))
        return ParameterText.decode(bytes)
    }

    /// A FastCGI parameter's bytes as nginx sent them (up to the first NUL).
    public func rawParam(_ name: String) -> [UInt8]? {
        guard let value = FCGX_GetParam(name, request.envp) else { return nil }
        return Array(UnsafeBufferPointer(start: UnsafeRawPointer(value).assumingMemoryBound(to: UInt8.self), count: strlen(value)))
    }

    /// Reads up to `buffer.count` bytes of the request body; 0 means the body ended (or the client went away).
    public func readBody(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let count = FCGX_GetStr(base.assumingMemoryBound(to: CChar.self), Int32(clamping: buffer.count), request.in)
        return max(0, Int(count))
    }

    /// Whether the client's side of the connection broke while we were writing.
    public var clientGone: Bool { outputFailed }

    /// Writes response bytes (CGI headers first, then the body).
    ///
    /// Throws once nginx has gone away, so that a long transfer stops instead of writing into the void.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(FastCGIError) {
        guard !outputFailed, !aborted else { throw .clientGone }
        var offset = 0
        if bytes.count >= Self.directWriteThreshold {
            // libfcgi's buffer goes first, so the records stay in order.
            offset = bytes.count
            try flush()
            do {
                try RecordWriter.writeStandardOutput(
                    UnsafeRawBufferPointer(rebasing: bytes[..<offset]), requestID: request.requestId, to: request.ipcFd)
            } catch {
                outputFailed = true
                throw .clientGone
            }
        }
        while offset < bytes.count {
            let chunk = Int32(clamping: bytes.count - offset)
            let written = FCGX_PutStr(
                bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: CChar.self), chunk, request.out)
            if written < 0 {
                outputFailed = true
                throw .clientGone
            }
            offset += Int(written)
        }
    }

    public func write(_ text: String) throws(FastCGIError) {
        var text = text
        let written = text.withUTF8 { bytes in
            Result { () throws(FastCGIError) in try write(UnsafeRawBufferPointer(bytes)) }
        }
        try written.get()
    }

    /// Pushes buffered output to nginx now (libfcgi otherwise sends in 8 KiB records).
    public func flush() throws(FastCGIError) {
        guard !outputFailed, !aborted else { throw .clientGone }
        if FCGX_FFlush(request.out) < 0 {
            outputFailed = true
            throw .clientGone
        }
    }
}

/// Why writing to nginx failed.
public enum FastCGIError: Error, Sendable, CustomStringConvertible {
    /// nginx closed the connection (the client went away or nginx timed out).
    case clientGone

    public var description: String { "the web server closed the connection" }
}
