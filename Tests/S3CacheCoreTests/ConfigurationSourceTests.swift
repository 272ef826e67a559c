#if canImport(Glibc)
import Glibc
#endif
@testable import S3CacheCore
import Testing

@Suite struct ConfigurationFileTests {
    @Test func readsTheEnvironmentFileFormat() throws {
        let text = """
            # comment
            ; also a comment

            ALLOWED_BUCKETS=public:read,local:all
            export CACHE_TTL = 60
            S3_SECRET_KEY="with spaces = and #"
            S3_REGION='eu-west-3'
            EMPTY=
            """
        let values = try ConfigurationFile.parse(text, path: "/etc/s3cache/s3cache.conf")
        #expect(values == [
            "ALLOWED_BUCKETS": "public:read,local:all", "CACHE_TTL": "60", "S3_SECRET_KEY": "with spaces = and #",
            "S3_REGION": "eu-west-3", "EMPTY": "",
        ])
    }

    @Test(arguments: [
        ("no equals sign", "line 1"), ("9LIVES=1", "line 1"), ("OK=1\nBAD-NAME=2", "line 2"), ("Q=\"open", "line 1"),
    ])
    func refusesMalformedLines(text: String, location: String) {
        #expect(throws: ConfigurationError.self) { try ConfigurationFile.parse(text, path: "f") }
        do {
            _ = try ConfigurationFile.parse(text, path: "f")
        } catch {
            #expect(error.variable == "--config")
            #expect(error.value == "f:" + location.dropFirst("line ".count))
        }
    }

    @Test func environmentOverridesTheFile() throws {
        let path = try temporaryFile("ALLOWED_BUCKETS=public:read\nCACHE_TTL=60\n")
        defer { unlink(path) }
        let source = ConfigurationSource(path: path, pathIsRequired: true, environment: ["CACHE_TTL": "5"])
        let configuration = try source.load()
        #expect(configuration.accessRules.description == "public:read")
        #expect(configuration.cacheTTL == 5)
    }

    @Test func aMissingDefaultFileIsSkippedButANamedOneIsAnError() throws {
        let absent = "/nonexistent/s3cache.conf"
        let optional = ConfigurationSource(path: absent, pathIsRequired: false, environment: ["CACHE_TTL": "7"])
        #expect(try optional.load().cacheTTL == 7)
        let required = ConfigurationSource(path: absent, pathIsRequired: true, environment: [:])
        #expect(throws: ConfigurationError.self) { try required.load() }
    }

    @Test func aSecretInTheFileIsNeverEchoed() throws {
        let path = try temporaryFile("S3_SECRET_KEY=\"\"\nFCGI_THREADS=many\n")
        defer { unlink(path) }
        do {
            _ = try ConfigurationSource(path: path, pathIsRequired: true, environment: [:]).load()
            Issue.record("a bad FCGI_THREADS was accepted")
        } catch {
            #expect(error.variable == "FCGI_THREADS")
        }
        #expect(ConfigurationError(variable: "S3_SECRET_KEY", value: "hunter2", reason: "x").description.contains("hunter2") == false)
    }

    private func temporaryFile(_ contents: String) throws -> String {
        var template = Array("/tmp/s3cache-config-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        #expect(fd >= 0)
        var text = contents
        text.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
        close(fd)
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

@Suite struct LiveConfigurationTests {
    @Test func reloadAppliesLiveSettingsAndDefersTheRest() throws {
        let live = LiveConfiguration(try Configuration.load(from: ["FCGI_THREADS": "16", "ALLOWED_BUCKETS": "public:read"]))
        let before = live.generation
        let new = try Configuration.load(from: [
            "FCGI_THREADS": "16", "ALLOWED_BUCKETS": "public:all", "MAX_CACHE_SIZE": "10", "CACHE_TTL": "9", "LOG_LEVEL": "debug",
        ])
        let deferred = live.apply(new)
        // FILL_BUDGET and MAX_OBJECT_SIZE follow MAX_CACHE_SIZE by default.
        #expect(deferred.sorted() == ["FILL_BUDGET", "MAX_CACHE_SIZE", "MAX_OBJECT_SIZE"])
        #expect(live.generation == before + 1)
        #expect(live.current.accessRules.description == "public:all")
        #expect(live.current.cacheTTL == 9)
        #expect(live.current.logLevel == .debug)
        #expect(live.current.maxCacheSize == 300 << 20, "the cache's size needs a restart")
    }
}

@Suite struct CommandLineOptionsTests {
    @Test func parsesTheFlags() throws {
        #expect(try CommandLineOptions(parsing: []).action == .serve)
        #expect(try CommandLineOptions(parsing: ["--version"]).action == .version)
        #expect(try CommandLineOptions(parsing: ["-h"]).action == .help)
        let check = try CommandLineOptions(parsing: ["--check-config", "--config", "/x.conf"])
        #expect(check.action == .checkConfiguration && check.configPath == "/x.conf")
        #expect(try CommandLineOptions(parsing: ["--config=/y.conf"]).configPath == "/y.conf")
    }

    @Test(arguments: [["--config"], ["--config="], ["serve"], ["-x"]])
    func refusesWhatItDoesNotKnow(arguments: [String]) {
        #expect(throws: CommandLineOptions.UsageError.self) { try CommandLineOptions(parsing: arguments) }
    }
}
