import Foundation

/// This process's resident set, from `/proc/self/status` (Linux).
enum ProcessMemory {
    /// `VmRSS`: bytes resident now.
    static func resident() throws -> Int { try field("VmRSS") }

    /// `VmHWM`: the most bytes resident at once since start or since `resetPeak()`.
    static func peakResident() throws -> Int { try field("VmHWM") }

    /// Sets `VmHWM` back to the current `VmRSS` (writing 5 to `/proc/self/clear_refs`), so a
    /// peak measured afterwards belongs to what ran afterwards, not to an earlier test.
    static func resetPeak() throws {
        guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else {
            throw TestSetupError("cannot open /proc/self/clear_refs for writing")
        }
        defer { try? handle.close() }
        try handle.write(contentsOf: Array("5".utf8))
    }

    /// A `Name:   1234 kB` line of /proc/self/status, in bytes.
    private static func field(_ name: String) throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count >= 2, let kibibytes = Int(fields[1]) { return kibibytes * 1024 }
        }
        throw TestSetupError("/proc/self/status has no \(name) line")
    }
}
