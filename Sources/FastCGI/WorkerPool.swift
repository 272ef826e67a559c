#if canImport(Glibc)
import Glibc
#endif
import CFastCGI
public import Platform
import Synchronization

/// A pool of threads that serve requests, one at a time each, start to finish, on whichever
/// connection they arrive.
///
/// Threads follow requests, not connections: between two requests a kept connection waits in
/// the `ConnectionPark` with the listen socket, and the next free thread takes whichever has
/// work. An idle kept connection holds no thread, so no connection with a request waits while a
/// thread is idle, however many connections nginx keeps open. There is no accept mutex (with
/// kept connections one halved throughput, ../shared/NOTES.md). The pool accepts connections
/// itself rather than inside `FCGX_Accept_r`, so that it can stop accepting when asked to drain,
/// while connections keep queueing on the socket for the next process (systemd holds it across
/// a restart).
///
/// The pool starts with `threads` threads and grows while requests wait on something slower
/// than serving them (S3, another request's fetch, a client's upload): the handler marks that
/// wait with `WorkerPool.blocking`, and whenever fewer than `reserve` threads are left for
/// everything else, one more thread starts, up to `maxThreads`. So a cache hit never queues
/// behind requests that wait on S3, however many of them a stampede or a slow S3 brings. A
/// thread that finishes a request while twice the reserve is free again ends, down to `threads`.
public final class WorkerPool: Sendable {
    /// Builds one thread's request handler; called once on each worker thread, so the handler
    /// may own per-thread resources (an S3 connection) that are not `Sendable`.
    public typealias HandlerFactory = @Sendable () -> (FastCGIRequest) -> Void

    /// Ends the threads' waits when draining; blocked everywhere but inside those waits.
    static let wakeSignal = SIGUSR2
    /// How long a thread waits for work while the pool is above its size before it considers ending.
    static let surplusIdleMilliseconds: Int32 = 2_000

    private let listen: ListenSocket
    private let threadCount: Int
    /// The most threads the pool grows to while requests wait (`blocking`).
    public let maxThreads: Int
    /// Threads kept free for requests that do not wait, while others do.
    public let reserve: Int
    private let makeHandler: HandlerFactory
    private let restingTimeout: Double
    private let reportError: @Sendable (String) -> Void
    private let draining = Atomic(false)
    private let inFlightCount = Atomic(0)
    private let runningCount = Atomic(0)
    /// Threads inside `blocking` right now.
    private let blockedCount = Atomic(0)
    private let threadNumber = Atomic(0)
    private let threads = AdaptiveLock<[pthread_t]>([])
    /// Set by `start`: the connections between requests, and the listen socket.
    private let park = AdaptiveLock<ConnectionPark?>(nil)

    /// - Parameters:
    ///   - threads: the threads the pool starts with and never goes below.
    ///   - maxThreads: the most it grows to while requests wait (default: four times `threads`,
    ///     at least 64).
    ///   - reserve: the threads it keeps free for requests that do not wait (default: an eighth
    ///     of `threads`, at least 2).
    ///   - restingTimeout: how long a read on a connection waits for nginx when no request
    ///     sets another limit (`FastCGIRequest.init(restingTimeout:)`).
    ///   - reportError: told about failures that end a thread (it is not replaced).
    public init(
        listen: ListenSocket, threads: Int, maxThreads: Int? = nil, reserve: Int? = nil, restingTimeout: Double = 30,
        reportError: @escaping @Sendable (String) -> Void, makeHandler: @escaping HandlerFactory
    ) {
        precondition(threads > 0, "a worker pool needs at least one thread")
        self.listen = listen
        self.maxThreads = max(threads, maxThreads ?? max(64, threads.multipliedReportingOverflow(by: 4).partialValue))
        self.reserve = max(1, reserve ?? max(2, threads / 8))
        self.restingTimeout = restingTimeout
        self.threadCount = threads
        self.reportError = reportError
        self.makeHandler = makeHandler
    }

    /// Requests being served right now.
    public var inFlight: Int { inFlightCount.load(ordering: .relaxed) }

    /// Threads running: `threads` and the ones started while requests wait (they leave one by
    /// one while draining).
    public var running: Int { runningCount.load(ordering: .relaxed) }

