import CLinux
@testable import FastCGI
import Platform
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// Parses FastCGI records from `bytes`: (type, request id, content) of each.
private func records(_ bytes: [UInt8]) -> [(type: UInt8, requestID: UInt16, content: [UInt8])] {
    var result: [(UInt8, UInt16, [UInt8])] = []
    var offset = 0
    while offset + 8 <= bytes.count {
        let type = bytes[offset + 1]
        let id = UInt16(bytes[offset + 2]) << 8 | UInt16(bytes[offset + 3])
        let length = Int(bytes[offset + 4]) << 8 | Int(bytes[offset + 5])
        let padding = Int(bytes[offset + 6])
        guard offset + 8 + length + padding <= bytes.count else { break }
        result.append((type, id, Array(bytes[(offset + 8)..<(offset + 8 + length)])))
        offset += 8 + length + padding
    }
    #expect(offset == bytes.count, "trailing bytes after the last whole record")
    return result
}

/// A fresh directory under /tmp, for a test's Unix socket.
private func temporaryDirectory(_ prefix: String) throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    return try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) })
}

/// A client connection to the Unix socket at `path`.
private func connectUnix(to path: String) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        let bytes = Array(path.utf8)
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let status = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    #expect(status == 0)
    return fd
}

@Suite struct RecordWriterTests {
    @Test(arguments: [1, 65_528, 65_529, 1 << 20, 3 * 65_528 * 16 + 5])
    func aBodyGoesOutAsStdoutRecordsWhateverTheWritesAccept(size: Int) throws {
        var pair: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer { close(pair[0]) }
        // A small send buffer: writev accepts part of what it is given, again and again.
        var small: Int32 = 4096
        setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        let body = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let reader = pair[1]
        let received = ReceivedBytes()
        var thread = pthread_t()
        let box = Unmanaged.passRetained(ReaderBox(fd: reader, sink: received)).toOpaque()
        #expect(pthread_create(&thread, nil, { raw in
            let box = Unmanaged<ReaderBox>.fromOpaque(raw!).takeRetainedValue()
            var buffer = [UInt8](repeating: 0, count: 1000)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(box.fd, $0.baseAddress, $0.count) }
                if count <= 0 { break }
                box.sink.append(buffer[..<count])
            }
            close(box.fd)
            return nil
        }, box) == 0)
        try body.withUnsafeBytes { try RecordWriter.writeStandardOutput($0, requestID: 0x1234, to: pair[0]) }
        shutdown(pair[0], Int32(SHUT_WR))
        pthread_join(thread, nil)
        let parsed = records(received.bytes)
        #expect(parsed.allSatisfy { $0.type == 6 && $0.requestID == 0x1234 && $0.content.count <= RecordWriter.maxRecordContent })
        #expect(parsed.flatMap(\.content) == body)
    }
}

private final class ReceivedBytes: @unchecked Sendable {
    private var storage: [UInt8] = []
    private var lock = pthread_mutex_t()
    init() { pthread_mutex_init(&lock, nil) }
    func append(_ bytes: ArraySlice<UInt8>) {
        pthread_mutex_lock(&lock)
        storage += bytes
        pthread_mutex_unlock(&lock)
    }
    var bytes: [UInt8] {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return storage
    }
}

private final class ReaderBox: Sendable {
    let fd: Int32
    let sink: ReceivedBytes
    init(fd: Int32, sink: ReceivedBytes) {
        self.fd = fd
        self.sink = sink
    }
}

@Suite struct ParameterTextTests {
    private func decode(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBufferPointer { ParameterText.decode($0) }
    }

    @Test func validUTF8IsTakenAsItIs() {
        #expect(decode(Array("/objects/b/café ☃".utf8)) == "/objects/b/café ☃")
        #expect(decode([]) == "")
    }

