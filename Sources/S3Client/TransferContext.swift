/// The state of one transfer, shared with libcurl's C callbacks through a raw pointer.
///
/// Callbacks run on the thread inside `curl_easy_perform`, so there is no concurrency;
/// they must not throw across C frames, so every Swift error is caught here, kept in
/// `failure`, and the callback returns libcurl's abort value. The caller rethrows
/// `failure` once `curl_easy_perform` has returned.
final class TransferContext {
    /// Most bytes of an error body kept for `<Code>`/`<Message>`; the rest is read and dropped.
    static let errorBodyLimit = 64 * 1024
    /// Most bytes of response header lines accepted, all header blocks together.
    static let headerLimit = 64 * 1024

    private let onHead: ((S3ResponseHead) throws -> Void)?
    private let onBody: ((UnsafeRawBufferPointer) throws -> Void)?
    private let upload: ((UnsafeMutableRawBufferPointer) throws -> Int)?
    private let uploadLength: Int64

    /// Status of the current header block; 0 before any.
    private(set) var status = 0
    private(set) var headers: [(name: String, value: String)] = []
    /// True once the blank line ending a final (non-1xx) header block arrived.
    private(set) var headComplete = false
    /// True once `onHead` was called: from then on the transfer must not be retried.
    private(set) var headDelivered = false
    /// Up to `errorBodyLimit` bytes of a non-success body.
    private(set) var errorBody: [UInt8] = []
    private(set) var uploaded: Int64 = 0
    private var headerBytes = 0
    /// The first error a callback raised; it ends the transfer.
    private(set) var failure: (any Error)?

    /// Longest pause allowed once body bytes have moved; nil for none. Set by the
    /// connection from its read timeout before the transfer starts.
    var idleLimit: Duration?
    /// True when the transfer was stopped because no body byte moved for `idleLimit`.
    private(set) var stalled = false
    private var bytesMoved: Int64 = 0
    private var lastMove: ContinuousClock.Instant?

    init(
        onHead: ((S3ResponseHead) throws -> Void)? = nil,
        onBody: ((UnsafeRawBufferPointer) throws -> Void)? = nil,
        upload: ((UnsafeMutableRawBufferPointer) throws -> Int)? = nil,
        uploadLength: Int64 = 0
    ) {
        self.onHead = onHead
        self.onBody = onBody
        self.upload = upload
        self.uploadLength = uploadLength
    }

    var head: S3ResponseHead { S3ResponseHead(status: status, headers: headers) }

    /// 2xx, and 304 for conditional requests: the statuses whose body belongs to the caller.
    static func isSuccess(_ status: Int) -> Bool {
        (200..<300).contains(status) || status == 304
    }

    /// One header line, CRLF included. False stops the transfer.
    func receiveHeaderLine(_ line: UnsafeRawBufferPointer) -> Bool {
        guard failure == nil else { return false }
        headerBytes += line.count
        guard headerBytes <= Self.headerLimit else {
            return fail(S3Error.transport(message: "response headers exceed \(Self.headerLimit) bytes"))
        }
        var bytes = line[...]
        while let last = bytes.last, last == UInt8(ascii: "\r") || last == UInt8(ascii: "\n") { bytes = bytes.dropLast() }

        if bytes.starts(with: "HTTP/".utf8) {
            // A new status line: 100 Continue or a proxy's answer came before; start over.
            let fields = bytes.split(separator: UInt8(ascii: " "), maxSplits: 2)
            status = fields.count > 1 ? Int(String(decoding: fields[1], as: UTF8.self)) ?? 0 : 0
            headers = []
            headComplete = false
            return true
        }
        if bytes.isEmpty {
            guard status >= 200 else { return true }  // end of an interim 1xx block
            headComplete = true
            return deliverHeadIfNeeded()
        }
        if headComplete { return true }  // trailers: not part of the head we report
        if let first = bytes.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t"), !headers.isEmpty {
            // Obsolete line folding: continues the previous value.
            headers[headers.count - 1].value += " " + String(decoding: bytes, as: UTF8.self).trimmingASCIIWhitespace()
            return true
        }
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { return true }
        let name = String(decoding: bytes[..<colon], as: UTF8.self).trimmingASCIIWhitespace()
        let value = String(decoding: bytes[(colon + 1)...], as: UTF8.self).trimmingASCIIWhitespace()
        headers.append((name: name, value: value))
        return true
    }

    /// A piece of response body. False stops the transfer.
    func receiveBody(_ chunk: UnsafeRawBufferPointer) -> Bool {
        guard failure == nil else { return false }
        guard Self.isSuccess(status) else {
            let room = Self.errorBodyLimit - errorBody.count
            if room > 0 { errorBody.append(contentsOf: chunk.prefix(room)) }
            return true
        }
        guard deliverHeadIfNeeded() else { return false }
        do {
            try onBody?(chunk)
            return true
        } catch {
            return fail(error)
        }
    }

    /// Fills `buffer` with upload bytes: the count, 0 at the end, or `nil` to abort.
    func supplyBody(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard failure == nil, let upload else { return failure == nil ? 0 : nil }
        let remaining = uploadLength - uploaded
        guard remaining > 0 else { return 0 }
        let window = UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(min(Int64(buffer.count), remaining))])
        do {
            let count = try upload(window)
            guard count > 0 else {
                fail(S3Error.aborted(message: "request body ended after \(uploaded) of \(uploadLength) bytes"))
                return nil
            }
            guard count <= window.count else {
                fail(S3Error.aborted(message: "body callback reported \(count) bytes for a \(window.count)-byte buffer"))
                return nil
            }
            uploaded += Int64(count)
            return count
        } catch {
            fail(error)
            return nil
        }
    }

    /// libcurl's progress report (body bytes so far each way, at least once a second).
    /// False stops the transfer: no byte moved for `idleLimit` after some had.
    ///
    /// libcurl's own low-speed check averages over its last 5 seconds, so after a burst
    /// (a full socket buffer, a fast start) it notices a stall 5 s late; this clock starts
    /// at the last byte. Before the first body byte the low-speed check is exact and
    /// covers the silent server, and the connect timeout covers connecting.
    func progress(downloaded: Int64, uploaded: Int64) -> Bool {
        guard let idleLimit else { return true }
        let now = ContinuousClock.now
        if downloaded + uploaded != bytesMoved {
            bytesMoved = downloaded + uploaded
            lastMove = now
            return true
        }
        guard let lastMove, now - lastMove >= idleLimit else { return true }
        stalled = true
        return false
    }

    /// Whether libcurl may rewind the upload: only to the start, and only before any body
    /// byte was taken from the caller (a stale keep-alive connection found before sending).
    func canRewind(to offset: Int64) -> Bool {
        offset == 0 && uploaded == 0
    }

    private func deliverHeadIfNeeded() -> Bool {
        guard !headDelivered, Self.isSuccess(status), let onHead else { return true }
        headDelivered = true
        do {
            try onHead(head)
            return true
        } catch {
            return fail(error)
        }
    }

    @discardableResult
    private func fail(_ error: any Error) -> Bool {
        if failure == nil { failure = error }
        return false
    }
}
