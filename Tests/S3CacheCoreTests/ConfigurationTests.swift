#if canImport(Glibc)
import Glibc
#endif
import FastCGI
@testable import S3CacheCore
import S3Client
import Testing

@Suite struct ConfigurationTests {
    @Test func defaultsFollowTheDesignTable() throws {
        let config = try Configuration.load(from: [:])
        #expect(config.s3.endpoint == "localhost:9000")
        #expect(config.s3.credentials == S3Credentials(accessKey: "minioadmin", secretKey: "minioadmin"))
        #expect(config.s3.useSSL == false)
        #expect(config.s3.region == "us-east-1")
        #expect(config.s3.addressing == .path)
        #expect(config.accessRules == (try AccessRules(parsing: "public:read,private:all,local:all")))
        #expect(config.maxCacheSize == 300 << 20)
        #expect(config.cacheTTL == 300)
        #expect(config.cleanupInterval == 60)
        #expect(config.maxObjectSize == (300 << 20) / 8)
        #expect(config.maxUploadSize == 5 << 30)
        #expect(config.maxInflatedSize == 64 << 20)
        #expect(config.uploadConcurrency >= 48 && config.backendConcurrency == config.uploadConcurrency)
        #expect(config.maxThreads == config.threads + 2 * config.backendConcurrency + 256)
        #expect(!config.safeContentBuckets.contains("local"))
        #expect(config.listen == .unix(path: "/run/s3cache/s3cache.sock", mode: 0o660))
        #expect(config.threads >= 8)
        #expect(config.logLevel == .info)
    }

    @Test func valuesAreParsed() throws {
        let config = try Configuration.load(from: [
            "S3_ENDPOINT": "s3.example.com:443", "S3_USE_SSL": "true", "S3_REGION": "eu-west-3",
            "S3_ADDRESSING": "virtual", "ALLOWED_BUCKETS": "assets:read", "MAX_CACHE_SIZE": "64",
            "MAX_OBJECT_SIZE": "512K", "MAX_UPLOAD_SIZE": "1G", "CACHE_TTL": "2.5", "FCGI_LISTEN": "127.0.0.1:9001",
            "FCGI_THREADS": "8", "FCGI_SOCKET_MODE": "0666", "LOG_LEVEL": "WARN", "S3_READ_TIMEOUT": "12",
        ])
        #expect(config.s3.endpoint == "s3.example.com:443")
        #expect(config.s3.useSSL)
        #expect(config.s3.addressing == .virtualHost)
        #expect(config.s3.readTimeout == 12)
        #expect(config.maxCacheSize == 64 << 20)
        #expect(config.maxObjectSize == 512 << 10)
        #expect(config.maxUploadSize == 1 << 30)
        #expect(config.cacheTTL == 2.5)
        #expect(config.listen == .tcp(host: "127.0.0.1", port: 9001))
        #expect(config.threads == 8)
        #expect(config.logLevel == .warning)
        #expect(try Configuration.load(from: ["FCGI_LISTEN": "/tmp/x.sock", "FCGI_SOCKET_MODE": "0666"]).listen
            == .unix(path: "/tmp/x.sock", mode: 0o666))
    }

    @Test(arguments: [
        ("S3_USE_SSL", "maybe"), ("FCGI_THREADS", "0"), ("FCGI_THREADS", "many"), ("MAX_CACHE_SIZE", "-1"),
        ("MAX_CACHE_SIZE", "12T"), ("CACHE_TTL", "soon"), ("S3_ENDPOINT", "http://host:9000"),
        ("S3_ENDPOINT", "host:99999"), ("ALLOWED_BUCKETS", "public:admin"), ("FCGI_LISTEN", "nonsense"),
        ("FCGI_SOCKET_MODE", "0999"), ("LOG_LEVEL", "loud"), ("S3_ADDRESSING", "dns"), ("MAX_UPLOAD_SIZE", "0"),
        ("MAX_INFLATED_SIZE", "6G"), ("MAX_INFLATED_SIZE", "0"), ("SAFE_CONTENT_BUCKETS", "Not_A_Bucket"),
        ("UPLOAD_CONCURRENCY", "0"), ("UPLOAD_CONCURRENCY", "10001"), ("BACKEND_CONCURRENCY", "0"),
    ])
    func badValuesNameTheVariable(variable: String, value: String) {
        do {
            _ = try Configuration.load(from: [variable: value])
            Issue.record("\(variable)=\(value) was accepted")
        } catch {
            #expect(error.variable == variable)
            #expect(error.description.hasPrefix("\(variable)=\"\(value)\" is invalid"))
        }
    }

    @Test func thePackagedConfigurationSandboxesEveryWritableBucket() throws {
        // Tests run from the package root: the file the .deb installs as /etc/s3cache/s3cache.conf.
        let config = try ConfigurationSource(path: "systemd/s3cache.env", pathIsRequired: true, environment: [:]).load()
        for (bucket, level) in config.accessRules.levels where level != .read {
            #expect(config.safeContentBuckets.contains(bucket), "writable bucket \(bucket) is not in SAFE_CONTENT_BUCKETS")
        }
        #expect(try Configuration.load(from: ["SAFE_CONTENT_BUCKETS": "*"]).safeContentBuckets.contains("anything"))
        #expect(try Configuration.load(from: ["MAX_UPLOAD_SIZE": "1M"]).maxInflatedSize == 1 << 20)
    }

    @Test func secretsNeverAppearInErrors() {
        let error = ConfigurationError(variable: "S3_SECRET_KEY", value: "hunter2", reason: "bad")
        #expect(!error.description.contains("hunter2"))
        #expect(!String(describing: S3Credentials(accessKey: "AK", secretKey: "hunter2")).contains("hunter2"))
    }

    @Test func sizesAcceptUnits() {
        #expect(EnvironmentReader.parseSize("300") == 300 << 20)
        #expect(EnvironmentReader.parseSize("512K") == 512 << 10)
        #expect(EnvironmentReader.parseSize("2 GiB") == 2 << 30)
        #expect(EnvironmentReader.parseSize("100b") == 100)
        #expect(EnvironmentReader.parseSize("1.5G") == nil)
        #expect(EnvironmentReader.parseSize("G") == nil)
    }
}

