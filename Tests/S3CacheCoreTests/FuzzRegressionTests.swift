import FastCGI
import Foundation
@testable import S3CacheCore
import Testing

/// What the fuzz targets (fuzz/README.md) found, each input as a test, and the checked-in
/// seed corpora replayed through the same entry points the fuzzers use.
///
/// An input that traps the process is run as an exit test, so it fails as one test instead
/// of taking the whole run down.
@Suite struct FuzzRegressionTests {
    /// fuzz-http-date, fuzz-read-request: `year - 1900` overflowed Int32 for a year near
    /// Int32.min ("Swift runtime failure: arithmetic overflow" in HTTPDate.parse).
    @Test func httpDateWithAYearAtInt32MinDoesNotTrap() async {
        await #expect(processExitsWith: .success) {
            _ = HTTPDate.parse("Sun, 06 Nov -2147483648 08:49:37 GMT")
        }
    }

    /// fuzz-http-date's own find (crash-31e2eed4…, after about 1 million runs): the first
    /// field only needs to end in a comma, and one-digit fields pass.
    @Test func httpDateAsTheFuzzerFoundItDoesNotTrap() async {
        await #expect(processExitsWith: .success) {
            _ = HTTPDate.parse(", 6 Nov -2147482748 0:4:36 GMT")
        }
    }

    /// The same input as a client's `If-Modified-Since`, through the precondition evaluation.
    @Test func ifModifiedSinceWithAYearAtInt32MinDoesNotTrap() async {
        await #expect(processExitsWith: .success) {
            let request = ReadRequest(
                range: nil, ifRange: nil, ifNoneMatch: nil, ifModifiedSince: "Sun, 06 Nov -2147483648 08:49:37 GMT",
                ifMatch: nil, ifUnmodifiedSince: nil, acceptEncoding: nil)
            _ = request.evaluate(etags: ["\"a\""], lastModified: "Sun, 06 Nov 1994 08:49:37 GMT")
        }
    }

    /// fuzz-route: the router looked for `?` and `/` as Characters, and a combining mark after
    /// either makes one Character with it. The query then became part of the key (nginx, like
    /// any HTTP parser, ends the path at the `?` byte), and a key starting with a combining
    /// mark was refused as missing.
    @Test func queryAndKeySplitAreFoundByByte() {
        #expect(Route.parse(requestURI: "/objects/public/a?\u{301}b=1") == .object(ObjectAddress(bucket: "public", key: "a")))
        #expect(Route.parse(requestURI: "/objects/public/\u{301}x") == .object(ObjectAddress(bucket: "public", key: "\u{301}x")))
        #expect(Route.parse(requestURI: "/health?\u{301}") == .health)
        #expect(Route.parse(requestURI: "/objects/\u{301}b/x") == .invalidObject(reason: "invalid bucket name"))
    }

    /// Noticed while writing fuzz-configuration, which now checks it: "\r\n" is one Character,
    /// so splitting the file on "\n" left a CRLF file as one line, every later assignment
    /// inside the first value (a secret could end up in S3_REGION, which is logged).
    @Test func configurationFileWithCRLFLineEnds() throws {
        let values = try ConfigurationFile.parse("# settings\r\nS3_REGION=eu-west-1\r\nS3_SECRET_KEY='s'\r\n\r\nCACHE_TTL=60", path: "x")
        #expect(values == ["S3_REGION": "eu-west-1", "S3_SECRET_KEY": "s", "CACHE_TTL": "60"])
    }

    /// fuzz-cache-control (crash-5cf0d5e4…, after about 6 s): any year up to 9999 parses, and
    /// an `Expires` that far ahead gave a ttl of 2.26e11 s, past the cap on a delta-seconds.
    @Test func farFutureExpiresIsCappedLikeADelta() {
        let freshness = CacheControl(nil).freshness(expires: "Sun, 06 Nov 9193 08:49:37 GMT", now: 1_800_000_000)
        #expect(freshness?.ttl == Double(CacheControl.maxDeltaSeconds))
    }

    @Test(arguments: ["route", "read-request", "http-date", "configuration", "fastcgi-params", "notification", "cache-control", "sigv4", "aws-chunked"])
    func seedCorpusReplays(target: String) throws {
        let entry: (UnsafeRawBufferPointer) -> Void = switch target {
        case "route": CoreFuzzing.route
        case "read-request": CoreFuzzing.readRequest
        case "http-date": CoreFuzzing.httpDate
        case "configuration": CoreFuzzing.configuration
        case "notification": CoreFuzzing.notification
        case "cache-control": CoreFuzzing.cacheControl
        case "sigv4": CoreFuzzing.sigV4
        case "aws-chunked": CoreFuzzing.awsChunked
        default: FastCGIFuzzing.parameterText
        }
        let inputs = try FuzzCorpus.inputs(of: target)
        #expect(!inputs.isEmpty)
        for input in inputs { input.withUnsafeBytes(entry) }
    }
}

/// The checked-in seed corpus of a fuzz target, `fuzz/corpus/<target>/*`.
enum FuzzCorpus {
    static func inputs(of target: String) throws -> [Data] {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fuzz/corpus/\(target)")
        return try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
            .map { try Data(contentsOf: $0) }
    }
}
