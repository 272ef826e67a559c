#if canImport(Glibc)
import Glibc
#endif

/// The state of one cache shard behind glibc's adaptive mutex, which spins briefly before it
/// sleeps.
///
/// Not `Synchronization.Mutex`: on Linux that is a priority-inheritance futex, so every
/// contended acquire is a system call (`FUTEX_LOCK_PI`) and waiters are handed the lock through
/// the kernel. A shard's critical section is a hash lookup and a counter bump; when many threads
/// hit one hot object, sleeping in the kernel for that costs more than the work itself
/// (bench/README.md, "Where the time goes").
final class ShardLock<State>: @unchecked Sendable {
    /// `PTHREAD_MUTEX_ADAPTIVE_NP`, glibc's value; Swift's Glibc module builds without
    /// `_GNU_SOURCE`, which hides the name.
    private static var adaptiveMutexKind: Int32 { 3 }

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Guarded by `mutex`: touched only inside `withLock`, which is what makes the class
    /// `Sendable` despite `@unchecked`.
    private var state: State

    init(_ state: State) {
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

    func withLock<Result>(_ body: (inout State) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state)
    }
}