@Suite struct ShippedFilesAgreeTests {
    /// `fastcgi_read_timeout` in the shipped snippet, in seconds (`60s`, `1m`, or a bare number).
    private func shippedFastCGIReadTimeout() throws -> Double? {
        let text = try #require(String(validating: try readFile("nginx/s3cache-fastcgi.conf"), as: UTF8.self))
        for line in text.split(separator: "\n") {
            let words = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
                .split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ";" })
            guard words.count == 2, words[0] == "fastcgi_read_timeout" else { continue }
            let value = String(words[1])
            if value.hasSuffix("m"), let minutes = Double(value.dropLast()) { return minutes * 60 }
            if value.hasSuffix("s") { return Double(value.dropLast()) }
            return Double(value)
        }
        return nil
    }

    private func readFile(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        try #require(fd >= 0, "cannot open \(path) (tests run from the package root)")
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            bytes += buffer[..<count]
        }
        return bytes
    }

    @Test func theWorkerKnowsNginxsReadTimeoutAndFollowersAnswerWithinIt() throws {
        let nginx = try #require(try shippedFastCGIReadTimeout(), "no fastcgi_read_timeout in nginx/s3cache-fastcgi.conf")
        let defaults = try Configuration.load(from: [:])
        #expect(defaults.nginxReadTimeout == nginx)
        // A follower's longest silence, then its own fetch's longest wait for S3, fit in nginx's.
        let waits = FollowerWaits(defaults)
        #expect(waits.longest > 0)
        #expect(waits.longest + defaults.s3.connectTimeout + defaults.s3.readTimeout <= nginx)
    }

    @Test func theFileTierIsOnByDefaultAndItsSnippetNamesTheDefaultDirectory() throws {
        let defaults = try Configuration.load(from: [:])
        #expect(defaults.cacheDirectory == "/var/cache/s3cache")
        #expect(defaults.cacheDirectorySize == 1 << 30 && defaults.sliceSize == 1 << 20)
        #expect(try Configuration.load(from: ["CACHE_DIR": ""]).cacheDirectory == "", "set but empty: off")
        #expect(try Configuration.load(from: ["SLICE_SIZE": "256K"]).sliceSize == 256 << 10)
        for (variable, value) in [("CACHE_DIR", "relative/dir"), ("CACHE_DIR", "/var/../etc"), ("SLICE_SIZE", "1K"), ("SLICE_SIZE", "1G")] {
            #expect(throws: ConfigurationError.self, "\(variable)=\(value)") { _ = try Configuration.load(from: [variable: value]) }
        }
        // The internal locations send files from CACHE_DIR/objects/: the shipped alias must say so.
        let snippet = try #require(String(validating: try readFile("nginx/s3cache-locations.conf"), as: UTF8.self))
        let aliases = snippet.split(separator: "\n").filter { $0.trimmingWhitespace().hasPrefix("alias ") }
        #expect(aliases.count == 2)
        #expect(aliases.allSatisfy { $0.trimmingWhitespace() == "alias \(defaults.cacheDirectory)/objects/;" })
    }
}
