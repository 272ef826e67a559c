#if canImport(Glibc)
import Glibc
#endif
import CFastCGI
import Platform

/// The streams of one FastCGI request slot: one per worker thread, reused for every request it
/// serves, on whichever connection the request arrived.
///
/// `FCGX_Request` is a C struct with raw pointers; it is owned here, never shared between
/// threads, and freed in `deinit`.
public final class FastCGIRequest {
    /// libfcgi keeps pointers to the request (its streams point back to it), so it lives at one
    /// address for the slot's whole life: allocated here, never moved, freed in `deinit`.
    private let request: UnsafeMutablePointer<FCGX_Request>
    private var outputFailed = false
    private var aborted = false
    /// Bodies from this size on bypass libfcgi's 8 KiB buffer (`RecordWriter`).
    static let directWriteThreshold = 16 * 1024

    /// Prepares a request slot for connections handed to it with `adopt(connection:isNew:)`.
    ///
    /// libfcgi gets no listen socket (-1): the pool accepts connections itself, so that it can
    /// stop accepting on shutdown. When a kept connection fails, `FCGX_Accept_r` then returns
    /// an error instead of blocking in its own `accept()`.
    ///
    /// - Parameter restingTimeout: how long, in seconds, a read on a connection may wait for
    ///   nginx's next bytes when nothing asks for another limit (`readBody(idleTimeout:)`
    ///   does): set once on each new connection and kept between requests, so that a request
    ///   costs no `setsockopt`. It bounds a request that arrives half (nginx sends each one
    ///   whole) and the end of a bodiless request's input.
    public init(restingTimeout: Double = 30) {
        self.restingTimeout = restingTimeout
        request = .allocate(capacity: 1)
        request.initialize(to: FCGX_Request())
        FCGX_InitRequest(request, -1, 0)
    }

    deinit {
        FCGX_Free(request, 1)
        request.deinitialize(count: 1)
        request.deallocate()
    }

    /// The connection requests are read from, or -1 when none is open.
    ///
    /// `ipcFd` and `keepConnection` are below libfcgi's "don't use" line in `fcgiapp.h`; the
    /// pool needs both to own accepting, and they have kept their meaning since libfcgi 2.4.0.
    public var connection: Int32 { request.pointee.ipcFd }

    /// Makes `fd`, a connection with a request waiting, the one the next request is read from:
    /// a new connection (`isNew`), or one parked by `detach`, which left it at the resting
    /// timeout.
    public func adopt(connection fd: Int32, isNew: Bool) {
        precondition(request.pointee.ipcFd < 0, "adopting a connection while another is open")
        request.pointee.ipcFd = fd
        receiveTimeout = isNew ? 0 : restingTimeout
        setReceiveTimeout(restingTimeout)
        // FCGX_Accept_r first finishes the previous request and closes its connection unless it
        // was kept; the new connection must survive that.
        request.pointee.keepConnection = 1
    }

    /// Gives up the current connection without closing it, once its request is finished and
    /// nginx keeps it: the pool parks it until its next request, which any thread may serve.
    /// Returns the connection, or nil when there is none (nginx did not keep it).
    public func detach() -> Int32? {
        let fd = request.pointee.ipcFd
        guard fd >= 0 else { return nil }
        setReceiveTimeout(restingTimeout)  // what `adopt` assumes of a parked connection
        request.pointee.ipcFd = -1
        return fd
    }

    /// Reads the next request on the current connection (blocking until its parameters arrived).
    ///
    /// Returns false when the connection ended or broke instead; it is closed then.
    public func readNext() -> Bool {
        outputFailed = false
        aborted = false
        return FCGX_Accept_r(request) >= 0
    }

    /// Flushes the response and ends the request; the connection stays open if nginx asked to keep it.
    ///
    /// Not for an aborted request: that one ends with `closeConnection()`.
    public func finish() {
        precondition(!aborted, "finishing an aborted request")
        if request.pointee.keepConnection != 0 && !discardUnreadBody() {
            // What nginx still sends of this request would be read as the next one's start.
            request.pointee.keepConnection = 0
        }
        FCGX_Finish_r(request)
    }

