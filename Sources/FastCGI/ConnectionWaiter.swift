import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// One worker thread's blocking waits: for a new connection on the listen socket, or for the
/// next request on a kept one. Either wait ends early when the pool's wake signal arrives.
///
/// The wake signal stays blocked on every worker thread except inside these waits
/// (`epoll_pwait`/`ppoll` unblock it atomically), so it never interrupts a request's I/O, and
/// a signal sent just before a thread starts waiting is not lost: it stays pending and ends
/// the wait as soon as it begins.
final class ConnectionWaiter {
    private let listenFD: Int32
    private let epoll: Int32
    /// The thread's signal mask with the wake signal removed: the mask in force while waiting.
    private var waitMask = sigset_t()

    enum Outcome {
        case ready
        /// A signal arrived: the pool's wake signal when it drains, or any other that interrupted the wait.
        case woken
    }

    init(listenFD: Int32, wakeSignal: Int32) throws(SystemError) {
        self.listenFD = listenFD
        epoll = try systemCall("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        // EPOLLEXCLUSIVE: a new connection wakes one waiting thread, not all of them.
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue
        event.data.fd = listenFD
        if epoll_ctl(epoll, EPOLL_CTL_ADD, listenFD, &event) != 0 {
            let failure = SystemError("epoll_ctl(listen socket)", errno: errno)
            close(epoll)
            throw failure
        }
        pthread_sigmask(SIG_BLOCK, nil, &waitMask)
        sigdelset(&waitMask, wakeSignal)
    }

    deinit {
        close(epoll)
    }

    /// Blocks until the listen socket has a connection waiting (another thread may still take
    /// it first: accept without blocking afterwards).
    func waitForConnection() -> Outcome {
        var event = epoll_event()
        while true {
            let count = epoll_pwait(epoll, &event, 1, -1, &waitMask)
            if count > 0 { return .ready }
            if count < 0 && errno == EINTR { return .woken }
        }
    }

    /// Blocks until `fd` is readable (nginx sent a request, or closed the connection).
    func waitForData(on fd: Int32) -> Outcome {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let count = ppoll(&descriptor, 1, nil, &waitMask)
            if count > 0 { return .ready }
            if count < 0 && errno == EINTR { return .woken }
        }
    }

    /// Takes a waiting connection, or nil when another thread took it first.
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
}
