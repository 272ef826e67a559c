#if canImport(Glibc)
import Glibc
#endif
import Gzip
import Platform

/// A PUT body ready to stream to S3 with a known length.
///
/// Plain bodies stream straight from nginx. Gzip bodies have no known inflated length, and
/// S3 needs one up front, so they are inflated (with a hard limit) into an anonymous temporary
/// file first: memory stays flat whatever the size, and a bomb or a corrupt stream is refused
/// before anything reaches S3.
enum UploadBody {
    case stream(any BodySource, contentLength: Int64)
    case inflatedFile(fd: Int32, length: Int64)

    var contentLength: Int64 {
        switch self {
        case let .stream(_, length): return length
        case let .inflatedFile(_, length): return length
        }
    }

    /// Reads the whole gzip body from `source` and inflates it into a temporary file.
    static func inflating(from source: any BodySource, limit: Int64, chunkSize: Int = 64 * 1024) throws -> UploadBody {
        let fd = try openTemporaryFile()
        do {
            let inflater = try GzipInflater(limit: limit)
            var buffer = [UInt8](repeating: 0, count: chunkSize)
            while true {
                let count = try buffer.withUnsafeMutableBytes { try source.read(into: $0) }
                if count == 0 { break }
                try buffer.withUnsafeBytes { raw in
                    try inflater.inflate(UnsafeRawBufferPointer(rebasing: raw[..<count])) { try writeAll(fd, $0) }
                }
            }
            try inflater.finish()
            guard lseek(fd, 0, SEEK_SET) == 0 else { throw HTTPError.internalError("cannot rewind upload spool") }
            return .inflatedFile(fd: fd, length: inflater.inflatedCount)
        } catch {
            _ = Glibc.close(fd)
            throw error
        }
    }

    /// Fills `buffer` with the next bytes of the body, for the S3 client's upload callback.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        switch self {
        case let .stream(source, _): return try source.read(into: buffer)
        case let .inflatedFile(fd, _):
            while true {
                let count = Glibc.read(fd, buffer.baseAddress, buffer.count)
                if count >= 0 { return count }
                if errno != EINTR { throw HTTPError.internalError("reading upload spool failed (errno \(errno))") }
            }
        }
    }

    func close() {
        if case let .inflatedFile(fd, _) = self { _ = Glibc.close(fd) }
    }

    /// A file in `$TMPDIR` (or /var/tmp, on disk rather than in RAM), unlinked at once so it
    /// vanishes when closed and no other process can open it.
    private static func openTemporaryFile() throws -> Int32 {
        let directory = getenv("TMPDIR").map { String(cString: $0) } ?? "/var/tmp"
        var template = Array((directory + "/s3cache-upload-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw HTTPError.internalError("cannot create upload spool in \(directory) (errno \(errno))")
        }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        return fd
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        do {
            try Platform.writeAll(bytes, to: fd, operation: "write(upload spool)")
        } catch {
            throw HTTPError(status: 507, code: "insufficient_storage", message: "cannot spool the inflated upload (errno \(error.errno))")
        }
    }
}
