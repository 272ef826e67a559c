#if canImport(Glibc)
import Glibc
#endif
import Platform

/// Where the log lines go (standard output: journald under systemd), gathered so that a busy
/// worker does not pay a `write(2)` for every request it logs.
///
/// Access lines wait in a buffer until it holds `batchBytes` or the flushing thread comes by
/// (`startFlushing`, every 0.1 s in the worker), as nginx's `access_log … buffer= flush=` does;
/// a line that must be seen at once (an operational message, a server fault) is written at
/// once with everything before it, so lines keep their order. Lines are appended whole and a
/// batch is written by one thread at a time, so lines of different threads never interleave.
/// What is lost in a crash is at most the last 0.1 s of access lines, never an error line.
public final class LogOutput: Sendable {
    /// The process's standard output, where every logger of the worker writes.
    public static let standardOutput = LogOutput(fd: 1)
    /// A buffer this full is written by the thread that filled it.
    static let batchBytes = 16 * 1024

    private let fd: Int32
    private let pending = AdaptiveLock<[UInt8]>([])
    /// Held while a batch is written (so batches keep their order); the buffer it holds is the
    /// one swapped in for the next batch, so that neither is allocated anew.
    private let writing = AdaptiveLock<[UInt8]>([])

    public init(fd: Int32) {
        self.fd = fd
    }

    /// Appends whole lines; `now` writes them, and everything waiting before them, at once.
    func append(_ lines: UnsafeRawBufferPointer, now: Bool) {
        let full = pending.withLock { buffer in
            buffer.append(contentsOf: lines)
            return buffer.count >= Self.batchBytes
        }
        if full || now { flush() }
    }

    /// Writes every line waiting.
    public func flush() {
        writing.withLock { batch in
            pending.withLock { swap(&$0, &batch) }
            guard !batch.isEmpty else { return }
            batch.withUnsafeBytes { writeLine($0, to: fd) }
            batch.removeAll(keepingCapacity: batch.capacity <= 4 * Self.batchBytes)
        }
    }

    /// Starts a thread that writes what is waiting every `interval` seconds.
    func startFlushing(every interval: Double) throws(SystemError) {
        let microseconds = UInt32(max(1_000, min(interval * 1e6, 10e6)))
        try spawnThread(name: "log flush") { [self] in
            while true {
                usleep(microseconds)
                flush()
            }
        }
    }
}
