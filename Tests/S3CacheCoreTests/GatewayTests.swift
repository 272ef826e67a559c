import Gzip
@testable import S3CacheCore
import S3Client
import Testing

@Suite struct GatewayTests {
    private func serve(_ exchange: FakeExchange, store: FakeStore, environment: [String: String] = [:]) throws -> FakeExchange {
        try makeGateway(store: store, environment: environment).handle(exchange)
        return exchange
    }

    @Test func putThenGetAndHeadShareHeaders() throws {
        let store = FakeStore()
        let put = try serve(FakeExchange(method: "PUT", uri: "/objects/private/docs/a.json",
                                          params: ["CONTENT_LENGTH": "13"], body: Array("{\"hello\": 1}\n".utf8)), store: store)
        #expect(put.response.status == 200)
        #expect(put.response.headers["etag"] == "\"e13\"")
        #expect(put.bodyText.contains("\"size\":13"))
        #expect(store.objects["private/docs/a.json"]?.headers.first?.value == "application/json")

        let get = try serve(FakeExchange(method: "GET", uri: "/objects/private/docs/a.json"), store: store)
        #expect(get.response.status == 200)
        #expect(get.bodyText == "{\"hello\": 1}\n")
        #expect(get.response.headers["x-amz-request-id"] == nil, "S3-internal headers must not leak")

        let head = try serve(FakeExchange(method: "HEAD", uri: "/objects/private/docs/a.json"), store: store)
        // Same headers as GET; only the cache's report differs (the GET stored the object in its cache, HEAD never does).
        let withoutReport = { (headers: [String: String]) in headers.filter { $0.key != "cache-status" } }
        #expect(withoutReport(head.response.headers) == withoutReport(get.response.headers))
        #expect(head.response.body.isEmpty)
    }