    @Test func invalidBytesAreEscapedOneByOneAndDistinct() {
        #expect(decode([0x61, 0xFF]) == "a%FF")
        #expect(decode([0x61, 0xFE]) == "a%FE")
        #expect(decode([0xC3]) == "%C3")                  // a lead byte without its continuation
        #expect(decode([0xE2, 0x98, 0x41]) == "%E2%98A")  // a truncated sequence, then ASCII
        #expect(decode([0x63, 0x61, 0x66, 0xE9]) == "caf%E9")
    }
}

@Suite struct ListenAddressTests {
    @Test func pathsAndHostPortsParse() {
        #expect(ListenAddress.parse("/run/s3cache/s3cache.sock", socketMode: 0o660) == .unix(path: "/run/s3cache/s3cache.sock", mode: 0o660))
        #expect(ListenAddress.parse("127.0.0.1:9000", socketMode: 0o660) == .tcp(host: "127.0.0.1", port: 9000))
        #expect(ListenAddress.parse(":9000", socketMode: 0o660) == .tcp(host: "0.0.0.0", port: 9000))
        #expect(ListenAddress.parse("[::1]:9000", socketMode: 0o660) == .tcp(host: "::1", port: 9000))
    }

    @Test(arguments: ["", "host", "host:0", "host:65536", "host:x", "host:-1", "host:99999999999999999999"])
    func nonsenseIsRefused(_ text: String) {
        #expect(ListenAddress.parse(text, socketMode: 0o660) == nil)
    }
}

@Suite struct ConnectionParkTests {
    /// A listening Unix socket in a fresh directory, non-blocking as the pool sets it.
    private func listeningSocket() throws -> (fd: Int32, path: String, directory: String) {
        let directory = try temporaryDirectory("s3cache-park")
        let path = directory + "/s.sock"
        let listen = try ListenSocket.open(.unix(path: path, mode: 0o600), backlog: 16)
        _ = fcntl(listen.fd, F_SETFL, fcntl(listen.fd, F_GETFL) | O_NONBLOCK)
        return (listen.fd, path, directory)
    }

    @Test func aParkedConnectionIsReportedOnceWhenItsRequestArrivesAndAgainOnlyAfterParkingAnew() throws {
        let (listenFD, path, directory) = try listeningSocket()
        defer {
            close(listenFD)
            unlink(path)
            rmdir(directory)
        }
        let park = try ConnectionPark(listenFD: listenFD)
        var mask = sigset_t()
        pthread_sigmask(SIG_BLOCK, nil, &mask)

        let client = connectUnix(to: path)
        defer { close(client) }
        guard case .newConnection = park.wait(mask: &mask) else {
            Issue.record("a connection waiting to be accepted is reported")
            return
        }
        let server = try #require(try park.acceptConnection())
        #expect(try park.acceptConnection() == nil, "nothing else is waiting")
        try park.park(server)

        #expect(write(client, "one", 3) == 3)
        guard case let .request(fd, isNew) = park.wait(mask: &mask), !isNew else {
            Issue.record("a parked connection with data is reported")
            return
        }
        #expect(fd == server)
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(read(server, &buffer, 16) == 3)

        // One-shot: more data is not reported until the connection is parked again.
        #expect(write(client, "two", 3) == 3)
        try park.park(server)
        guard case let .request(again, _) = park.wait(mask: &mask) else {
            Issue.record("a connection parked again is reported again")
            return
        }
        #expect(again == server)
        #expect(read(server, &buffer, 16) == 3)

        // A connection accepted with its request unread is reported as new, and a drain's
        // closing of idle connections leaves it to be served; the idle one is closed.
        let secondClient = connectUnix(to: path)
        defer { close(secondClient) }
        #expect(write(secondClient, "new", 3) == 3)
        let fresh = try #require(try park.acceptConnection())
        try park.park(server)
        try park.parkNew(fresh)
        #expect(park.hasFresh)
        park.closeIdle()
        #expect(read(client, &buffer, 16) == 0, "the idle connection is closed")
        guard case let .request(taken, isNew) = park.wait(mask: &mask) else {
            Issue.record("the fresh connection is reported")
            return
        }
        #expect(taken == fresh && isNew)
        #expect(!park.hasFresh)
        #expect(read(fresh, &buffer, 16) == 3)

        // At the end every parked connection closes: the client sees its end close.
        try park.park(fresh)
        park.closeAll()
        #expect(read(secondClient, &buffer, 16) == 0)
    }
}

