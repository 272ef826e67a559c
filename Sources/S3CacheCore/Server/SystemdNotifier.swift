#if canImport(Glibc)
import Glibc
#endif

/// systemd's notify protocol (`sd_notify(3)`): state lines sent as one datagram to the Unix
/// socket named by `NOTIFY_SOCKET`.
///
/// Implemented here rather than linking libsystemd: the protocol is one `sendto` of a few
/// `KEY=VALUE` lines, stable and documented as such, and the worker then runs the same with or
/// without systemd (the messages go nowhere when `NOTIFY_SOCKET` is unset).
public struct SystemdNotifier: Sendable {
    /// The socket address, or nil when not started by systemd with `Type=notify`.
    private let address: [UInt8]?
    /// Seconds between `WATCHDOG=1` pings (half of `WatchdogSec=`), nil when no watchdog is set.
    public let watchdogInterval: Double?

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment`.
    public init(environment: [String: String]) {
        if let path = environment["NOTIFY_SOCKET"], !path.isEmpty,
           path.hasPrefix("/") || path.hasPrefix("@")
        {
            var bytes = Array(path.utf8)
            if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }  // Linux abstract namespace
            address = bytes.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) ? bytes : nil
        } else {
            address = nil
        }
        let watchdogForUs = environment["WATCHDOG_PID"].flatMap(Int32.init).map { $0 == getpid() } ?? true
        if watchdogForUs, let micros = environment["WATCHDOG_USEC"].flatMap(UInt64.init), micros > 0 {
            watchdogInterval = Double(micros) / 2e6
        } else {
            watchdogInterval = nil
        }
    }

    public var isEnabled: Bool { address != nil }

    /// Sends `state` (for example `READY=1\nSTATUS=serving`). Failures are ignored, as
    /// `sd_notify` callers do: the service must work the same whether anyone listens or not.
    public func notify(_ state: String) {
        guard let address else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var target = sockaddr_un()
        target.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &target.sun_path) { $0.copyBytes(from: address) }
        // The abstract namespace's name is exactly `length` bytes, with no terminating NUL.
        let length = socklen_t(MemoryLayout<sa_family_t>.size + address.count + (address[0] == 0 ? 0 : 1))
        var message = state
        message.withUTF8 { bytes in
            withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    _ = sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0, length)
                }
            }
        }
    }
}
