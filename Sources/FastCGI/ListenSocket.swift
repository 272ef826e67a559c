#if canImport(Glibc)
import Glibc
#endif
public import Platform

/// Where the worker accepts FastCGI connections from nginx.
public enum ListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// A Unix socket path; the file is created with `mode` so nginx's user can connect.
    case unix(path: String, mode: UInt32)
    /// A TCP address, for a worker on another host than nginx.
    case tcp(host: String, port: UInt16)

    /// Parses `FCGI_LISTEN`: a path (anything containing `/`) or `host:port`.
    public static func parse(_ value: String, socketMode: UInt32) -> ListenAddress? {
        if value.contains("/") { return .unix(path: value, mode: socketMode) }
        guard let colon = value.lastIndex(of: ":"), let port = UInt16(value[value.index(after: colon)...]), port > 0
        else { return nil }
        var host = String(value[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return .tcp(host: host.isEmpty ? "0.0.0.0" : host, port: port)
    }

    public var description: String {
        switch self {
        case let .unix(path, mode): return "unix:\(path) (mode \(String(mode, radix: 8)))"
        case let .tcp(host, port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

/// A listening socket: inherited from systemd or opened by us.
public struct ListenSocket: Sendable {
    public let fd: Int32
    /// Human-readable origin for the startup log: `systemd` or the address.
    public let origin: String

    /// The socket systemd passed (`LISTEN_PID` is us, `LISTEN_FDS` ≥ 1: the first one is fd 3), if any.
    ///
    /// The variables are removed afterwards so that child processes do not think the socket is theirs.
    public static func fromSystemd(environment: [String: String]) -> ListenSocket? {
        guard let pid = environment["LISTEN_PID"].flatMap(Int32.init), pid == getpid(),
              let count = environment["LISTEN_FDS"].flatMap(Int.init), count >= 1
        else { return nil }
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        let fd: Int32 = 3
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return ListenSocket(fd: fd, origin: "systemd")
    }

    /// Opens and listens on `address`.
    ///
    /// A Unix socket file left behind by a crashed worker is replaced; one that a live
    /// process still accepts on is not (two workers on one path would split the traffic silently).
    public static func open(_ address: ListenAddress, backlog: Int32) throws(SystemError) -> ListenSocket {
        switch address {
        case let .unix(path, mode): return try openUnix(path: path, mode: mode, backlog: backlog)
        case let .tcp(host, port): return try openTCP(host: host, port: port, backlog: backlog)
        }
    }

    private static func openUnix(path: String, mode: UInt32, backlog: Int32) throws(SystemError) -> ListenSocket {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw SystemError("socket path \(path) is too long", errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        try removeStaleSocket(path: path, address: address)
        let fd = try systemCall("socket(AF_UNIX)") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            // bind creates the file with the umask applied; chmod sets the mode we were asked for.
            try systemCall("bind(\(path))") {
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
            }
            try systemCall("chmod(\(path))") { chmod(path, mode_t(mode)) }
            try systemCall("listen(\(path))") { listen(fd, backlog) }
        } catch {
            close(fd)
            throw error
        }
        return ListenSocket(fd: fd, origin: "unix:\(path)")
    }

    private static func removeStaleSocket(path: String, address: sockaddr_un) throws(SystemError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw SystemError("\(path) exists and is not a socket; refusing to replace it", errno: EEXIST)
        }
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { throw SystemError("socket(AF_UNIX)", errno: errno) }
        defer { close(probe) }
        var target = address
        let connected = withUnsafePointer(to: &target) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if connected == 0 {
            throw SystemError("\(path) is served by another running process", errno: EADDRINUSE)
        }
        try systemCall("unlink(\(path))") { unlink(path) }
    }

    private static func openTCP(host: String, port: UInt16, backlog: Int32) throws(SystemError) -> ListenSocket {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw SystemError("resolve \(host): \(String(cString: gai_strerror(status)))", errno: EINVAL)
        }
        defer { freeaddrinfo(list) }
        let fd = try systemCall("socket(\(host):\(port))") {
            socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        do {
            var one: Int32 = 1
            try systemCall("setsockopt(SO_REUSEADDR)") {
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            }
            try systemCall("bind(\(host):\(port))") { bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) }
            try systemCall("listen(\(host):\(port))") { listen(fd, backlog) }
        } catch {
            close(fd)
            throw error
        }
        return ListenSocket(fd: fd, origin: "tcp:\(ListenAddress.tcp(host: host, port: port))")
    }
}
