import CZlib

/// One-shot gzip of a complete body, for cached copies of compressible objects.
public enum Gzip {
    /// Compresses `bytes` into a gzip member at `level` (1 fastest … 9 smallest).
    ///
    /// The result allocates no more than it holds: deflate writes into a scratch buffer sized for
    /// the worst case (about the input's size), and cached bodies live long.
    public static func compress(_ bytes: UnsafeRawBufferPointer, level: Int32 = 6) throws(GzipError) -> [UInt8] {
        // zlib keeps a pointer back to its stream and refuses one that moved: one heap address.
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        defer {
            stream.deinitialize(count: 1)
            stream.deallocate()
        }
        // 16 + MAX_WBITS writes the gzip header and trailer; memLevel 8 is zlib's default.
        let status = s3cache_deflateInit2(stream, level, 16 + MAX_WBITS, 8)
        guard status == Z_OK else { throw .setupFailed(status) }
        defer { deflateEnd(stream) }
        let scratch = UnsafeMutableRawBufferPointer.allocate(
            byteCount: Int(deflateBound(stream, uLong(bytes.count))), alignment: 1)
        defer { scratch.deallocate() }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(bytes.count)
        stream.pointee.next_out = scratch.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(scratch.count)
        guard deflate(stream, Z_FINISH) == Z_STREAM_END else { throw .corrupt("deflate did not finish within its bound") }
        let written = scratch.count - Int(stream.pointee.avail_out)
        return [UInt8](unsafeUninitializedCapacity: written) { buffer, count in
            buffer.baseAddress!.initialize(from: scratch.baseAddress!.assumingMemoryBound(to: UInt8.self), count: written)
            count = written
        }
    }

    /// Inflates a complete gzip body; `limit` bounds the output.
    public static func decompress(_ bytes: UnsafeRawBufferPointer, limit: Int64) throws -> [UInt8] {
        let inflater = try GzipInflater(limit: limit)
        var result: [UInt8] = []
        try inflater.inflate(bytes) { result.append(contentsOf: $0) }
        try inflater.finish()
        return result
    }
}
