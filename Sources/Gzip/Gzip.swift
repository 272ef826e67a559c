import CZlib

/// One-shot gzip of a complete body, for cached copies of compressible objects.
public enum Gzip {
    /// Compresses `bytes` into a gzip member at `level` (1 fastest … 9 smallest).
    public static func compress(_ bytes: UnsafeRawBufferPointer, level: Int32 = 6) throws(GzipError) -> [UInt8] {
        var stream = z_stream()
        // 16 + MAX_WBITS writes the gzip header and trailer; memLevel 8 is zlib's default.
        let status = s3cache_deflateInit2(&stream, level, 16 + MAX_WBITS, 8)
        guard status == Z_OK else { throw .setupFailed(status) }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(bytes.count)))
        var output = [UInt8](repeating: 0, count: bound)
        let written = output.withUnsafeMutableBytes { out -> Int in
            stream.next_in = UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(bytes.count)
            stream.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(out.count)
            let result = deflate(&stream, Z_FINISH)
            return result == Z_STREAM_END ? out.count - Int(stream.avail_out) : -1
        }
        guard written >= 0 else { throw .corrupt("deflate did not finish within its bound") }
        output.removeSubrange(written...)
        return output
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