    /// Reads what is left of the request body (a handler may answer without reading it: a 405,
    /// a 412 before an upload, a 503 past the upload bound), so that the connection is clean
    /// for the next request. True when the body's end was reached; false when more than a
    /// little is left or it does not all arrive within `discardTime` (the connection is then
    /// closed instead of kept).
    ///
    /// The limit is on the whole discard, not on each read: a client trickling its body a few
    /// bytes at a time would otherwise hold the thread, and its answer unsent, until 64 KiB
    /// had come (seconds at 10 KiB/s, while every thread did the same for other refused uploads).
    private func discardUnreadBody() -> Bool {
        guard let input = request.pointee.in else { return true }
        if FCGX_HasSeenEOF(input) != 0 { return true }
        // A request without a body (a GET, say) has only the input's end left, which nginx
        // sends with the parameters: it is read at the resting timeout, without a system call
        // to change it.
        guard declaresBody else { return readToEnd(input, before: .infinity) }
        // Anything else gets a moment, not the idle time an upload would, and waits on its
        // client: the answer (a refusal, say) goes out first, and the pool keeps threads for
        // other requests meanwhile.
        _ = FCGX_FFlush(request.pointee.out)
        setReceiveTimeout(Self.discardTime)
        return WorkerPool.blocking { readToEnd(input, before: monotonicSeconds() + Self.discardTime) }
    }

    /// Reads `input` to its end, at most 64 KiB of it, giving up at `deadline`; true when the
    /// end came cleanly.
    ///
    /// A byte at a time: `FCGX_GetStr` returns only once its whole buffer is filled, reading as
    /// often as it takes, so a trickle that never pauses for the receive timeout held a thread
    /// (and the refusal it had answered) for 8 KiB at a time (seconds at 10 KiB/s).
    /// `FCGX_GetChar` reads the socket only when libfcgi's buffer is empty.
    private func readToEnd(_ input: UnsafeMutablePointer<FCGX_Stream>, before deadline: Double) -> Bool {
        var discarded = 0
        while discarded <= 64 * 1024 {
            if FCGX_GetChar(input) < 0 { return FCGX_HasSeenEOF(input) != 0 && FCGX_GetError(input) == 0 }
            discarded += 1
            if deadline < .infinity && monotonicSeconds() >= deadline { return false }
        }
        return false
    }

    /// How long `finish` waits, in all, for the unread rest of a request body.
    static let discardTime = 0.05

    /// Whether the request may have a body: a length other than 0, or chunked (`CONTENT_LENGTH`
    /// is then empty, and `Transfer-Encoding` is passed on as `HTTP_TRANSFER_ENCODING`).
    private var declaresBody: Bool {
        if value(of: "HTTP_TRANSFER_ENCODING") != nil { return true }
        guard let length = value(of: "CONTENT_LENGTH") else { return false }
        return !(length.isEmpty || (length.count == 1 && length[0] == UInt8(ascii: "0")))
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
        FCGX_Free(request, 1)
    }

    /// A FastCGI parameter (`REQUEST_METHOD`, `HTTP_RANGE`, …) of the current request.
    ///
    /// Bytes that are not valid UTF-8 come back as `%XX` (see `ParameterText`).
    public func param(_ name: StaticString) -> String? {
        value(of: name).map(ParameterText.decode)
    }

    /// A FastCGI parameter's bytes as nginx sent them (up to the first NUL).
    public func rawParam(_ name: StaticString) -> [UInt8]? {
        value(of: name).map { Array($0) }
    }

    /// A parameter whose name is known only at run time (the headers a SigV4 signature names).
    public func param(named name: String) -> String? {
        var name = name
        return name.withUTF8 { wanted -> String? in
            guard var entry = request.pointee.envp else { return nil }
            while let pair = entry.pointee {
                if strncmp(pair, UnsafeRawPointer(wanted.baseAddress!).assumingMemoryBound(to: CChar.self), wanted.count) == 0
                    && pair[wanted.count] == CChar(UInt8(ascii: "="))
                {
                    let start = UnsafeRawPointer(pair + wanted.count + 1).assumingMemoryBound(to: UInt8.self)
                    return ParameterText.decode(UnsafeBufferPointer(start: start, count: strlen(pair + wanted.count + 1)))
                }
                entry += 1
            }
            return nil
        }
    }

