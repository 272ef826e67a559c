#if canImport(Glibc)
import Glibc
#endif
@testable import S3CacheCore
import Testing

@Suite struct SystemdNotifierTests {
    @Test func sendsStateLinesToTheNotifySocket() throws {
        let path = "/tmp/s3cache-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd); unlink(path) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)

        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"])
        #expect(notifier.isEnabled)
        #expect(notifier.watchdogInterval == 15)
        notifier.notify("READY=1\nSTATUS=serving")
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        #expect(String(decoding: buffer[..<max(0, count)], as: UTF8.self) == "READY=1\nSTATUS=serving")
    }

    @Test func withoutSystemdNothingIsSentAndNoWatchdogRuns() {
        let notifier = SystemdNotifier(environment: ["WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"])
        #expect(!notifier.isEnabled)
        #expect(notifier.watchdogInterval == nil, "the watchdog belongs to another process")
        notifier.notify("READY=1")
    }
}
