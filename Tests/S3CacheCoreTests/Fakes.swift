import FastCGI
import Logging
@testable import S3CacheCore
import S3Client

/// An in-memory request: CGI params in, body in, everything written captured.
final class FakeExchange: Exchange {
    var params: [String: String]
    private var body: [UInt8]
    private var bodyOffset = 0
    private(set) var output: [UInt8] = []
    /// Set by `abort()`: the response was broken off, as the pool closes the connection.
    private(set) var aborted = false
    /// Bytes after which writing fails as it does once nginx went away; nil: never.
    var clientLeavesAfter: Int?

    init(method: String, uri: String, params: [String: String] = [:], body: [UInt8] = []) {
        self.params = params.merging(["REQUEST_METHOD": method, "REQUEST_URI": uri]) { $1 }
        self.body = body
    }

    func param(_ name: StaticString) -> String? { params[name.description] }
    func param(named name: String) -> String? { params[name] }
    func rawParam(_ name: StaticString) -> [UInt8]? { params[name.description].map { Array($0.utf8) } }

    func readBody(into buffer: UnsafeMutableRawBufferPointer, idleTimeout: Double) throws -> Int {
        let count = min(buffer.count, body.count - bodyOffset, 1000)
        guard count > 0 else { return 0 }
        body[bodyOffset..<bodyOffset + count].withUnsafeBytes { buffer.copyMemory(from: $0) }
        bodyOffset += count
        return count
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws { try append(bytes) }
    func write(_ text: String) throws { try append(Array(text.utf8)) }
    func flush() throws {}
    func abort() { aborted = true }
    /// Set to make the client look gone to a response about to fetch more.
    var clientClosed = false
    func peerClosed(within seconds: Double) -> Bool { clientClosed }

    private func append(_ bytes: some Collection<UInt8>) throws {
        precondition(!aborted, "written after abort()")
        if let limit = clientLeavesAfter, output.count + bytes.count > limit { throw FastCGIError.clientGone }
        output.append(contentsOf: bytes)
    }

    /// The response split into status, headers and body.
    var response: (status: Int, headers: [String: String], body: [UInt8]) {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = (0...(output.count - separator.count)).first(where: { Array(output[$0..<$0 + 4]) == separator })
        else { return (0, [:], []) }
        let head = String(decoding: output[..<end], as: UTF8.self).split(separator: "\r\n")
        var headers: [String: String] = [:]
        for line in head {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = String(line[line.index(colon, offsetBy: 2)...])
        }
        let status = Int(headers["status"]?.prefix(3) ?? "") ?? 0
        return (status, headers, Array(output[(end + 4)...]))
    }

    var bodyText: String { String(decoding: response.body, as: UTF8.self) }
}

/// An object store in memory, counting calls so tests can prove what never reached S3.
final class FakeStore: ObjectStore {
    struct Object {
        var body: [UInt8]
        var headers: [(name: String, value: String)]
    }
    var objects: [String: Object] = [:]
    private(set) var calls: [String] = []
    /// Keys whose GET breaks off (a reset connection) after this many body bytes.
    var breakAfter: [String: Int] = [:]

    func getObject(
        bucket: String, key: String, headers: [(name: String, value: String)],
        onHead: (S3ResponseHead) throws -> Void, onBody: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> S3ResponseHead {
        calls.append("GET \(bucket)/\(key)")
        guard let object = objects["\(bucket)/\(key)"] else { throw S3Error.service(status: 404, code: "NoSuchKey", message: nil, requestID: nil) }
        let head = S3ResponseHead(status: 200, headers: object.headers)
        try onHead(head)
        if let sent = breakAfter["\(bucket)/\(key)"] {
            try object.body[..<sent].withUnsafeBytes { try onBody($0) }
            throw S3Error.transport(message: "connection reset after \(sent) bytes")
        }
        try object.body.withUnsafeBytes { try onBody($0) }
        return head
    }

    func headObject(bucket: String, key: String, headers: [(name: String, value: String)]) throws -> S3ResponseHead {
        calls.append("HEAD \(bucket)/\(key)")
        guard let object = objects["\(bucket)/\(key)"] else { throw S3Error.service(status: 404, code: nil, message: nil, requestID: nil) }
        return S3ResponseHead(status: 200, headers: object.headers)
    }

    func putObject(
        bucket: String, key: String, contentLength: Int64, headers: [(name: String, value: String)],
        payloadSHA256: String?, body: (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws -> S3ResponseHead {
        calls.append("PUT \(bucket)/\(key)")
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Int64(received.count) < contentLength {
            let count = try buffer.withUnsafeMutableBytes { try body($0) }
            if count == 0 { throw S3Error.aborted(message: "short body") }
            received += buffer[..<count]
        }
        let contentType = headers.first { $0.name == "Content-Type" }?.value ?? ""
        objects["\(bucket)/\(key)"] = Object(
            body: received,
            headers: [("Content-Type", contentType), ("Content-Length", String(received.count)), ("ETag", "\"e\(received.count)\""),
                      ("Last-Modified", "Wed, 25 Nov 2026 06:00:00 GMT"), ("x-amz-request-id", "hidden")])
        return S3ResponseHead(status: 200, headers: [("ETag", "\"e\(received.count)\"")])
    }

    func deleteObject(bucket: String, key: String, headers: [(name: String, value: String)]) throws -> S3ResponseHead {
        calls.append("DELETE \(bucket)/\(key)")
        objects["\(bucket)/\(key)"] = nil
        return S3ResponseHead(status: 204, headers: [])
    }

    /// Buckets that answer HEAD; any other bucket is NoSuchBucket.
    var buckets: Set<String> = ["public", "private", "local"]

    func headBucket(bucket: String) throws -> S3ResponseHead {
        calls.append("HEAD \(bucket)")
        guard buckets.contains(bucket) else { throw S3Error.service(status: 404, code: "NoSuchBucket", message: nil, requestID: nil) }
        return S3ResponseHead(status: 200, headers: [])
    }
}

func makeGateway(store: FakeStore, environment: [String: String] = [:]) throws -> Gateway {
    let configuration = try testConfiguration(environment)
    return Gateway(
        configuration: configuration, connection: store, shared: quietShared(configuration),
        logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
}

/// The configuration `environment` gives, with the file tier off unless it names a `CACHE_DIR`:
/// the default, /var/cache/s3cache, is the installed service's.
func testConfiguration(_ environment: [String: String] = [:]) throws -> Configuration {
    try Configuration.load(from: ["CACHE_DIR": ""].merging(environment) { $1 })
}

/// Shared state whose access log is off, so unit tests do not write request lines to stdout.
/// A configuration left with the default `CACHE_DIR` runs without a file tier.
func quietShared(_ configuration: Configuration, readinessInterval: Double = 3) -> SharedState {
    var configuration = configuration
    if configuration.cacheDirectory == "/var/cache/s3cache" { configuration.cacheDirectory = "" }
    return SharedState(configuration: configuration, logLevel: LogLevelSetting(.critical), readinessInterval: readinessInterval)
}
