import CZlib

/// Streaming gzip decompression with a hard limit on the output size.
///
/// Fed chunk by chunk as a request body arrives; the limit is checked as bytes are
/// produced, so a few kilobytes that would inflate to gigabytes stop at the limit.
/// Concatenated gzip members (allowed by RFC 1952) are inflated one after the other.
public final class GzipInflater {
    /// zlib keeps a pointer back to its stream (and refuses a stream that moved), so the stream
    /// lives at one heap address for the inflater's whole life.
    private let stream: UnsafeMutablePointer<z_stream>
    private let limit: Int64
    private var output = [UInt8](repeating: 0, count: 64 * 1024)
    /// Bytes produced so far.
    public private(set) var inflatedCount: Int64 = 0
    /// True once a complete gzip member has ended and no further input started another.
    public private(set) var finished = false

    /// - Parameter limit: the most bytes the whole stream may inflate to.
    public init(limit: Int64) throws(GzipError) {
        self.limit = limit
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // 16 + MAX_WBITS: accept the gzip wrapper only, not raw zlib streams.
        let status = s3cache_inflateInit2(stream, 16 + MAX_WBITS)
        guard status == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw .setupFailed(status)
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// Inflates one chunk of compressed input, handing each piece of output to `sink`.
    public func inflate(
        _ input: UnsafeRawBufferPointer,
        into sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        guard let base = input.baseAddress, input.count > 0 else { return }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        while stream.pointee.avail_in > 0 {
            if finished {
                // Another member follows the one that ended.
                guard inflateReset(stream) == Z_OK else { throw GzipError.corrupt("cannot start next member") }
                finished = false
            }
            let status = try output.withUnsafeMutableBytes { buffer -> Int32 in
                stream.pointee.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(buffer.count)
                let status = CZlib.inflate(stream, Z_NO_FLUSH)
                let produced = buffer.count - Int(stream.pointee.avail_out)
                if produced > 0 {
                    inflatedCount += Int64(produced)
                    if inflatedCount > limit { throw GzipError.tooLarge(limit: limit) }
                    try sink(UnsafeRawBufferPointer(rebasing: buffer[..<produced]))
                }
                return status
            }
            switch status {
            case Z_STREAM_END: finished = true
            case Z_OK: continue
            case Z_BUF_ERROR where stream.pointee.avail_in == 0: return
            default: throw GzipError.corrupt(message(status))
            }
        }
    }

    /// Confirms the input ended at the end of a gzip member, not in the middle of one.
    public func finish() throws(GzipError) {
        guard finished else { throw .corrupt("stream truncated") }
    }

    private func message(_ status: Int32) -> String {
        if let text = stream.pointee.msg { return String(cString: text) }
        return "zlib status \(status)"
    }
}
