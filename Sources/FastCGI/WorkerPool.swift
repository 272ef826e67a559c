#if canImport(Glibc)
import Glibc
#endif
import CFastCGI
public import Platform
import Synchronization

/// A fixed pool of threads that serve requests, one at a time each, start to finish, on
/// whichever connection they arrive.
///
/// Threads follow requests, not connections: between two requests a kept connection waits in
/// the `ConnectionPark` with the listen socket, and the next free thread takes whichever has
/// work. An idle kept connection holds no thread, so no connection with a request waits while a
/// thread is idle, however many connections nginx keeps open. There is no accept mutex (with
/// kept connections one halved throughput, ../shared/NOTES.md). The pool accepts connections
/// itself rather than inside `FCGX_Accept_r`, so that it can stop accepting when asked to drain,
/// while connections keep queueing on the socket for the next process (systemd holds it across
/// a restart).
public final class WorkerPool: Sendable {
    /// Builds one thread's request handler; called once on each worker thread, so the handler
    /// may own per-thread resources (an S3 connection) that are not `Sendable`.
    public typealias HandlerFactory = @Sendable () -> (FastCGIRequest) -> Void

    /// Ends the threads' waits when draining; blocked everywhere but inside those waits.
    static let wakeSignal = SIGUSR2

    private let listen: ListenSocket
    private let threadCount: Int
    private let makeHandler: HandlerFactory
    private let restingTimeout: Double
    private let reportError: @Sendable (String) -> Void
    private let draining = Atomic(false)
    private let inFlightCount = Atomic(0)
    private let runningCount = Atomic(0)
    private let threads = Mutex<[pthread_t]>([])
    /// Set by `start`: the connections between requests, and the listen socket.
    private let park = Mutex<ConnectionPark?>(nil)

    /// - Parameters:
    ///   - restingTimeout: how long a read on a connection waits for nginx when no request
    ///     sets another limit (`FastCGIRequest.init(restingTimeout:)`).
    ///   - reportError: told about failures that end a thread (it is not replaced).
    public init(
        listen: ListenSocket, threads: Int, restingTimeout: Double = 30,
        reportError: @escaping @Sendable (String) -> Void, makeHandler: @escaping HandlerFactory
    ) {
        precondition(threads > 0, "a worker pool needs at least one thread")
        self.listen = listen
        self.restingTimeout = restingTimeout
        self.threadCount = threads
        self.reportError = reportError
        self.makeHandler = makeHandler
    }

    /// Requests being served right now.
    public var inFlight: Int { inFlightCount.load(ordering: .relaxed) }

    /// Threads still serving (they leave one by one while draining).
    public var running: Int { runningCount.load(ordering: .relaxed) }

    /// Starts the threads and returns.
    ///
    /// Call it from the main thread before any other thread starts: it blocks the wake signal
    /// in the calling thread so that every thread created afterwards inherits the mask.
    public func start() throws(SystemError) {
        FCGX_Init()
        var action = sigaction()
        // A handler that does nothing: its only job is to make the wait return EINTR.
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        try systemCall("sigaction(SIGUSR2)") { sigaction(Self.wakeSignal, &action, nil) }
        var wake = sigset_t()
        sigemptyset(&wake)
        sigaddset(&wake, Self.wakeSignal)
        pthread_sigmask(SIG_BLOCK, &wake, nil)
        // Threads take connections without blocking in accept(): another may have won the race.
        let flags = fcntl(listen.fd, F_GETFL)
        try systemCall("fcntl(O_NONBLOCK)") { fcntl(listen.fd, F_SETFL, flags | O_NONBLOCK) }
        let park = try ConnectionPark(listenFD: listen.fd)
        self.park.withLock { $0 = park }
        runningCount.store(threadCount, ordering: .relaxed)
        for index in 0..<threadCount {
            try spawnThread(name: "worker \(index)") { [self] in
                threads.withLock { $0.append(pthread_self()) }
                serve(park)
                // Off the list before the thread ends: a detached thread's id is not valid once
                // it has, and `drain` signals every thread on the list under the same lock.
                threads.withLock { list in list.removeAll { pthread_equal($0, pthread_self()) != 0 } }
                runningCount.subtract(1, ordering: .relaxed)
            }
        }
    }

