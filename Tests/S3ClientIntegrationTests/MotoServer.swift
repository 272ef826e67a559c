@testable import S3Client

#if canImport(Glibc)
import Glibc
#endif

/// A real `moto_server` on a free loopback port.
///
/// Started with `start()` and stopped with `stop()` on every path. The suites share two
/// (see `SharedMoto`); each test uses its own buckets, so tests can run in parallel
/// without seeing each other's objects.
final class MotoServer: Sendable {
    let port: UInt16
    private let child: ChildProcess

    var endpoint: String { "127.0.0.1:\(port)" }

    /// `$MOTO_SERVER` (make sets it to the virtual environment's, .venv/bin/moto_server), else
    /// `moto_server` on `PATH`.
    static var program: String {
        if let path = getenv("MOTO_SERVER"), path.pointee != 0 { return String(cString: path) }
        return "moto_server"
    }

    /// Launches moto and waits (up to 30 s) until it accepts connections.
    static func start() async throws -> MotoServer {
        let port = try LoopbackPort.free()
        // moto logs every request; nobody reads it, so it goes nowhere.
        let child = try ChildProcess([program, "-H", "127.0.0.1", "-p", String(port)])
        do {
            try await child.waitUntil(timeout: 30) { LoopbackPort.accepts(port) }
        } catch {
            await child.stop()
            throw error
        }
        return MotoServer(port: port, child: child)
    }

    private init(port: UInt16, child: ChildProcess) {
        self.port = port
        self.child = child
    }

    /// Stops moto (SIGTERM, then SIGKILL after 5 s); every wait is bounded.
    func stop() async {
        await child.stop()
    }

    /// A connection to this server; credentials are moto's defaults unless given.
    func connection(
        credentials: S3Credentials = S3Credentials(accessKey: "testing", secretKey: "testing"),
        addressing: S3Addressing = .path, endpoint: String? = nil
    ) throws -> S3Connection {
        try S3Connection(
            configuration: S3Configuration(
                endpoint: endpoint ?? self.endpoint, credentials: credentials, addressing: addressing,
                connectTimeout: 5, readTimeout: 20))
    }

    /// Turns on SigV4 verification with an IAM user allowed `s3:*`, and returns its key pair.
    ///
    /// moto picks the service from the credential scope of a signed request, so the IAM calls
    /// are signed for `iam` (moto accepts any signature until auth is switched on).
    func enableSignatureVerification() throws -> S3Credentials {
        let connection = try connection()
        let policy = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#
        _ = try iam(connection, ["Action": "CreateUser", "UserName": "gateway"])
        _ = try iam(connection, ["Action": "PutUserPolicy", "UserName": "gateway", "PolicyName": "s3", "PolicyDocument": policy])
        let answer = try iam(connection, ["Action": "CreateAccessKey", "UserName": "gateway"])
        guard let accessKey = S3ErrorDocument.text(of: "AccessKeyId", in: answer),
            let secretKey = S3ErrorDocument.text(of: "SecretAccessKey", in: answer)
        else { throw TestSetupError("CreateAccessKey answer has no key pair") }
        let reset = S3Request(
            method: "POST", path: "/moto-api/reset-auth", host: endpoint, headers: [("Content-Type", "text/plain")],
            retryable: false, label: "POST reset-auth")
        _ = try connection.send(reset, body: Array("0".utf8))
        return S3Credentials(accessKey: accessKey, secretKey: secretKey)
    }

    private func iam(_ connection: S3Connection, _ parameters: [String: String]) throws -> [UInt8] {
        let form = (parameters.merging(["Version": "2010-05-08"]) { $1 })
            .map { "\(S3URIEncoding.component($0.key))=\(S3URIEncoding.component($0.value))" }
            .joined(separator: "&")
        var request = S3Request(
            method: "POST", path: "/", host: endpoint,
            headers: [("Content-Type", "application/x-www-form-urlencoded")],
            retryable: false, label: "IAM \(parameters["Action"] ?? "")")
        request.service = "iam"
        return try connection.send(request, body: Array(form.utf8)).body
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Loopback TCP helpers: a free port, and whether something listens on one.
enum LoopbackPort {
    /// A port the kernel just handed out for 127.0.0.1 and that is closed again.
    static func free() throws -> UInt16 {
        let fd = try listening(backlog: 1)
        defer { close(fd.descriptor) }
        return fd.port
    }

    /// A listening socket on a fresh port that never accepts: connects succeed, nothing answers.
    static func listening(backlog: Int32) throws -> (descriptor: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSetupError("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, backlog) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw TestSetupError("bind/listen on 127.0.0.1:0: errno \(errno)")
        }
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    /// Whether something accepts TCP connections on `127.0.0.1:port`.
    static func accepts(_ port: UInt16) -> Bool {
        guard let fd = try? connect(port) else { return false }
        close(fd)
        return true
    }

    /// A connected TCP socket to `127.0.0.1:port`; the caller closes it.
    static func connect(_ port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSetupError("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        guard connected else {
            let code = errno
            close(fd)
            throw TestSetupError("connect to 127.0.0.1:\(port): errno \(code)")
        }
        return fd
    }
}
