#if canImport(Glibc)
import Glibc
#endif
import CFastCGI
import Synchronization

/// A fixed pool of threads, each taking connections from the same listen socket and serving
/// one request at a time, start to finish.
///
/// There is no accept mutex: the kernel hands each connection to one waiting thread
/// (`EPOLLEXCLUSIVE`), and with nginx's kept connections a mutex halved throughput
/// (../shared/NOTES.md). The pool accepts connections itself rather than inside
/// `FCGX_Accept_r`, so that it can stop accepting when asked to drain, while connections keep
/// queueing on the socket for the next process (systemd holds it across a restart).
public final class WorkerPool: Sendable {
    /// Builds one thread's request handler; called once on each worker thread, so the handler
    /// may own per-thread resources (an S3 connection) that are not `Sendable`.
    public typealias HandlerFactory = @Sendable () -> (FastCGIRequest) -> Void

    /// Ends the threads' waits when draining; blocked everywhere but inside those waits.
    static let wakeSignal = SIGUSR2

    private let listen: ListenSocket
    private let threadCount: Int
    private let makeHandler: HandlerFactory
    private let reportError: @Sendable (String) -> Void
    private let draining = Atomic(false)
    private let inFlightCount = Atomic(0)
    private let runningCount = Atomic(0)
    private let threads = Mutex<[pthread_t]>([])

    /// - Parameter reportError: told about failures that end a thread (it is not replaced).
    public init(
        listen: ListenSocket, threads: Int, reportError: @escaping @Sendable (String) -> Void,
        makeHandler: @escaping HandlerFactory
    ) {
        precondition(threads > 0, "a worker pool needs at least one thread")
        self.listen = listen
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
        runningCount.store(threadCount, ordering: .relaxed)
        for index in 0..<threadCount {
            try spawnThread(name: "worker \(index)") { [self] in
                threads.withLock { $0.append(pthread_self()) }
                serve()
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
        for thread in threads.withLock({ $0 }) { pthread_kill(thread, Self.wakeSignal) }
        let deadline = monotonicSeconds() + timeout
        while running > 0 && monotonicSeconds() < deadline {
            usleep(5_000)
        }
        return inFlight
    }

    private var isDraining: Bool { draining.load(ordering: .sequentiallyConsistent) }

    private func serve() {
        let waiter: ConnectionWaiter
        do {
            waiter = try ConnectionWaiter(listenFD: listen.fd, wakeSignal: Self.wakeSignal)
        } catch {
            reportError("worker thread cannot wait for connections: \(error)")
            return
        }
        let request = FastCGIRequest()
        let handle = makeHandler()
        while !isDraining {
            // A wait ends early on any signal (the drain's wake signal, but also SIGCONT after a
            // stop, a debugger, a stray SIGUSR2): only the drain, checked by the loop, ends the thread.
            if request.connection < 0 {
                guard case .ready = waiter.waitForConnection() else { continue }
                do {
                    guard let fd = try waiter.acceptConnection() else { continue }
                    request.adopt(connection: fd)
                } catch {
                    // Out of file descriptors, most likely: back off instead of spinning.
                    reportError("\(error)")
                    usleep(50_000)
                    continue
                }
            } else {
                guard case .ready = waiter.waitForData(on: request.connection) else { continue }
            }
            // Also false when nginx closed the kept connection: libfcgi closed our end too.
            guard request.readNext() else { continue }
            inFlightCount.add(1, ordering: .relaxed)
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
            inFlightCount.subtract(1, ordering: .relaxed)
        }
        request.closeConnection()
    }
}

/// Nanoseconds on a clock that never jumps, for measuring durations and deadlines.
public func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// `monotonicNanoseconds()` in seconds.
public func monotonicSeconds() -> Double {
    Double(monotonicNanoseconds()) / 1e9
}

/// Starts a detached POSIX thread running `body`.
///
/// POSIX threads rather than Foundation's `Thread`: the worker avoids Foundation (and its ICU) entirely.
public func spawnThread(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    var thread = pthread_t()
    let status = pthread_create(&thread, &attributes, { raw in
        Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, box)
    if status != 0 {
        Unmanaged<Box>.fromOpaque(box).release()
        throw SystemError("pthread_create(\(name))", errno: status)
    }
}
