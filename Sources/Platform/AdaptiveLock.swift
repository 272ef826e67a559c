#if canImport(Glibc)
import Glibc
#endif

/// State behind glibc's adaptive mutex, which spins briefly before it sleeps: for critical
/// sections of a few hundred nanoseconds that many threads enter (a cache shard's lookup, the
/// set of parked connections).
///
/// Not `Synchronization.Mutex`: on Linux that is a priority-inheritance futex. Every contended
/// acquire is a system call (`FUTEX_LOCK_PI`) and the kernel hands the lock to a sleeping
/// waiter, which owns it before it runs; meanwhile the running threads spin in user space for
/// a lock nobody is using. With 64 threads on 2 cores that convoy took 65 % of the worker's
/// CPU on 1 KiB hits (bench/README.md, "Where the time goes"). glibc's mutex leaves an
/// unlocked lock to whoever runs first.
public final class AdaptiveLock<State>: @unchecked Sendable {
    /// `PTHREAD_MUTEX_ADAPTIVE_NP`, glibc's value; Swift's Glibc module builds without
    /// `_GNU_SOURCE`, which hides the name.
    private static var adaptiveMutexKind: Int32 { 3 }

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Guarded by `mutex`: touched only inside `withLock`, which is what makes the class
    /// `Sendable` despite `@unchecked`.
    private var state: State

    public init(_ state: State) {
        self.state = state
        mutex = .allocate(capacity: 1)
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_settype(&attributes, Self.adaptiveMutexKind)
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    public func withLock<Result>(_ body: (inout State) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state)
    }
}