    /// Stops taking connections and requests, lets the requests in flight finish, closes every
    /// connection, and waits up to `timeout` seconds for all of that.
    ///
    /// Connections still queued on the listen socket stay there for the next process; a request
    /// nginx sends on a kept connection that closes unanswered, nginx retries on a new one.
    /// Returns the number of requests still running when the wait ended (0 on a clean drain).
    public func drain(timeout: Double) -> Int {
        draining.store(true, ordering: .sequentiallyConsistent)
        // Idle kept connections close at once, while nginx is not using them: it then drops
        // them from its pool instead of sending a request that no thread would take.
        let park = park.withLock { $0 }
        park?.closeAll()
        threads.withLock { list in
            for thread in list { pthread_kill(thread, Self.wakeSignal) }
        }
        let deadline = monotonicSeconds() + timeout
        while running > 0 && monotonicSeconds() < deadline {
            usleep(5_000)
        }
        if running == 0 { park?.closeAll() }
        return inFlight
    }

    private var isDraining: Bool { draining.load(ordering: .sequentiallyConsistent) }

    private func serve(_ park: ConnectionPark) {
        let request = FastCGIRequest(restingTimeout: restingTimeout)
        let handle = makeHandler()
        // The thread's signal mask with the wake signal removed: the mask in force while waiting.
        var waitMask = sigset_t()
        pthread_sigmask(SIG_BLOCK, nil, &waitMask)
        sigdelset(&waitMask, Self.wakeSignal)
        // A wait ends early on any signal (the drain's wake signal, but also SIGCONT after a
        // stop, a debugger, a stray SIGUSR2): only the drain, checked by the loop, ends the thread.
        while !isDraining {
            switch park.wait(mask: &waitMask) {
            case .interrupted:
                continue
            case .newConnection:
                let fd: Int32
                do {
                    guard let accepted = try park.acceptConnection() else { continue }
                    fd = accepted
                } catch {
                    // Out of file descriptors, most likely: back off instead of spinning.
                    reportError("\(error)")
                    usleep(50_000)
                    continue
                }
                // nginx connects to send a request: the accepting thread serves it. Parked
                // instead, it could still be unread when a drain closes idle connections.
                serve(fd, isNew: true, with: request, handle: handle, park: park)
            case let .request(fd):
                serve(fd, isNew: false, with: request, handle: handle, park: park)
            }
        }
    }

    /// Serves the request waiting on `fd`, then parks the connection if nginx keeps it.
    private func serve(
        _ fd: Int32, isNew: Bool, with request: FastCGIRequest, handle: (FastCGIRequest) -> Void, park: ConnectionPark
    ) {
        request.adopt(connection: fd, isNew: isNew)
        serveOne(request, handle: handle)
        guard let kept = request.detach() else { return }
        if isDraining {
            close(kept)
            return
        }
        do {
            try park.park(kept)
        } catch {
            reportError("\(error)")
            close(kept)
        }
    }

    /// Reads and answers one request on the connection `request` holds. Afterwards the
    /// connection is closed (nginx closed it, did not keep it, or the response was broken off)
    /// or still held, to be parked.
    private func serveOne(_ request: FastCGIRequest, handle: (FastCGIRequest) -> Void) {
        // Also false when nginx closed the kept connection: libfcgi closed our end too.
        guard request.readNext() else { return }
        inFlightCount.add(1, ordering: .relaxed)
        defer { inFlightCount.subtract(1, ordering: .relaxed) }
        handle(request)
        if request.isAborted {
            // No END_REQUEST: nginx sees the connection close mid-response and breaks
            // off its client's. libfcgi's state is as after a failed connection: the
            // streams and parameters are freed, ipcFd is -1, and the next connection is
            // adopted as usual.
            request.closeConnection()
        } else {
            request.finish()
        }
    }
}
