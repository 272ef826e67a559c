#if canImport(Glibc)
import Glibc
#endif

/// The file calls of the file tier: positioned reads and writes, atomic renames, directory
/// walks. Every one retries `EINTR` and reports failure as `SystemError`, like `systemCall`.
public enum FileSystem {
    /// Opens (or with `create`, creates exclusively) a regular file; close-on-exec, never
    /// following a symbolic link in the last component.
    public static func open(_ path: String, write: Bool, create: Bool = false, mode: UInt32 = 0o600) throws(SystemError) -> Int32 {
        var flags = O_CLOEXEC | O_NOFOLLOW | (write ? O_RDWR : O_RDONLY)
        if create { flags |= O_CREAT | O_EXCL }
        return try systemCall("open(\(path))") { Glibc.open(path, flags, mode) }
    }

    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Writes all of `bytes` at `offset`.
    public static func write(_ bytes: UnsafeRawBufferPointer, to fd: Int32, at offset: Int) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let written = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if written < 0 {
                if errno == EINTR { continue }
                throw SystemError("pwrite", errno: errno)
            }
            done += written
        }
    }

    /// Reads up to `buffer.count` bytes at `offset`; fewer only at the end of the file.
    public static func read(into buffer: UnsafeMutableRawBufferPointer, from fd: Int32, at offset: Int) throws(SystemError) -> Int {
        var done = 0
        while done < buffer.count {
            let count = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError("pread", errno: errno)
            }
            if count == 0 { break }
            done += count
        }
        return done
    }

    public static func truncate(_ fd: Int32, length: Int) throws(SystemError) {
        try systemCall("ftruncate") { ftruncate(fd, off_t(length)) }
    }

    /// Flushes the file's data (not necessarily its metadata) to the device.
    public static func syncData(_ fd: Int32) throws(SystemError) {
        try systemCall("fdatasync") { fdatasync(fd) }
    }

    /// Sets the file's access and modification times to `seconds` since the epoch.
    public static func setModificationTime(_ fd: Int32, seconds: Int) throws(SystemError) {
        var times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
        try systemCall("futimens") { futimens(fd, &times) }
    }

    /// Size of an open file, or of the file at `path` (not following a final symbolic link).
    public static func size(_ fd: Int32) throws(SystemError) -> Int {
        Int(try status(fd).st_size)
    }

    /// Sets permission bits exactly (the umask does not apply).
    public static func setMode(_ path: String, _ mode: UInt32) throws(SystemError) {
        try systemCall("chmod(\(path))") { chmod(path, mode_t(mode)) }
    }

    /// Modification time of an open file, in seconds since the epoch.
    public static func modificationTime(_ fd: Int32) throws(SystemError) -> Int {
        Int(try status(fd).st_mtim.tv_sec)
    }

    private static func status(_ fd: Int32) throws(SystemError) -> stat {
        var info = stat()
        try systemCall("fstat") { fstat(fd, &info) }
        return info
    }

    /// Bytes the file occupies on its device (blocks actually allocated, for sparse files).
    public static func allocatedBytes(_ path: String) -> Int? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return Int(info.st_blocks) * 512
    }

    public static func rename(_ from: String, to: String) throws(SystemError) {
        try systemCall("rename(\(from), \(to))") { Glibc.rename(from, to) }
    }

    /// Removes a file; a missing one is not an error.
    public static func remove(_ path: String) {
        _ = unlink(path)
    }

    /// Creates a directory unless it exists.
    public static func makeDirectory(_ path: String, mode: UInt32 = 0o755) throws(SystemError) {
        if mkdir(path, mode) == 0 { return }
        let code = errno
        var info = stat()
        if code == EEXIST, stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR { return }
        throw SystemError("mkdir(\(path))", errno: code)
    }

    /// Whether `path` is a directory (not following a final symbolic link).
    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    /// Names in a directory, without `.` and `..`.
    public static func entries(of path: String) throws(SystemError) -> [String] {
        guard let directory = opendir(path) else { throw SystemError("opendir(\(path))", errno: errno) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Writes `bytes` to `path` atomically: a temporary file beside it, flushed, then renamed.
    public static func replaceContents(of path: String, with bytes: [UInt8], temporary: String) throws(SystemError) {
        remove(temporary)
        let fd = try open(temporary, write: true, create: true, mode: 0o600)
        do throws(SystemError) {
            var failure: SystemError?
            bytes.withUnsafeBytes { buffer in
                do throws(SystemError) { try write(buffer, to: fd, at: 0) } catch { failure = error }
            }
            if let failure { throw failure }
            try syncData(fd)
        } catch {
            close(fd)
            remove(temporary)
            throw error
        }
        close(fd)
        do throws(SystemError) {
            try rename(temporary, to: path)
        } catch {
            remove(temporary)
            throw error
        }
    }
}
