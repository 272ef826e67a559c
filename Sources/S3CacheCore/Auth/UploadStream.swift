import S3Client

/// The bytes of a PUT body, in order, as they are streamed on to S3.
protocol BodySource: AnyObject {
    /// Up to `buffer.count` bytes; 0 at the end of the body.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// The request body as nginx passes it.
final class ExchangeBody: BodySource {
    private let exchange: any Exchange
    private let idleTimeout: Double

    init(_ exchange: any Exchange, idleTimeout: Double) {
        self.exchange = exchange
        self.idleTimeout = idleTimeout
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try exchange.readBody(into: buffer, idleTimeout: idleTimeout)
    }
}

/// The errors an upload's own encoding and checks raise, in S3's terms.
enum UploadStreamError {
    static func malformed(_ message: String) -> HTTPError {
        HTTPError(status: 400, code: "bad_request", message: message, s3Code: "InvalidRequest")
    }

    static let incomplete = HTTPError(
        status: 400, code: "incomplete_body", message: "the request body ended before its declared length",
        s3Code: "IncompleteBody")

    static let chunkSignature = HTTPError(
        status: 403, code: "signature_mismatch", message: "a chunk signature of the aws-chunked body does not match",
        s3Code: "SignatureDoesNotMatch")
}

/// Decodes an `aws-chunked` body (what SDKs send with `STREAMING-…` payload modes) into the
/// object's bytes, checking each chunk's signature when the chunks are signed and collecting
/// the trailer (`x-amz-checksum-crc32:…`) when one follows:
///
///     <hex size>[;chunk-signature=<64 hex>]\r\n<data>\r\n … 0[;chunk-signature=…]\r\n[<trailer lines>]\r\n
///
/// Bounded: header and trailer lines at most 4 KiB, at most 16 trailer lines; only the bytes
/// in flight are held, never a whole chunk.
final class AWSChunkedBody: BodySource {
    private let raw: any BodySource
    private let signing: ChunkSigning?
    private let expectsTrailer: Bool
    private var previousSignature: String
    /// Raw bytes read ahead of what has been decoded: `buffer[position..<filled]`.
    private var buffer = [UInt8](repeating: 0, count: AWSChunkedBody.readSize)
    private var filled = 0
    private var position = 0
    private var rawEnded = false
    /// Data bytes left in the current chunk; nil between chunks.
    private var remainingInChunk: Int?
    private var chunkSignature = ""
    private var chunkDigest: StreamingDigest?
    private(set) var finished = false
    /// Trailer fields, names lower-cased (`x-amz-checksum-crc32` → base64 value).
    private(set) var trailer: [String: String] = [:]

    static let maxLine = 4096
    static let maxTrailerLines = 16
    static let readSize = 64 * 1024

    init(_ raw: any BodySource, signing: ChunkSigning?, trailer: Bool) {
        self.raw = raw
        self.signing = signing
        self.expectsTrailer = trailer
        previousSignature = signing?.seedSignature ?? ""
    }

    func read(into output: UnsafeMutableRawBufferPointer) throws -> Int {
        while !finished {
            if let remaining = remainingInChunk {
                if remaining == 0 {
                    try expect("\r\n")
                    try endChunk()
                    continue
                }
                guard try fill() else { throw UploadStreamError.incomplete }
                let count = min(remaining, output.count, filled - position)
                buffer.withUnsafeBytes { bytes in
                    let piece = UnsafeRawBufferPointer(rebasing: bytes[position..<(position + count)])
                    output.copyMemory(from: piece)
                    chunkDigest?.update(piece)
                }
                position += count
                remainingInChunk = remaining - count
                return count
            }
            try beginChunk()
        }
        // After the last chunk and its trailer, nothing may follow.
        guard try !fill() else { throw UploadStreamError.malformed("data after the end of the aws-chunked body") }
        return 0
    }

