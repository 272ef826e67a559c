import CZlib

/// zlib's CRC-32 (the one of gzip and of S3's `x-amz-checksum-crc32`), continued over pieces.
public enum CRC32 {
    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        var crc = uLong(crc)
        var offset = 0
        while offset < bytes.count {
            // crc32 takes a uInt length; pieces never reach 4 GiB, but stay honest.
            let piece = min(bytes.count - offset, Int(UInt32.max))
            crc = crc32(crc, (base + offset).assumingMemoryBound(to: Bytef.self), uInt(piece))
            offset += piece
        }
        return UInt32(truncatingIfNeeded: crc)
    }
}
