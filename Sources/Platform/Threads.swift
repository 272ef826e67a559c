#if canImport(Glibc)
import Glibc
#endif

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

/// A pause of about 20 µs between two holds of a lock that a loop takes over and over, so that
/// a thread woken to take it gets it. glibc's mutexes are not fair: without a pause (and with
/// `sched_yield`, which returns at once when the waiter runs on another CPU) the releasing
/// thread takes the lock again before the woken waiter has been scheduled, and the waiter
/// waits for the whole loop (bench/purge: 18 ms, against 1 ms with the pause).
public func pauseForLockWaiters() {
    var pause = timespec(tv_sec: 0, tv_nsec: 20_000)
    nanosleep(&pause, nil)
}
