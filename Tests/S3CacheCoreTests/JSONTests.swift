#if canImport(Glibc)
import Glibc
#endif
@testable import S3CacheCore
import Testing

@Suite struct JSONTests {
    @Test func stringsAreEscapedForOneLine() {
        let text = JSON.object([("k", .string("a\"b\\c\nd\u{01}e\u{2028}f"))])
        #expect(text == "{\"k\":\"a\\\"b\\\\c\\nd\\u0001e\\u2028f\"}")
        #expect(!text.contains("\n"))
    }

    @Test func numbersAndNesting() {
        #expect(JSON.object([("n", .int(-3)), ("b", .bool(true)), ("o", .object([("z", .null)]))]) == "{\"n\":-3,\"b\":true,\"o\":{\"z\":null}}")
    }
}

@Suite struct AccessLogTests {
    @Test func writesOneParsableLineWithTheRequestFields() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let output = LogOutput(fd: fds[1])
        let log = AccessLog(level: LogLevelSetting(.info), output: output)
        #expect(log.isEnabled(.info))
        log.write(AccessLog.Entry(
            method: "GET", status: 200, elapsedNanoseconds: 1_234_567, bytesSent: 42, remoteAddress: "127.0.0.1",
            userAgent: "curl/8 \"quoted\"\n\u{2028}", requestID: "abc", bucket: "public", key: "a/b.txt", path: nil,
            cache: "HIT", error: nil, severity: .info))
        output.flush()   // an info line waits for the next batch
        close(fds[1])
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
        let line = String(decoding: buffer[..<count], as: UTF8.self)
        #expect(line.hasSuffix("}\n"))
        #expect(line.filter { $0 == "\n" }.count == 1, "one line, whatever the fields hold")
        #expect(line.hasPrefix(#"{"time":""#))
        #expect(line.contains(#""level":"info","msg":"request","bytes_sent":42,"bucket":"public","cache":"HIT","duration_ms":1.235,"#))
        #expect(line.contains(#""key":"a/b.txt","method":"GET","remote_addr":"127.0.0.1","request_id":"abc","status":200,"#))
        #expect(line.contains(#""user_agent":"curl/8 \"quoted\"\n\u2028"}"#))
    }

    @Test func infoLinesWaitForABatchAndAServerFaultWritesEverythingInOrder() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        let output = LogOutput(fd: fds[1])
        let log = AccessLog(level: LogLevelSetting(.info), output: output)
        func entry(_ status: Int, fault: Bool) -> AccessLog.Entry {
            AccessLog.Entry(
                method: "GET", status: status, elapsedNanoseconds: 1, bytesSent: 0, remoteAddress: "127.0.0.1",
                userAgent: "t", requestID: nil, bucket: nil, key: nil, path: nil, cache: nil, error: nil,
                severity: fault ? .serverFault : .info)
        }
        func readAll() -> String {
            var buffer = [UInt8](repeating: 0, count: 65536)
            let count = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : ""
        }
        log.write(entry(200, fault: false))
        log.write(entry(201, fault: false))
        #expect(readAll() == "", "info lines wait for the batch")
        log.write(entry(502, fault: true))
        let lines = readAll().split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.map { $0.contains(#""status":200"#) } == [true, false, false])
        #expect(lines.map { $0.contains(#""status":201"#) } == [false, true, false])
        #expect(lines[2].contains(#""level":"error""#) && lines[2].contains(#""status":502"#))
        // A full batch is written by the thread that filled it.
        while readAll().isEmpty { log.write(entry(200, fault: false)) }
        close(fds[1])
    }

    @Test func infoLinesFollowTheLevelButServerFaultsAlwaysShow() {
        let log = AccessLog(level: LogLevelSetting(.warning))
        #expect(!log.isEnabled(.info))
        #expect(log.isEnabled(.refusal))
        #expect(log.isEnabled(.serverFault))
        #expect(!AccessLog(level: LogLevelSetting(.error)).isEnabled(.refusal))
    }

    @Test(arguments: [(0, "0"), (999, "0.001"), (1_000_000, "1"), (12_340_000, "12.34"), (5_000_499, "5")] as [(Int64, String)])
    func durationsAreMillisecondsWithMicrosecondResolution(nanoseconds: Int64, expected: String) {
        var bytes: [UInt8] = []
        AccessLog.appendMilliseconds(nanoseconds, to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == expected)
    }
}
