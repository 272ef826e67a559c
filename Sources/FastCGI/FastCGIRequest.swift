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

    /// Prepares a request slot that accepts on `listenFD`.
    public init(listenFD: Int32) {
        FCGX_InitRequest(&request, listenFD, 0)
    }

    deinit {
        FCGX_Free(&request, 1)
    }

    /// Blocks until the next request arrives (on a kept connection or a new one).
    ///
    /// Returns false when the listen socket is unusable (closed during shutdown).
    public func accept() -> Bool {
        outputFailed = false
        return FCGX_Accept_r(&request) >= 0
    }

    /// Flushes the response and ends the request; the connection stays open if nginx asked to keep it.
    public func finish() {
        FCGX_Finish_r(&request)
    }

    /// A FastCGI parameter (`REQUEST_METHOD`, `HTTP_RANGE`, …) of the current request.
    ///
    /// Bytes that are not valid UTF-8 come back as `%XX` (see `ParameterText`).
    public func param(_ name: String) -> String? {
        guard let value = FCGX_GetParam(name, request.envp) else { return nil }
        let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(value).assumingMemoryBound(to: UInt8.self), count: strlen(value))
        return ParameterText.decode(bytes)
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
        guard !outputFailed else { throw .clientGone }
        var offset = 0
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
        guard !outputFailed else { throw .clientGone }
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