    /// `<hex size>[;chunk-signature=…]`.
    private func beginChunk() throws {
        let line = try readLine()
        let parts = line.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)
        let sizeText = parts[0]
        guard !sizeText.isEmpty, sizeText.utf8.count <= 8, let size = Int(sizeText, radix: 16), size >= 0 else {
            throw UploadStreamError.malformed("an aws-chunked chunk size is not hexadecimal")
        }
        if signing != nil {
            guard parts.count == 2, parts[1].hasPrefix("chunk-signature="),
                  RequestAuthenticator.isHexDigest(String(parts[1].dropFirst("chunk-signature=".count)))
            else { throw UploadStreamError.malformed("an aws-chunked chunk has no chunk-signature") }
            chunkSignature = String(parts[1].dropFirst("chunk-signature=".count))
            chunkDigest = StreamingDigest(.sha256)
        }
        if size == 0 {
            try endChunk()
            try readTrailer()
            finished = true
        } else {
            remainingInChunk = size
        }
    }

    /// Checks the signature of the chunk just read, which chains to the next.
    private func endChunk() throws {
        remainingInChunk = nil
        guard let signing, let digest = chunkDigest else { return }
        chunkDigest = nil
        let expected = SigV4Signer.chunkSignature(
            key: signing.key, timestamp: signing.timestamp, scope: signing.scope, previousSignature: previousSignature,
            chunkHash: StreamingDigest.hex(digest.finish()))
        guard ConstantTime.equal(chunkSignature, expected) else { throw UploadStreamError.chunkSignature }
        previousSignature = expected
    }

    /// Trailer lines up to the empty line that ends the body (just the empty line without one).
    private func readTrailer() throws {
        var lines: [String] = []
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            guard expectsTrailer, lines.count < Self.maxTrailerLines, let colon = line.firstIndex(of: ":") else {
                throw UploadStreamError.malformed("unexpected trailer in the aws-chunked body")
            }
            lines.append(line)
            let name = line[..<colon].trimmingWhitespace().lowercased()
            trailer[name] = line[line.index(after: colon)...].trimmingWhitespace()
        }
        guard let signing, expectsTrailer else { return }
        // The signed trailer: its fields (without the signature) each end in "\n".
        guard let signature = trailer.removeValue(forKey: "x-amz-trailer-signature") else {
            throw UploadStreamError.malformed("the signed trailer has no x-amz-trailer-signature")
        }
        let fields = lines.filter { !$0.lowercased().hasPrefix("x-amz-trailer-signature:") }.map { $0 + "\n" }.joined()
        let expected = SigV4Signer.trailerSignature(
            key: signing.key, timestamp: signing.timestamp, scope: signing.scope, previousSignature: previousSignature,
            trailerHash: SHA256.hexDigest(fields))
        guard ConstantTime.equal(signature, expected) else { throw UploadStreamError.chunkSignature }
    }

    // MARK: - Raw input

    /// Whether unread raw bytes are available, reading more when none are.
    private func fill() throws -> Bool {
        if position < filled { return true }
        guard !rawEnded else { return false }
        position = 0
        filled = try buffer.withUnsafeMutableBytes { try raw.read(into: $0) }
        if filled == 0 { rawEnded = true }
        return filled > 0
    }

    private func readLine() throws -> String {
        var line: [UInt8] = []
        while true {
            guard try fill() else { throw UploadStreamError.incomplete }
            let byte = buffer[position]
            position += 1
            if byte == UInt8(ascii: "\n") {
                guard line.last == UInt8(ascii: "\r") else { throw UploadStreamError.malformed("an aws-chunked line does not end in CRLF") }
                line.removeLast()
                guard let text = String(validating: line, as: UTF8.self) else {
                    throw UploadStreamError.malformed("an aws-chunked line is not UTF-8")
                }
                return text
            }
            line.append(byte)
            guard line.count <= Self.maxLine else { throw UploadStreamError.malformed("an aws-chunked line is too long") }
        }
    }

    private func expect(_ text: StaticString) throws {
        for byte in UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount) {
            guard try fill() else { throw UploadStreamError.incomplete }
            guard buffer[position] == byte else { throw UploadStreamError.malformed("an aws-chunked chunk does not end in CRLF") }
            position += 1
        }
    }
}

