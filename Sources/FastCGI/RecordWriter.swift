#if canImport(Glibc)
import Glibc
#endif
import Platform

/// Writes large response bodies as FastCGI `STDOUT` records straight to the connection.
///
/// libfcgi copies everything through a fixed 8 KiB buffer and writes one record per buffer:
/// 128 `write(2)` calls for a 1 MiB body, most of the worker's cost for large responses
/// (../shared/NOTES.md). Here a body goes out in records of up to 64 KiB, several per
/// `writev(2)`, with no copy. The caller flushes libfcgi's buffer first, so the records stay
/// in order; libfcgi still writes the closing records when the request finishes.
enum RecordWriter {
    /// Largest record content: the 16-bit length field, rounded down to a multiple of 8.
    static let maxRecordContent = 65_528
    /// Records per `writev` call (two vectors each: header and content).
    static let recordsPerCall = 16

    /// Writes all of `bytes` to `fd` as `STDOUT` records of request `requestID`.
    static func writeStandardOutput(_ bytes: UnsafeRawBufferPointer, requestID: Int32, to fd: Int32) throws(SystemError) {
        let headers = UnsafeMutableRawBufferPointer.allocate(byteCount: 8 * recordsPerCall, alignment: 8)
        defer { headers.deallocate() }
        var vectors: [iovec] = []
        vectors.reserveCapacity(2 * recordsPerCall)
        var offset = 0
        while offset < bytes.count {
            vectors.removeAll(keepingCapacity: true)
            var record = 0
            while record < recordsPerCall && offset < bytes.count {
                let length = min(maxRecordContent, bytes.count - offset)
                let header = headers.baseAddress! + 8 * record
                header.storeBytes(of: 1, toByteOffset: 0, as: UInt8.self)  // FCGI_VERSION_1
                header.storeBytes(of: 6, toByteOffset: 1, as: UInt8.self)  // FCGI_STDOUT
                header.storeBytes(of: UInt16(truncatingIfNeeded: requestID).bigEndian, toByteOffset: 2, as: UInt16.self)
                header.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 4, as: UInt16.self)
                header.storeBytes(of: 0, toByteOffset: 6, as: UInt16.self)  // no padding, reserved
                vectors.append(iovec(iov_base: header, iov_len: 8))
                vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress! + offset), iov_len: length))
                offset += length
                record += 1
            }
            try writeAll(&vectors, to: fd)
        }
    }

    /// `writev` until every vector is written, resuming after partial writes.
    private static func writeAll(_ vectors: inout [iovec], to fd: Int32) throws(SystemError) {
        var first = 0
        while first < vectors.count {
            let written = vectors[first...].withUnsafeBufferPointer { writev(fd, $0.baseAddress, Int32($0.count)) }
            if written < 0 {
                if errno == EINTR { continue }
                throw SystemError("writev(FastCGI records)", errno: errno)
            }
            var remaining = written
            while first < vectors.count && remaining >= vectors[first].iov_len {
                remaining -= vectors[first].iov_len
                first += 1
            }
            if remaining > 0 {
                vectors[first].iov_base += remaining
                vectors[first].iov_len -= remaining
            }
        }
    }
}
