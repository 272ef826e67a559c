import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A helper process the tests start (moto, nginx, openssl), with bounded waits only.
///
/// `stop()` sends SIGTERM, gives the process a few seconds, then SIGKILLs it: a test
/// must never hang on a child that ignores the polite signal. Output goes to a file
/// (or nowhere), never to a pipe nobody drains.
final class ChildProcess: @unchecked Sendable {
    // @unchecked: `Process` is not marked Sendable; we only call its thread-safe
    // `isRunning`, `processIdentifier`, `terminate` and `terminationStatus`.
    private let process: Process
    let name: String

    /// Starts `arguments[0]` found on `PATH`, output appended to `logFile` (or discarded).
    init(_ arguments: [String], logFile: String? = nil) throws {
        name = arguments.first ?? "?"
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let log = logFile.flatMap { path in
            FileManager.default.createFile(atPath: path, contents: nil) ? FileHandle(forWritingAtPath: path) : nil
        }
        process.standardOutput = log ?? FileHandle.nullDevice
        process.standardError = log ?? FileHandle.nullDevice
        // The child has its own copy of the descriptor; ours would only leak.
        defer { try? log?.close() }
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    /// Waits at most `timeout` seconds for the process to exit on its own; its status, or nil.
    func waitForExit(timeout: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            guard Date() < deadline else { return nil }
            usleep(20_000)
        }
        return process.terminationStatus
    }

    /// SIGTERM, up to 5 s to exit, then SIGKILL and up to 5 s more. Safe to call twice.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        if waitForExit(timeout: 5) != nil { return }
        kill(process.processIdentifier, SIGKILL)
        _ = waitForExit(timeout: 5)
    }

    /// `stop()` for async callers: waits with `Task.sleep`, so the wait holds no thread of
    /// the (small) cooperative pool that Swift Testing runs every test on.
    func stop() async {
        guard process.isRunning else { return }
        process.terminate()
        if await poll(timeout: 5, { !process.isRunning }) { return }
        kill(process.processIdentifier, SIGKILL)
        _ = await poll(timeout: 5, { !process.isRunning })
    }

    /// Polls `ready` every 50 ms for up to `timeout` seconds while the process runs.
    func waitUntil(timeout: TimeInterval, _ ready: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !ready() {
            guard process.isRunning else { throw TestSetupError("\(name) exited during startup") }
            guard Date() < deadline else { throw TestSetupError("\(name) not ready after \(Int(timeout)) s") }
            usleep(50_000)
        }
    }

    /// `waitUntil` for async callers, sleeping with `Task.sleep`.
    func waitUntil(timeout: TimeInterval, _ ready: () -> Bool) async throws {
        let started = ContinuousClock.now
        while !ready() {
            guard process.isRunning else { throw TestSetupError("\(name) exited during startup") }
            guard ContinuousClock.now - started < .seconds(timeout) else {
                throw TestSetupError("\(name) not ready after \(Int(timeout)) s")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// True as soon as `condition` holds, false after `timeout` seconds.
    private func poll(timeout: TimeInterval, _ condition: () -> Bool) async -> Bool {
        let started = ContinuousClock.now
        while !condition() {
            guard ContinuousClock.now - started < .seconds(timeout) else { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }
}