    @Test func refusalsHappenBeforeAnyBackendCall() throws {
        let store = FakeStore()
        let cases: [(String, String, Int, String)] = [
            ("PUT", "/objects/public/x", 403, "forbidden"),
            ("DELETE", "/objects/public/x", 403, "forbidden"),
            ("HEAD", "/objects/secret/x", 403, "forbidden"),
            ("GET", "/objects/secret/x", 403, "forbidden"),
            ("GET", "/objects/public/../private/x", 400, "invalid_object"),
            ("POST", "/objects/public/x", 405, "method_not_allowed"),
            ("PATCH", "/objects/public/../private/x", 405, "method_not_allowed"),
            ("GET", "/nothing-here", 404, "not_found"),
        ]
        for (method, uri, status, code) in cases {
            let exchange = try serve(FakeExchange(method: method, uri: uri, params: ["CONTENT_LENGTH": "0"]), store: store)
            #expect(exchange.response.status == status, "\(method) \(uri)")
            #expect(exchange.response.headers["content-type"] == "application/json")
            if method != "HEAD" { #expect(exchange.bodyText.contains("\"error\":\"\(code)\""), "\(method) \(uri)") }
        }
        #expect(store.calls.isEmpty)
        let post = try serve(FakeExchange(method: "POST", uri: "/objects/public/x"), store: store)
        #expect(post.response.headers["allow"] == "GET, HEAD, PUT, DELETE, PURGE")
    }

    @Test func missingObjectsAre404() throws {
        let store = FakeStore()
        #expect(try serve(FakeExchange(method: "GET", uri: "/objects/public/none"), store: store).response.status == 404)
        #expect(try serve(FakeExchange(method: "HEAD", uri: "/objects/public/none"), store: store).response.status == 404)
        let delete = try serve(FakeExchange(method: "DELETE", uri: "/objects/private/none"), store: store)
        #expect(delete.response.status == 404)
        #expect(!store.calls.contains("DELETE private/none"), "a missing key is never deleted")
    }

    @Test func deleteAnswers204() throws {
        let store = FakeStore()
        store.objects["local/k"] = .init(body: [1], headers: [])
        #expect(try serve(FakeExchange(method: "DELETE", uri: "/objects/local/k"), store: store).response.status == 204)
        #expect(store.objects["local/k"] == nil)
    }

    @Test func contentTypeIsKeptOrGuessed() throws {
        let store = FakeStore()
        _ = try serve(FakeExchange(method: "PUT", uri: "/objects/local/page.html",
                                   params: ["CONTENT_LENGTH": "1", "CONTENT_TYPE": "text/x-custom"], body: [65]), store: store)
        _ = try serve(FakeExchange(method: "PUT", uri: "/objects/local/notes.txt", params: ["CONTENT_LENGTH": "1"], body: [65]), store: store)
        _ = try serve(FakeExchange(method: "PUT", uri: "/objects/local/blob", params: ["CONTENT_LENGTH": "1"], body: [65]), store: store)
        #expect(store.objects["local/page.html"]?.headers.first?.value == "text/x-custom")
        #expect(store.objects["local/notes.txt"]?.headers.first?.value == "text/plain; charset=utf-8")
        #expect(store.objects["local/blob"]?.headers.first?.value == "application/octet-stream")
    }

    @Test func gzipBodiesAreStoredInflated() throws {
        let store = FakeStore()
        let original = Array(String(repeating: "compress me ", count: 1000).utf8)
        let compressed = try original.withUnsafeBytes { try Gzip.compress($0) }
        let put = try serve(FakeExchange(method: "PUT", uri: "/objects/local/big.txt",
                                          params: ["CONTENT_LENGTH": String(compressed.count), "HTTP_CONTENT_ENCODING": "gzip"],
                                          body: compressed), store: store)
        #expect(put.response.status == 200)
        #expect(store.objects["local/big.txt"]?.body == original)
    }

    @Test func gzipBombIs413AndStoresNothing() throws {
        let store = FakeStore()
        let zeros = [UInt8](repeating: 0, count: 3 << 20)
        let bomb = try zeros.withUnsafeBytes { try Gzip.compress($0, level: 9) }
        let put = try serve(FakeExchange(method: "PUT", uri: "/objects/local/bomb", params: ["HTTP_CONTENT_ENCODING": "gzip"], body: bomb),
                            store: store, environment: ["MAX_UPLOAD_SIZE": "1M"])
        #expect(put.response.status == 413)
        #expect(store.calls.isEmpty)
    }

    @Test func corruptGzipIs400() throws {
        let store = FakeStore()
        let put = try serve(FakeExchange(method: "PUT", uri: "/objects/local/bad", params: ["HTTP_CONTENT_ENCODING": "gzip"],
                                          body: Array("not gzip at all".utf8)), store: store)
        #expect(put.response.status == 400)
        #expect(store.calls.isEmpty)
    }

    @Test func uploadLimitsAndLengths() throws {
        let store = FakeStore()
        #expect(try serve(FakeExchange(method: "PUT", uri: "/objects/local/a"), store: store).response.status == 411)
        #expect(try serve(FakeExchange(method: "PUT", uri: "/objects/local/a", params: ["CONTENT_LENGTH": "2000000"]),
                          store: store, environment: ["MAX_UPLOAD_SIZE": "1M"]).response.status == 413)
        #expect(try serve(FakeExchange(method: "PUT", uri: "/objects/local/a", params: ["CONTENT_LENGTH": "1", "HTTP_CONTENT_ENCODING": "br"]),
                          store: store).response.status == 415)
        #expect(store.calls.isEmpty)
        // A body shorter than its Content-Length aborts the upload: nothing is stored.
        let short = try serve(FakeExchange(method: "PUT", uri: "/objects/local/a", params: ["CONTENT_LENGTH": "10"], body: [1, 2, 3]), store: store)
        #expect(short.response.status == 400)
        #expect(store.objects["local/a"] == nil)
    }

    @Test func backendFailuresMapToGatewayStatuses() {
        #expect(HTTPError(backend: .service(status: 403, code: "AccessDenied", message: "x", requestID: nil)).status == 502)
        #expect(HTTPError(backend: .service(status: 403, code: "SignatureDoesNotMatch", message: nil, requestID: nil)).code == "backend_denied")
        #expect(HTTPError(backend: .service(status: 404, code: "NoSuchBucket", message: nil, requestID: nil)).status == 404)
        #expect(HTTPError(backend: .service(status: 503, code: "SlowDown", message: nil, requestID: nil)).headers.first?.name == "Retry-After")
        #expect(HTTPError(backend: .service(status: 500, code: "InternalError", message: nil, requestID: nil)).status == 502)
        #expect(HTTPError(backend: .timeout(message: "slow")).status == 504)
        #expect(HTTPError(backend: .transport(message: "refused")).status == 502)
        #expect(HTTPError(backend: .service(status: 416, code: "InvalidRange", message: nil, requestID: nil)).status == 416)
    }

    @Test func aBodyBrokenOffMidwayAbortsTheResponseAndIsNotCached() throws {
        let store = FakeStore()
        let body = (0..<5000).map { UInt8(truncatingIfNeeded: $0) }
        store.objects["public/big"] = .init(
            body: body, headers: [("Content-Type", "application/octet-stream"), ("Content-Length", "5000"), ("ETag", "\"b\"")])
        store.breakAfter["public/big"] = 2000
        let gateway = try makeGateway(store: store)
        for params in [[:], ["HTTP_RANGE": "bytes=0-2999"]] {  // a miss the cache keeps, and a read it lets through
            let broken = FakeExchange(method: "GET", uri: "/objects/public/big", params: params)
            gateway.handle(broken)
            #expect(broken.aborted, "a short body must be broken off, not finished (\(params))")
            #expect(broken.response.status == 200)
            #expect(broken.response.body == Array(body[..<2000]))
        }
        store.breakAfter = [:]
        let whole = FakeExchange(method: "GET", uri: "/objects/public/big")
        gateway.handle(whole)
        #expect(!whole.aborted)
        #expect(whole.response.body == body)
        #expect(store.calls == Array(repeating: "GET public/big", count: 3), "the short body was not cached")
    }

    @Test func onlyABrokenBodyAborts() throws {
        let store = FakeStore()
        store.objects["public/big"] = .init(
            body: [UInt8](repeating: 7, count: 5000),
            headers: [("Content-Type", "application/octet-stream"), ("Content-Length", "5000"), ("ETag", "\"b\"")])
        store.breakAfter["public/big"] = 2000
        let gateway = try makeGateway(store: store)
        // S3 fails before anything was sent: a JSON error, finished normally.
        let missing = FakeExchange(method: "GET", uri: "/objects/public/none")
        gateway.handle(missing)
        #expect(!missing.aborted && missing.response.status == 404)
        // The client's copy is current: its 304 is whole whatever happens to the download after it.
        let conditional = FakeExchange(method: "GET", uri: "/objects/public/big", params: ["HTTP_IF_NONE_MATCH": "\"b\""])
        gateway.handle(conditional)
        #expect(!conditional.aborted && conditional.response.status == 304)
        // The client went away mid-body: nothing left to break off.
        let gone = FakeExchange(method: "GET", uri: "/objects/public/big", params: ["HTTP_RANGE": "bytes=0-4999"])
        gone.clientLeavesAfter = 1000
        gateway.handle(gone)
        #expect(!gone.aborted)
    }

    @Test func healthIsJSON() throws {
        let health = try serve(FakeExchange(method: "GET", uri: "/health"), store: FakeStore())
        #expect(health.response.status == 200)
        #expect(health.bodyText == "{\"status\":\"ok\"}")
    }
}
