import CLinux
#if canImport(Glibc)
import Glibc
#endif
import Platform

/// Where connections wait while no request is being served on them: the listen socket and every
/// connection nginx keeps open between two requests, in one epoll set that all worker threads
/// wait on.
///
/// A thread is tied to a connection only while it serves a request on it. A kept connection
/// then goes back here (`park`), and whichever thread is free takes the next connection that
/// has a request, so idle kept connections hold no thread and nginx's `keepalive` pool can be
/// sized for throughput alone. Each connection is registered one-shot: its readiness is
/// reported to exactly one thread, and to none again until that thread parks it anew.
///
/// Threads wait with the pool's wake signal unblocked (`epoll_pwait`), so the signal ends a
/// wait and never interrupts a request's I/O.
final class ConnectionPark: Sendable {
    private let epoll: Int32
    private let listenFD: Int32
    /// Connections parked right now, to close when the pool drains. Every request passes
    /// through it twice (taken, parked again), on every thread: an adaptive lock, see there.
    private let idle = AdaptiveLock<Set<Int32>>([])

    enum Event {
        /// The listen socket has a connection waiting (another thread may still take it first).
        case newConnection
        /// A parked connection has a request (or was closed by nginx); it is this thread's now.
        case request(fd: Int32)
        /// A signal ended the wait: the drain's wake signal, or any other.
        case interrupted
        /// Nothing came within the wait's time limit.
        case timedOut
    }

    init(listenFD: Int32) throws(SystemError) {
        self.listenFD = listenFD
        epoll = try systemCall("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = listenFD
        if epoll_ctl(epoll, EPOLL_CTL_ADD, listenFD, &event) != 0 {
            let failure = SystemError("epoll_ctl(listen socket)", errno: errno)
            close(epoll)
            throw failure
        }
    }

    deinit {
        close(epoll)
    }

    /// Blocks until a connection is waiting to be accepted or a parked one has a request, with
    /// `mask` as the thread's signal mask meanwhile, for at most `milliseconds` (-1: no limit).
    func wait(mask: inout sigset_t, milliseconds: Int32 = -1) -> Event {
        var event = epoll_event()
        while true {
            let count = epoll_pwait(epoll, &event, 1, milliseconds, &mask)
            if count == 0 { return .timedOut }
            if count > 0 {
                let fd = event.data.fd
                if fd == listenFD { return .newConnection }
                // Taken from the idle set or not at all: `closeAll` may have closed it meanwhile.
                guard idle.withLock({ $0.remove(fd) }) != nil else { continue }
                return .request(fd: fd)
            }
            if count < 0 && errno == EINTR { return .interrupted }
        }
    }

    /// Takes a waiting connection (the listen socket is non-blocking), or nil when another
    /// thread took it first.
    func acceptConnection() throws(SystemError) -> Int32? {
        while true {
            let fd = accept4(listenFD, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
            if fd >= 0 { return fd }
            switch errno {
            case EAGAIN, EWOULDBLOCK: return nil
            // The peer gave up between connect and accept, or a transient network error: next.
            case EINTR, ECONNABORTED, EPROTO, ENETDOWN, ENETUNREACH, EHOSTUNREACH, ETIMEDOUT: continue
            default: throw SystemError("accept", errno: errno)
            }
        }
    }

    /// Hands `fd` to whichever thread is free when its next request arrives. A new connection
    /// is added to the set; a kept one, disarmed since its last request was reported, is armed
    /// again. (A number can be reused by the kernel for a new connection after a close, so
    /// either case falls back to the other.)
    func park(_ fd: Int32) throws(SystemError) {
        idle.withLock { _ = $0.insert(fd) }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLONESHOT.rawValue
        event.data.fd = fd
        if epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event) == 0 { return }
        if errno == ENOENT && epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 { return }
        let failure = SystemError("epoll_ctl(connection)", errno: errno)
        _ = idle.withLock { $0.remove(fd) }
        throw failure
    }

    /// Closes every parked connection (the pool is draining: no thread will take them). nginx
    /// drops a kept connection that closes while idle from its pool.
    func closeAll() {
        let fds = idle.withLock { fds in
            defer { fds.removeAll() }
            return fds
        }
        for fd in fds { close(fd) }
    }
}