    /// The value of `name` in libfcgi's `NAME=value` list, found as `FCGX_GetParam` does but
    /// with the name's length known: a request looks up a dozen names, most of them absent,
    /// and converting each to a C string and measuring it cost more than the search.
    private func value(of name: StaticString) -> UnsafeBufferPointer<UInt8>? {
        precondition(name.hasPointerRepresentation, "parameter names are string literals")
        guard var entry = request.pointee.envp else { return nil }
        let length = name.utf8CodeUnitCount
        let wanted = UnsafeRawPointer(name.utf8Start).assumingMemoryBound(to: CChar.self)
        while let pair = entry.pointee {
            // strncmp stops at the entry's NUL, so a shorter entry is never read past its end.
            if strncmp(pair, wanted, length) == 0 && pair[length] == CChar(UInt8(ascii: "=")) {
                let start = UnsafeRawPointer(pair + length + 1)
                return UnsafeBufferPointer(start: start.assumingMemoryBound(to: UInt8.self), count: strlen(pair + length + 1))
            }
            entry += 1
        }
        return nil
    }

    /// Reads up to `buffer.count` bytes of the request body; 0 means the body ended (or the
    /// client went away).
    ///
    /// Throws `.requestBodyStalled` when no byte arrived for `idleTimeout` seconds (a receive
    /// timeout on the connection, which libfcgi's blocking reads otherwise never have). The
    /// connection is then closed once the response is finished: what nginx sends on it next
    /// is unknown.
    public func readBody(into buffer: UnsafeMutableRawBufferPointer, idleTimeout: Double) throws(FastCGIError) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        setReceiveTimeout(idleTimeout)
        let count = FCGX_GetStr(base.assumingMemoryBound(to: CChar.self), Int32(clamping: buffer.count), request.pointee.in)
        if count <= 0 {
            let error = FCGX_GetError(request.pointee.in)
            if error == EAGAIN || error == EWOULDBLOCK {
                request.pointee.keepConnection = 0
                throw .requestBodyStalled(seconds: idleTimeout)
            }
        }
        return max(0, Int(count))
    }

    /// The receive timeout set on the current connection, in seconds; 0 for none.
    private var receiveTimeout: Double = 0
    private let restingTimeout: Double

    private func setReceiveTimeout(_ seconds: Double) {
        guard seconds != receiveTimeout, request.pointee.ipcFd >= 0 else { return }
        let clamped = max(0, min(seconds, 86_400))
        var value = timeval(tv_sec: Int(clamped), tv_usec: Int((clamped - clamped.rounded(.down)) * 1e6))
        if setsockopt(request.pointee.ipcFd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size)) == 0 {
            receiveTimeout = seconds
        }
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
                    UnsafeRawBufferPointer(rebasing: bytes[..<offset]), requestID: request.pointee.requestId, to: request.pointee.ipcFd)
            } catch {
                outputFailed = true
                throw .clientGone
            }
        }
        while offset < bytes.count {
            let chunk = Int32(clamping: bytes.count - offset)
            let written = FCGX_PutStr(
                bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: CChar.self), chunk, request.pointee.out)
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

    /// Whether nginx closed the connection (its client went away), waiting up to `seconds` for
    /// it after pushing out what is buffered. For a response about to cost a fetch that only a
    /// client still reading would use.
    public func peerClosed(within seconds: Double) -> Bool {
        guard (try? flush()) != nil else { return true }
        let fd = request.pointee.ipcFd
        guard fd >= 0 else { return true }
        // POLLRDHUP (0x2000, a GNU extension the Glibc module does not export): nginx shut the
        // connection down; it sends nothing more on it while a response is being written.
        let peerShutdown: Int16 = 0x2000
        var entry = pollfd(fd: fd, events: peerShutdown, revents: 0)
        let milliseconds = Int32(max(0, min(seconds, 60)) * 1000)
        while true {
            let ready = poll(&entry, 1, milliseconds)
            if ready < 0, errno == EINTR { continue }
            return ready > 0 && entry.revents & (peerShutdown | Int16(POLLHUP) | Int16(POLLERR)) != 0
        }
    }

    /// Pushes buffered output to nginx now (libfcgi otherwise sends in 8 KiB records).
    public func flush() throws(FastCGIError) {
        guard !outputFailed, !aborted else { throw .clientGone }
        if FCGX_FFlush(request.pointee.out) < 0 {
            outputFailed = true
            throw .clientGone
        }
    }
}

/// Why writing to nginx failed.
public enum FastCGIError: Error, Sendable, CustomStringConvertible, Equatable {
    /// nginx closed the connection (the client went away or nginx timed out).
    case clientGone
    /// No byte of the request body arrived for this many seconds.
    case requestBodyStalled(seconds: Double)

    public var description: String {
        switch self {
        case .clientGone: return "the web server closed the connection"
        case let .requestBodyStalled(seconds): return "no byte of the request body arrived for \(seconds) s"
        }
    }
}
