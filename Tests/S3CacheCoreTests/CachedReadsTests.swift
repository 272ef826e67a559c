import Gzip
import Logging
import ObjectCache
@testable import S3CacheCore
import S3Client
import Testing

/// An object store that answers the way S3 does where it matters to the cache: it honours
/// `Range`, `If-Match` and `If-None-Match`, puts an unsatisfiable range's length only in its XML
/// error (not in a header), and ignores `If-Range`.
final class S3LikeStore: ObjectStore {
    struct Object {
        var body: [UInt8]
        var etag: String
    }

    var objects: [String: Object] = [:]
    /// The headers of every GET, in order.
    private(set) var gets: [[(name: String, value: String)]] = []
    /// Runs once S3 has decided what a GET answers and before the answer arrives (the old body
    /// is on its way): a test makes a write happen in that window.
    var beforeAnswer: (() -> Void)?
    static let lastModified = "Wed, 25 Nov 2026 06:00:00 GMT"

    func getObject(
        bucket: String, key: String, headers: [(name: String, value: String)],
        onHead: (S3ResponseHead) throws -> Void, onBody: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> S3ResponseHead {
        gets.append(headers)
        let header = { (name: String) in headers.first { $0.name.lowercased() == name.lowercased() }?.value }
        guard let object = objects["\(bucket)/\(key)"] else { throw S3Error.service(status: 404, code: "NoSuchKey", message: nil, requestID: nil) }
        if let ifMatch = header("If-Match"), ifMatch != object.etag {
            throw S3Error.service(status: 412, code: "PreconditionFailed", message: nil, requestID: nil)
        }
        var fields = [("Content-Type", "text/plain"), ("ETag", object.etag), ("Last-Modified", Self.lastModified)]
        if header("If-None-Match") == object.etag {
            let head = S3ResponseHead(status: 304, headers: fields)
            answer()
            try onHead(head)
            return head
        }
        var status = 200, slice = 0..<object.body.count
        switch ByteRange.parse(header("Range"), length: object.body.count) {
        case .whole: break
        case .unsatisfiable: throw S3Error.service(status: 416, code: "InvalidRange", message: nil, requestID: nil)
        case let .partial(start, end):
            status = 206
            slice = start..<end + 1
            fields.append(("Content-Range", "bytes \(start)-\(end)/\(object.body.count)"))
        }
        fields.append(("Content-Length", String(slice.count)))
        let head = S3ResponseHead(status: status, headers: fields)
        let body = Array(object.body[slice])
        answer()
        try onHead(head)
        try body.withUnsafeBytes { try onBody($0) }
        return head
    }

    private func answer() {
        let hook = beforeAnswer
        beforeAnswer = nil
        hook?()
    }

    func headObject(bucket: String, key: String, headers: [(name: String, value: String)]) throws -> S3ResponseHead {
        guard let object = objects["\(bucket)/\(key)"] else { throw S3Error.service(status: 404, code: nil, message: nil, requestID: nil) }
        return S3ResponseHead(
            status: 200, headers: [("Content-Type", "text/plain"), ("Content-Length", String(object.body.count)), ("ETag", object.etag)])
    }

    func putObject(
        bucket: String, key: String, contentLength: Int64, headers: [(name: String, value: String)],
        payloadSHA256: String?, body: (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws -> S3ResponseHead {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Int64(received.count) < contentLength {
            let count = try buffer.withUnsafeMutableBytes { try body($0) }
            received += buffer[..<count]
        }
        let etag = "\"\(String(decoding: received.prefix(8), as: UTF8.self))-\(received.count)\""
        objects["\(bucket)/\(key)"] = Object(body: received, etag: etag)
        return S3ResponseHead(status: 200, headers: [("ETag", etag)])
    }

    func deleteObject(bucket: String, key: String, headers: [(name: String, value: String)]) throws -> S3ResponseHead {
        objects["\(bucket)/\(key)"] = nil
        return S3ResponseHead(status: 204, headers: [])
    }

    func headBucket(bucket: String) throws -> S3ResponseHead { S3ResponseHead(status: 200, headers: []) }
}

@Suite struct CachedReadsTests {
    private let digits = Array(String(repeating: "0123456789", count: 10).utf8)

    private func gateway(_ store: S3LikeStore, clock: ManualClock = ManualClock(), _ environment: [String: String] = [:]) throws -> Gateway {
        let configuration = try testConfiguration(environment)
        return Gateway(
            configuration: configuration, connection: store,
            shared: SharedState(configuration: configuration, logLevel: LogLevelSetting(.critical), clock: clock),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    private func get(_ gateway: Gateway, _ uri: String, _ params: [String: String] = [:]) -> FakeExchange {
        let exchange = FakeExchange(method: "GET", uri: uri, params: params)
        gateway.handle(exchange)
        return exchange
    }

    private func put(_ gateway: Gateway, _ uri: String, _ text: String) -> FakeExchange {
        let exchange = FakeExchange(method: "PUT", uri: uri, params: ["CONTENT_LENGTH": String(text.utf8.count)], body: Array(text.utf8))
        gateway.handle(exchange)
        return exchange
    }

    @Test func ifRangeIsHonouredOnARangeThatS3Answers() throws {
        let store = S3LikeStore()
        store.objects["public/d"] = .init(body: digits, etag: "\"v1\"")
        let gateway = try gateway(store)
        let current = get(gateway, "/objects/public/d", ["HTTP_RANGE": "bytes=0-9", "HTTP_IF_RANGE": "\"v1\""])
        #expect(current.response.status == 206)
        #expect(current.response.body == Array(digits[0..<10]))
        for outdated in ["\"v0\"", "W/\"v1\"", "Tue, 24 Nov 2026 06:00:00 GMT"] {
            let whole = get(gateway, "/objects/public/d", ["HTTP_RANGE": "bytes=0-9", "HTTP_IF_RANGE": outdated])
            #expect(whole.response.status == 200, "If-Range \(outdated)")
            #expect(whole.response.body == digits, "If-Range \(outdated)")
        }
        #expect(store.gets.allSatisfy { headers in !headers.contains { $0.name == "If-Range" } }, "S3 ignores If-Range: never rely on it")
    }

    @Test func anUnsatisfiableRangeThatS3RefusesSaysHowLongTheObjectIs() throws {
        let store = S3LikeStore()
        store.objects["public/d"] = .init(body: digits, etag: "\"v1\"")
        let reply = get(try gateway(store), "/objects/public/d", ["HTTP_RANGE": "bytes=100-"])
        #expect(reply.response.status == 416)
        #expect(reply.response.headers["content-range"] == "bytes */100")
    }

    @Test func aFetchThatReadTheOldVersionBeforeAPutIsNeverStored() throws {
        let store = S3LikeStore()
        store.objects["local/k"] = .init(body: Array("old version".utf8), etag: "\"old\"")
        let gateway = try gateway(store)
        store.beforeAnswer = { #expect(put(gateway, "/objects/local/k", "new version").response.status == 200) }
        #expect(get(gateway, "/objects/local/k").bodyText == "old version", "this GET started before the write")
        #expect(get(gateway, "/objects/local/k").bodyText == "new version")
        #expect(store.gets.count == 2)
        #expect(get(gateway, "/objects/local/k").bodyText == "new version")
    }

    @Test func aRevalidationThatS3AnsweredBeforeAPutDoesNotRenewTheOldEntry() throws {
        let store = S3LikeStore()
        store.objects["local/k"] = .init(body: Array("old version".utf8), etag: "\"old\"")
        let clock = ManualClock()
        let gateway = try gateway(store, clock: clock, ["CACHE_TTL": "10"])
        #expect(get(gateway, "/objects/local/k").bodyText == "old version")
        clock.advance(by: 11)
        store.beforeAnswer = { #expect(put(gateway, "/objects/local/k", "new version").response.status == 200) }
        let revalidated = get(gateway, "/objects/local/k")
        #expect(revalidated.response.headers["x-cache"] == "REVALIDATED")
        #expect(store.gets.last?.contains { $0.name == "If-None-Match" && $0.value == "\"old\"" } == true)
        #expect(get(gateway, "/objects/local/k").bodyText == "new version")
    }

    @Test func aDeleteDuringAFetchLeavesNothingBehind() throws {
        let store = S3LikeStore()
        store.objects["local/k"] = .init(body: Array("doomed".utf8), etag: "\"d\"")
        let gateway = try gateway(store)
        store.beforeAnswer = {
            let delete = FakeExchange(method: "DELETE", uri: "/objects/local/k")
            gateway.handle(delete)
            #expect(delete.response.status == 204)
        }
        #expect(get(gateway, "/objects/local/k").bodyText == "doomed")
        #expect(get(gateway, "/objects/local/k").response.status == 404)
    }
}

@Suite struct StoredFormTests {
    @Test func aCompressedBodyHoldsNoMoreMemoryThanItsLength() throws {
        let text = Array((0..<20_000).map { "{\"id\": \($0), \"name\": \"item\"}\n" }.joined().utf8)
        let head = S3ResponseHead(status: 200, headers: [("Content-Type", "application/json"), ("ETag", "\"e\"")])
        let object = CacheFill.makeObject(body: text, head: head)
        #expect(object.isCompressed)
        #expect(object.body.count * 4 < text.count)
        // What the array allocated, not only what it counts, is what the cache keeps alive.
        #expect(object.body.capacity < object.body.count + 4096, "capacity \(object.body.capacity) for \(object.body.count) bytes")
        #expect(object.cost < text.count / 4)
        #expect(try object.body.withUnsafeBytes { try Gzip.decompress($0, limit: 1 << 30) } == text)
    }
}
