import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A helper process the tests start (moto, nginx, openssl), with bounded waits only.
///
/// Spawned with `posix_spawnp` rather than Foundation's `Process`, because the child must
/// start clean: `Process` passes on the spawning thread's signal mask, and the test
/// runner's threads block SIGTERM, so nginx (single-process mode) and moto ignored the
/// polite stop and had to be killed after the grace period. Here the child gets an empty
/// mask, default signal handlers, /dev/null as stdin, its output in a log file (or
/// /dev/null; never a pipe nobody drains), and none of our other descriptors: a relay's
/// socket inherited by nginx would stay open after the relay closed it.
final class ChildProcess: Sendable {
    let name: String
    let pid: pid_t
    /// The wait status once reaped; nil while the child runs.
    private let reaped = Mutex<Int32?>(nil)

    /// Starts `arguments[0]` (looked up on `PATH`), output to `logFile` (or discarded).
    init(_ arguments: [String], logFile: String? = nil) throws {
        precondition(!arguments.isEmpty, "a command needs a program name")
        name = arguments[0]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logFile ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        if let closeFrom = Self.addCloseFrom { _ = closeFrom(&actions, 3) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)  // SIGPIPE is ignored in here
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let result = posix_spawnp(&pid, name, &actions, &attributes, argv, environ)
        guard result == 0 else { throw TestSetupError("cannot start \(name): \(String(cString: strerror(result)))") }
        self.pid = pid
    }

    deinit {
        stop()
    }

    /// Reaps the child if it has exited; true while it runs.
    var isRunning: Bool {
        reaped.withLock { status in
            guard status == nil else { return false }
            var waitStatus: Int32 = 0
            let result = waitpid(pid, &waitStatus, WNOHANG)
            if result == pid || (result < 0 && errno == ECHILD) { status = waitStatus }
            return status == nil
        }
    }

    /// Waits at most `timeout` seconds for the process to exit; its exit code, or nil when it
    /// is still running (or was killed by a signal).
    func waitForExit(timeout: Double) -> Int32? {
        guard Self.poll(timeout: timeout, { !isRunning }) else { return nil }
        let status = reaped.withLock { $0 } ?? -1
        return status & 0x7f == 0 ? (status >> 8) & 0xff : nil
    }

    /// SIGTERM, up to 5 s to exit, then SIGKILL and up to 5 s more. Safe to call twice.
    func stop() {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        if Self.poll(timeout: 5, { !isRunning }) { return }
        kill(pid, SIGKILL)
        _ = Self.poll(timeout: 5, { !isRunning })
    }

    /// `stop()` for async callers: waits with `Task.sleep`, so the wait holds no thread of
    /// the (small) cooperative pool that Swift Testing runs every test on.
    func stop() async {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        if await Self.poll(timeout: 5, { !isRunning }) { return }
        kill(pid, SIGKILL)
        _ = await Self.poll(timeout: 5, { !isRunning })
    }

    /// Polls `ready` every 20 ms for up to `timeout` seconds while the process runs.
    func waitUntil(timeout: Double, _ ready: () -> Bool) throws {
        guard Self.poll(timeout: timeout, { ready() || !isRunning }), isRunning else { throw startupFailure(timeout) }
    }

    /// `waitUntil` for async callers, sleeping with `Task.sleep`.
    func waitUntil(timeout: Double, _ ready: () -> Bool) async throws {
        guard await Self.poll(timeout: timeout, { ready() || !isRunning }), isRunning else {
            throw startupFailure(timeout)
        }
    }

    private func startupFailure(_ timeout: Double) -> TestSetupError {
        TestSetupError(isRunning ? "\(name) not ready after \(timeout) s" : "\(name) exited during startup")
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+): declared only for
    /// `_GNU_SOURCE`, which Swift's Glibc module does not define, so looked up at run time.
    private static var addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32)? {
        guard let program = dlopen(nil, RTLD_NOW), let symbol = dlsym(program, "posix_spawn_file_actions_addclosefrom_np")
        else { return nil }
        defer { dlclose(program) }  // libc stays loaded: the function pointer stays valid
        return unsafeBitCast(
            symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32).self)
    }

    /// True as soon as `condition` holds, false after `timeout` seconds.
    private static func poll(timeout: Double, _ condition: () -> Bool) -> Bool {
        let started = ContinuousClock.now
        while !condition() {
            guard ContinuousClock.now - started < .seconds(timeout) else { return false }
            usleep(20_000)
        }
        return true
    }

    private static func poll(timeout: Double, _ condition: () -> Bool) async -> Bool {
        let started = ContinuousClock.now
        while !condition() {
            guard ContinuousClock.now - started < .seconds(timeout) else { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }
}
