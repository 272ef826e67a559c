#if canImport(Glibc)
import Glibc
#endif
import CFastCGI
import Synchronization

/// A fixed pool of threads, each accepting FastCGI requests on the same listen socket and
/// serving one at a time, start to finish.
///
/// There is no accept mutex: the kernel hands each connection to one waiting thread, and
/// with nginx's kept connections a mutex halved throughput (../shared/NOTES.md).
public final class WorkerPool: Sendable {
    /// Builds one thread's request handler; called once on each worker thread, so the handler
    /// may own per-thread resources (an S3 connection) that are not `Sendable`.
    public typealias HandlerFactory = @Sendable () -> (FastCGIRequest) -> Void

    private let listen: ListenSocket
    private let threadCount: Int
    private let makeHandler: HandlerFactory
    private let state = Mutex(State())

    private struct State {
        var inFlight = 0
        var draining = false
    }

    public init(listen: ListenSocket, threads: Int, makeHandler: @escaping HandlerFactory) {
        precondition(threads > 0, "a worker pool needs at least one thread")
        self.listen = listen
        self.threadCount = threads
        self.makeHandler = makeHandler
    }

    /// Requests being served right now.
    public var inFlight: Int { state.withLock { $0.inFlight } }

    /// Starts the threads and returns; they run until the process exits.
    public func start() throws(SystemError) {
        FCGX_Init()
        for index in 0..<threadCount {
            try spawnThread(name: "worker \(index)") { [self] in serve() }
        }
    }

    /// Stops handing new requests to handlers and waits up to `timeout` seconds for those in flight.
    ///
    /// Returns the number still running when the wait ended (0 on a clean drain).
    public func drain(timeout: Double) -> Int {
        state.withLock { $0.draining = true }
        let deadline = monotonicSeconds() + timeout
        while true {
            let remaining = inFlight
            if remaining == 0 || monotonicSeconds() >= deadline { return remaining }
            usleep(10_000)
        }
    }

    private func serve() {
        let request = FastCGIRequest(listenFD: listen.fd)
        let handle = makeHandler()
        while request.accept() {
            let admitted = state.withLock { state -> Bool in
                guard !state.draining else { return false }
                state.inFlight += 1
                return true
            }
            guard admitted else {
                // Draining: leave this request unanswered so nginx sees a reset and the
                // process can exit; the thread parks until then.
                while true { pause() }
            }
            handle(request)
            request.finish()
            state.withLock { $0.inFlight -= 1 }
        }
    }
}

/// Seconds on a clock that never jumps, for measuring durations and deadlines.
public func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
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
