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
/// New connections wait here too. A thread woken by the listen socket accepts every connection
/// queued on it (up to `acceptBatch`), serves the first and parks the others as `fresh`, each
/// with its request already waiting. Taking one per wake-up would let the listen queue grow:
/// the listen socket is one entry among hundreds of ready connections, so it comes up once per
/// round of them, while nginx opens a new connection for every request its keepalive pool
/// cannot hold (1 KiB hits at 1024 clients then waited seconds in the listen queue).
///
/// Threads wait with the pool's wake signal unblocked (`epoll_pwait`), so the signal ends a
/// wait and never interrupts a request's I/O.
final class ConnectionPark: Sendable {
    private let epoll: Int32
    private let listenFD: Int32
    /// Connections parked right now: `idle` ones between two requests, to close when the pool
    /// drains; `fresh` ones accepted with their first request unread, to serve before it ends.
    /// Every request passes through here twice (taken, parked again), on every thread: an
    /// adaptive lock, see there.
    private let parked = AdaptiveLock<(idle: Set<Int32>, fresh: Set<Int32>)>(([], []))
    /// The most connections one wake-up of the listen socket accepts.
    static let acceptBatch = 64

    enum Event {
        /// The listen socket has a connection waiting (another thread may still take it first).
        case newConnection
        /// A parked connection has a request (or was closed by nginx); it is this thread's now.
        /// `isNew` when it was accepted and parked before its first request was read.
        case request(fd: Int32, isNew: Bool)
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
                // Taken from a set or not at all: `closeIdle` may have closed it meanwhile.
                let taken = parked.withLock { sets -> Bool? in
                    if sets.idle.remove(fd) != nil { return false }
                    if sets.fresh.remove(fd) != nil { return true }
                    return nil
                }
                guard let isNew = taken else { continue }
                return .request(fd: fd, isNew: isNew)
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
        try park(fd, fresh: false)
    }

    /// Hands a just-accepted connection, its first request unread, to whichever thread is free.
    func parkNew(_ fd: Int32) throws(SystemError) {
        try park(fd, fresh: true)
    }

    private func park(_ fd: Int32, fresh: Bool) throws(SystemError) {
        parked.withLock { sets in _ = fresh ? sets.fresh.insert(fd) : sets.idle.insert(fd) }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLONESHOT.rawValue
        event.data.fd = fd
        if epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event) == 0 { return }
        if errno == ENOENT && epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 { return }
        let failure = SystemError("epoll_ctl(connection)", errno: errno)
        parked.withLock { sets in _ = fresh ? sets.fresh.remove(fd) : sets.idle.remove(fd) }
        throw failure
    }

    /// Whether accepted connections still wait for their first request to be served.
    var hasFresh: Bool { parked.withLock { !$0.fresh.isEmpty } }

    /// Stops reporting the listen socket (the pool is draining): what is still queued on it
    /// stays there for the next process.
    func stopAccepting() {
        var unused = epoll_event()
        _ = epoll_ctl(epoll, EPOLL_CTL_DEL, listenFD, &unused)
    }

    /// Closes every idle kept connection (the pool is draining: no thread will take them).
    /// nginx drops a kept connection that closes while idle from its pool. Fresh connections
    /// stay: each has a request nginx sent, which is served before the pool ends.
    func closeIdle() {
        let fds = parked.withLock { sets in
            defer { sets.idle.removeAll() }
            return sets.idle
        }
        for fd in fds { close(fd) }
    }

    /// Closes every parked connection, fresh ones too: the pool has ended, or gave up waiting.
    func closeAll() {
        let fds = parked.withLock { sets in
            defer {
                sets.idle.removeAll()
                sets.fresh.removeAll()
            }
            return sets.idle.union(sets.fresh)
        }
        for fd in fds { close(fd) }
    }
}