/// Passes a body of known length on, checking at its end what the client declared about it: the
/// signed SHA-256 (`x-amz-content-sha256`) and S3's additional checksums (`x-amz-checksum-*`, in
/// a header or in the trailer of an `aws-chunked` body). The body's last byte is held back until
/// every check passed: a body that fails one never reaches S3 whole, so S3 stores nothing.
final class VerifiedBody: BodySource {
    private let source: any BodySource
    private let length: Int64
    private var passed: Int64 = 0
    private var held: UInt8?
    private var done = false
    private let sha256: (digest: StreamingDigest, expected: String)?
    private var checksums: [(checksum: PayloadChecksum, expected: () -> String?)]

    /// - Parameters:
    ///   - sha256: the hex digest the client signed, if any.
    ///   - checksums: each algorithm with where its expected value comes from (a header, or the
    ///     trailer, known only at the end).
    init(
        _ source: any BodySource, length: Int64, sha256: String?,
        checksums: [(algorithm: PayloadChecksum.Algorithm, expected: () -> String?)]
    ) {
        self.source = source
        self.length = length
        self.sha256 = sha256.map { (StreamingDigest(.sha256), $0) }
        self.checksums = checksums.map { (PayloadChecksum($0.algorithm), $0.expected) }
    }

    /// Whether anything is checked at all (else the source can be used as it is).
    var checksAnything: Bool { sha256 != nil || !checksums.isEmpty }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if done { return 0 }
        if passed == length - 1, let byte = held {
            try finish()
            buffer[0] = byte
            held = nil
            passed += 1
            done = true
            return 1
        }
        guard length > 0, buffer.count > 0 else {
            try finish()
            done = true
            return 0
        }
        let room = Int(min(Int64(buffer.count), length - passed))
        let count = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<room]))
        guard count > 0 else { throw UploadStreamError.incomplete }
        let piece = UnsafeRawBufferPointer(rebasing: buffer[..<count])
        sha256?.digest.update(piece)
        for (checksum, _) in checksums { checksum.update(piece) }
        if passed + Int64(count) == length {
            // The last byte waits for `finish`; the rest goes now.
            held = buffer[count - 1]
            passed += Int64(count - 1)
            if count == 1 { return try read(into: buffer) }
            return count - 1
        }
        passed += Int64(count)
        return count
    }

    /// Reads the source to its end (an `aws-chunked` trailer comes after the last byte) and
    /// checks every declared digest. For an empty body, call before the upload starts.
    func finish() throws {
        var probe = [UInt8](repeating: 0, count: 1)
        let extra = try probe.withUnsafeMutableBytes { try source.read(into: $0) }
        guard extra == 0 else {
            throw HTTPError(
                status: 400, code: "bad_request", message: "the request body is longer than its declared length",
                s3Code: "InvalidRequest")
        }
        if let (digest, expected) = sha256 {
            guard StreamingDigest.hex(digest.finish()) == expected else {
                throw HTTPError(
                    status: 400, code: "payload_hash_mismatch",
                    message: "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    s3Code: "XAmzContentSHA256Mismatch")
            }
        }
        for (checksum, expected) in checksums {
            guard let declared = expected() else {
                throw HTTPError(
                    status: 400, code: "bad_request", message: "the \(checksum.algorithm.headerName) trailer is missing",
                    s3Code: "InvalidRequest")
            }
            guard checksum.finish() == declared else {
                throw HTTPError(
                    status: 400, code: "bad_digest",
                    message: "The \(checksum.algorithm.rawValue.uppercased()) you specified did not match the calculated checksum.",
                    s3Code: "BadDigest")
            }
        }
    }
}