@Suite(.serialized) struct WorkerPoolGrowthTests {
    /// One FastCGI request (responder role, connection not kept) with `params`, and no body.
    private func requestBytes(_ params: [(String, String)]) -> [UInt8] {
        func record(_ type: UInt8, _ content: [UInt8]) -> [UInt8] {
            [1, type, 0, 1, UInt8(content.count >> 8), UInt8(content.count & 0xff), 0, 0] + content
        }
        var pairs: [UInt8] = []
        for (name, value) in params {
            pairs += [UInt8(name.utf8.count), UInt8(value.utf8.count)] + Array(name.utf8) + Array(value.utf8)
        }
        return record(1, [0, 1, 0, 0, 0, 0, 0, 0]) + record(4, pairs) + record(4, []) + record(5, [])
    }

    private func send(_ bytes: [UInt8], to path: String) -> Int32 {
        let fd = connectUnix(to: path)
        #expect(bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count)
        return fd
    }

    /// Everything the worker sent on `fd` until it closed the connection.
    private func answer(_ fd: Int32) -> [UInt8] {
        defer { close(fd) }
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { return all }
            all += buffer[..<count]
        }
    }

    private func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = monotonicSeconds() + seconds
        while monotonicSeconds() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    @Test func thePoolGrowsWhileRequestsWaitAndShrinksBackAfter() throws {
        let directory = try temporaryDirectory("s3cache-pool")
        let path = directory + "/s.sock"
        defer {
            unlink(path)
            rmdir(directory)
        }
        let listen = try ListenSocket.open(.unix(path: path, mode: 0o600), backlog: 16)
        defer { close(listen.fd) }
        // Waiting requests block on this pipe until the test writes one byte per request.
        var release: [Int32] = [0, 0]
        #expect(pipe(&release) == 0)
        defer {
            close(release[0])
            close(release[1])
        }
        let releaseFD = release[0]
        let pool = WorkerPool(
            listen: listen, threads: 2, maxThreads: 5, reserve: 1, reportError: { _ in },
            makeHandler: {
                { request in
                    if request.param("WAIT") != nil {
                        WorkerPool.blocking {
                            var byte: UInt8 = 0
                            _ = Glibc.read(releaseFD, &byte, 1)
                        }
                    }
                    try? request.write("Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nanswered")
                }
            })
        try pool.start()
        defer { _ = pool.drain(timeout: 5) }

        // Six requests wait: the pool grows from 2 to its 5, keeping one thread free while it can.
        let waiting = (0..<6).map { _ in send(requestBytes([("WAIT", "1")]), to: path) }
        #expect(waitUntil(5) { pool.blocked == 5 && pool.running == 5 }, "running \(pool.running), blocked \(pool.blocked)")
        // At its largest, with every thread waiting, a request that does not wait must queue.
        let queued = send(requestBytes([]), to: path)
        usleep(200_000)
        #expect(pool.running == 5)

        #expect(Glibc.write(release[1], [UInt8](repeating: 1, count: 6), 6) == 6)
        for fd in waiting + [queued] {
            #expect(String(decoding: answer(fd), as: UTF8.self).contains("answered"))
        }
        // Idle for the surplus wait, the threads started for the waits end; the pool keeps its two.
        #expect(waitUntil(Double(WorkerPool.surplusIdleMilliseconds) / 1000 + 3) { pool.running == 2 }, "running \(pool.running)")
        #expect(pool.blocked == 0)
        #expect(String(decoding: answer(send(requestBytes([]), to: path)), as: UTF8.self).contains("answered"))
    }

    @Test func outsideAPoolBlockingJustRunsItsBody() throws {
        struct Marker: Error {}
        #expect(WorkerPool.blocking { 42 } == 42)
        #expect(throws: Marker.self) { try WorkerPool.blocking { () throws(Marker) in throw Marker() } }
    }
}