    /// Threads waiting inside `blocking` right now.
    public var blocked: Int { blockedCount.load(ordering: .relaxed) }

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
        for _ in 0..<threadCount {
            try startThread(park)
        }
    }

    /// Starts one thread; `runningCount` already counts it.
    private func startThread(_ park: ConnectionPark) throws(SystemError) {
        let number = threadNumber.add(1, ordering: .relaxed).oldValue
        try spawnThread(name: "worker \(number)") { [self] in
            threads.withLock { $0.append(pthread_self()) }
            BlockingState.enter(self)
            let counted = serve(park)
            // Off the list before the thread ends: a detached thread's id is not valid once
            // it has, and `drain` signals every thread on the list under the same lock.
            threads.withLock { list in list.removeAll { pthread_equal($0, pthread_self()) != 0 } }
            if !counted { runningCount.subtract(1, ordering: .relaxed) }
        }
    }

    /// Runs `body`, which waits on something slower than serving a request: S3, another
    /// request's fetch, a client sending its body. While it waits, the pool keeps `reserve`
    /// threads free for other requests, starting more up to `maxThreads`. Outside a pool's
    /// thread (a unit test), or nested inside another `blocking`, it just runs `body`.
    public static func blocking<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure) -> Result {
        guard let state = BlockingState.current, state.depth == 0 else { return try body() }
        state.depth = 1
        state.pool.enterBlocking()
        defer {
            state.pool.blockedCount.subtract(1, ordering: .relaxed)
            state.depth = 0
        }
        return try body()
    }

    private func enterBlocking() {
        let blocked = blockedCount.add(1, ordering: .relaxed).newValue
        while true {
            let running = runningCount.load(ordering: .relaxed)
            guard running - blocked < reserve, running < maxThreads, !isDraining else { return }
            guard runningCount.compareExchange(expected: running, desired: running + 1, ordering: .relaxed).exchanged
            else { continue }
            guard let park = park.withLock({ $0 }) else {
                runningCount.subtract(1, ordering: .relaxed)
                return
            }
            do {
                try startThread(park)
            } catch {
                runningCount.subtract(1, ordering: .relaxed)
                reportError("cannot start another worker thread: \(error)")
            }
            return
        }
    }

    /// Whether this thread should end after its request (or an idle wait): the pool is above
    /// its size and twice the reserve is free without it (the gap to `enterBlocking`'s
    /// threshold keeps the pool from starting and ending threads in turn). Claims the
    /// departure when it says yes.
    private func leavesAfterRequest() -> Bool {
        while true {
            let running = runningCount.load(ordering: .relaxed)
            let free = running - 1 - blockedCount.load(ordering: .relaxed)
            guard running > threadCount, free >= 2 * reserve else { return false }
            // One less before the thread leaves, so that two threads never both take the last
            // surplus place; the thread's own exit path then must not count it again.
            if runningCount.compareExchange(expected: running, desired: running - 1, ordering: .relaxed).exchanged {
                return true
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
        park?.stopAccepting()
        park?.closeIdle()
        threads.withLock { list in
            for thread in list { pthread_kill(thread, Self.wakeSignal) }
        }
        let deadline = monotonicSeconds() + timeout
        while running > 0 && monotonicSeconds() < deadline {
            usleep(5_000)
        }
        park?.closeAll()
        return inFlight
    }

    private var isDraining: Bool { draining.load(ordering: .sequentiallyConsistent) }

    /// The thread's loop, until the pool drains or has more threads than it needs. Returns
    /// whether the thread's departure is already counted (`leavesAfterRequest`).
    private func serve(_ park: ConnectionPark) -> Bool {
        let request = FastCGIRequest(restingTimeout: restingTimeout)
        let handle = makeHandler()
        // The thread's signal mask with the wake signal removed: the mask in force while waiting.
        var waitMask = sigset_t()
        pthread_sigmask(SIG_BLOCK, nil, &waitMask)
        sigdelset(&waitMask, Self.wakeSignal)
        // A wait ends early on any signal (the drain's wake signal, but also SIGCONT after a
        // stop, a debugger, a stray SIGUSR2): only the drain, checked by the loop, ends the thread.
        // Draining, a thread still serves the connections accepted with a request unread.
        while !isDraining || park.hasFresh {
            // Above its size the pool waits with a limit, so that a thread nothing comes to
            // still ends once the requests that made it start are over; draining, so that it
            // sees when no fresh connection is left.
            let limit: Int32 = isDraining ? 50 : running > threadCount ? Self.surplusIdleMilliseconds : -1
            switch park.wait(mask: &waitMask, milliseconds: limit) {
            case .interrupted:
                continue
            case .timedOut:
                if !isDraining && leavesAfterRequest() { return true }
                continue
            case .newConnection:
                guard let fd = acceptQueued(park) else { continue }
                // nginx connects to send a request: the accepting thread serves the first.
                serve(fd, isNew: true, with: request, handle: handle, park: park)
            case let .request(fd, isNew):
                serve(fd, isNew: isNew, with: request, handle: handle, park: park)
            }
            if !isDraining && leavesAfterRequest() { return true }
        }
        return false
    }

    /// Accepts the connections queued on the listen socket: returns the first, and parks the
    /// others (up to `ConnectionPark.acceptBatch`) for whichever threads are free.
    private func acceptQueued(_ park: ConnectionPark) -> Int32? {
        let first: Int32
        do {
            guard let accepted = try park.acceptConnection() else { return nil }
            first = accepted
        } catch {
            // Out of file descriptors, most likely: back off instead of spinning.
            reportError("\(error)")
            usleep(50_000)
            return nil
        }
        for _ in 1..<ConnectionPark.acceptBatch {
            guard !isDraining, let next = try? park.acceptConnection() else { break }
            do {
                try park.parkNew(next)
            } catch {
                reportError("\(error)")
                close(next)
            }
        }
        return first
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

/// A worker thread's link to its pool, for `WorkerPool.blocking`, which finds it through a
/// thread-specific key: the code that waits on S3 needs no reference to the pool, and code
/// running outside a pool (a unit test) finds none.
final class BlockingState {
    let pool: WorkerPool
    /// 1 inside `blocking`: a nested `blocking` counts once.
    var depth = 0

    private init(_ pool: WorkerPool) {
        self.pool = pool
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let status = pthread_key_create(&key) { raw in
            if let raw { Unmanaged<BlockingState>.fromOpaque(raw).release() }
        }
        precondition(status == 0, "pthread_key_create failed")
        return key
    }()

    /// Links the calling thread to `pool` until it ends.
    static func enter(_ pool: WorkerPool) {
        pthread_setspecific(key, Unmanaged.passRetained(BlockingState(pool)).toOpaque())
    }

    static var current: BlockingState? {
        guard let raw = pthread_getspecific(key) else { return nil }
        return Unmanaged<BlockingState>.fromOpaque(raw).takeUnretainedValue()
    }
}
