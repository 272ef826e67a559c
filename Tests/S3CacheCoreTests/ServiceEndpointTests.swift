import Logging
import Prometheus
@testable import S3CacheCore
import S3Client
import Testing

@Suite struct ServiceEndpointTests {
    private static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    private func gateway(_ store: FakeStore, shared: SharedState) throws -> Gateway {
        Gateway(configuration: shared.live.current, connection: store, shared: shared, logger: Self.logger)
    }

    @Test func metricsCountRequestsBackendCallsAndCacheResults() throws {
        let store = FakeStore()
        store.objects["public/a.txt"] = FakeStore.Object(
            body: Array("hello".utf8), headers: [("Content-Type", "text/plain"), ("ETag", "\"1\""), ("Content-Length", "5")])
        let shared = quietShared(try Configuration.load(from: [:]))
        let gateway = try gateway(store, shared: shared)
        for _ in 0..<3 { gateway.handle(FakeExchange(method: "GET", uri: "/objects/public/a.txt")) }
        gateway.handle(FakeExchange(method: "GET", uri: "/objects/unlisted/a.txt"))
        let scrape = FakeExchange(method: "GET", uri: "/metrics")
        gateway.handle(scrape)
        #expect(scrape.response.status == 200)
        #expect(scrape.response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        let text = scrape.bodyText
        #expect(text.contains("# HELP s3cache_requests_total"))
        #expect(text.contains(#"s3cache_requests_total{method="GET",status="200",bucket="public"} 3"#))
        #expect(text.contains(#"s3cache_requests_total{method="GET",status="403",bucket="-"} 1"#))
        #expect(!text.contains("unlisted"), "only configured bucket names become label values")
        #expect(text.contains(#"s3cache_backend_requests_total{operation="get",outcome="ok"} 1"#))
        #expect(text.contains("s3cache_cache_hits_total 2\n"))
        #expect(text.contains("s3cache_cache_misses_total 1\n"))
        #expect(text.contains("s3cache_cache_served_bytes_total 10\n"))
    }

    @Test func unknownMethodsShareOneLabelValue() throws {
        let shared = quietShared(try Configuration.load(from: [:]))
        let gateway = try gateway(FakeStore(), shared: shared)
        for method in ["BREW", "PROPFIND", "X-\(UInt32.random(in: 0...UInt32.max))"] {
            gateway.handle(FakeExchange(method: method, uri: "/objects/public/a"))
        }
        let scrape = FakeExchange(method: "GET", uri: "/metrics")
        gateway.handle(scrape)
        #expect(scrape.bodyText.contains(#"s3cache_requests_total{method="other",status="405",bucket="public"} 3"#))
    }

    @Test func readinessChecksEveryBucketAndReusesItsAnswer() throws {
        let store = FakeStore()
        let shared = quietShared(try Configuration.load(from: [:]), readinessInterval: 3600)
        let gateway = try gateway(store, shared: shared)
        let first = FakeExchange(method: "GET", uri: "/ready")
        gateway.handle(first)
        #expect(first.response.status == 200)
        #expect(store.calls == ["HEAD local", "HEAD private", "HEAD public"])
        gateway.handle(FakeExchange(method: "GET", uri: "/ready"))
        #expect(store.calls.count == 3, "a second probe within the interval reuses the answer")
    }

    @Test func readinessReportsAMissingBucket() throws {
        let store = FakeStore()
        store.buckets = ["public", "local"]
        let shared = quietShared(try Configuration.load(from: [:]))
        let probe = FakeExchange(method: "GET", uri: "/ready")
        try gateway(store, shared: shared).handle(probe)
        #expect(probe.response.status == 503)
        #expect(probe.bodyText.contains("bucket private does not exist in S3"))
    }

    @Test func aReloadReachesTheNextRequestAndReconnectsOnlyForNewS3Settings() throws {
        let store = FakeStore()
        let shared = quietShared(try Configuration.load(from: ["ALLOWED_BUCKETS": "public:read"]))
        var connections: [String] = []
        let gateway = try ReloadingGateway(shared: shared, logger: Self.logger) { settings in
            connections.append(settings.endpoint)
            return store
        }
        let refused = FakeExchange(method: "DELETE", uri: "/objects/public/a")
        gateway.handle(refused)
        #expect(refused.response.status == 403)

        _ = shared.reload(try Configuration.load(from: ["ALLOWED_BUCKETS": "public:all"]))
        let allowed = FakeExchange(method: "DELETE", uri: "/objects/public/a")
        gateway.handle(allowed)
        #expect(allowed.response.status == 404, "the rule changed: the DELETE reached the store")
        #expect(connections == ["localhost:9000"], "same S3 settings: the connection is kept")

        _ = shared.reload(try Configuration.load(from: ["ALLOWED_BUCKETS": "public:all", "S3_ENDPOINT": "s3.internal:9000"]))
        gateway.handle(FakeExchange(method: "GET", uri: "/health"))
        #expect(connections == ["localhost:9000", "s3.internal:9000"])
    }
}
