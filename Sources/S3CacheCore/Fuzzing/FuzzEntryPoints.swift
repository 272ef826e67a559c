#if canImport(Glibc)
import Glibc
#endif

/// Entry points for the fuzz targets in `fuzz/` (fuzz/README.md): each takes arbitrary bytes,
/// runs one of this module's parsers on them and traps (`fuzzCheck`) when a cheap invariant
/// does not hold, which libFuzzer reports as a crash like any other trap.
///
/// `package` access: the parsers stay internal to the module, the fuzz targets in this
/// package can reach them, nothing outside it can.
package enum CoreFuzzing {
    /// `Route.parse` with percent decoding: the query does not matter, an object address is
    /// valid, and encoded again it routes to itself (decoded exactly once).
    package static func route(_ data: UnsafeRawBufferPointer) {
        let uri = String(decoding: data, as: UTF8.self)
        let route = Route.parse(requestURI: uri)
        let path = uri.utf8.split(separator: UInt8(ascii: "?"), maxSplits: 1, omittingEmptySubsequences: false).first ?? []
        // The query never changes the route: it starts at the first `?` byte.
        let withoutQuery = Route.parse(requestURI: String(decoding: path, as: UTF8.self))
        fuzzCheck(withoutQuery == route, "\(uri.debugDescription) routes to \(route), its path alone to \(withoutQuery)")
        switch route {
        case let .object(address):
            fuzzCheck(BucketName.isValid(address.bucket), "invalid bucket accepted: \(address.bucket.debugDescription)")
            let key = Array(address.key.utf8)
            fuzzCheck(!key.isEmpty && key.count <= ObjectAddress.maxKeyBytes, "key length \(key.count) accepted")
            fuzzCheck(!key.contains { $0 < 0x20 || $0 == 0x7f }, "control character in key \(address.key.debugDescription)")
            let dotSegment = key.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).contains {
                $0.elementsEqual([UInt8(ascii: ".")]) || $0.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")])
            }
            fuzzCheck(!dotSegment, "dot segment in key \(address.key.debugDescription)")
            fuzzCheck(path.starts(with: "/objects/".utf8), "object route without /objects/: \(uri.debugDescription)")
            let again = "/objects/\(percentEncoded(address.bucket))/\(percentEncoded(address.key))?query"
            fuzzCheck(Route.parse(requestURI: again) == route, "\(again.debugDescription) does not route back to \(address)")
        case .health, .ready, .stats, .metrics, .notifications:
            let expected = route == .health ? "/health" : route == .ready ? "/ready" : route == .stats ? "/stats"
                : route == .metrics ? "/metrics" : "/notifications"
            fuzzCheck(path.elementsEqual(expected.utf8), "\(uri.debugDescription) routed to \(expected)")
        case .invalidObject, .notFound:
            break
        }
    }

    /// `BucketNotification.read` on a `POST /notifications` body (and so `JSONReader`): a
    /// document the reader accepts, written out again, reads back as the same value; every
    /// event names at least one key, and the first is its decoded form.
    package static func notification(_ data: UnsafeRawBufferPointer) {
        let bytes = Array(data)
        if let value = try? JSONReader.parse(bytes) {
            var written: [UInt8] = []
            writeJSON(value, to: &written)
            let again = try? JSONReader.parse(written)
            fuzzCheck(again == value, "\(value) written as \(String(decoding: written, as: UTF8.self)) reads back as \(String(describing: again))")
        }
        guard case let .events(events)? = try? BucketNotification.read(bytes) else { return }
        for event in events {
            let keys = event.keys
            fuzzCheck(!keys.isEmpty && keys.count <= 2, "\(event) gives keys \(keys)")
            fuzzCheck(keys.last == event.encodedKey, "\(event): the key as written is not among \(keys)")
            let decoded = BucketEvent.formDecoded(event.encodedKey) ?? event.encodedKey
            fuzzCheck(keys.first == decoded, "\(event): the first key \(keys) is not the decoded one \(decoded)")
        }
    }

    private static func writeJSON(_ value: JSONValue, to out: inout [UInt8]) {
        switch value {
        case let .object(members):
            out.append(UInt8(ascii: "{"))
            for (index, member) in members.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                JSON.appendQuoted(member.name, to: &out)
                out.append(UInt8(ascii: ":"))
                writeJSON(member.value, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        case let .array(values):
            out.append(UInt8(ascii: "["))
            for (index, element) in values.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                writeJSON(element, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case let .string(text): JSON.appendQuoted(text, to: &out)
        case let .number(text): out += text.utf8
        case let .bool(flag): out += (flag ? "true" : "false").utf8
        case .null: out += "null".utf8
        }
    }

    /// `CacheControl` on an object's `Cache-Control` (first line) and `Expires` (second line):
    /// a freshness it gives is never negative nor past what RFC 9111 lets a delta be, and only
    /// `no-store` or `private` refuse storage.
    package static func cacheControl(_ data: UnsafeRawBufferPointer) {
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        let header = lines.first.map(String.init)
        let expires = lines.count > 1 ? String(lines[1]) : nil
        let control = CacheControl(header)
        let freshness = control.freshness(expires: expires, now: 1_800_000_000)
        fuzzCheck((freshness == nil) == control.noStore, "\(header.debugDescription): storage \(String(describing: freshness))")
        guard let freshness else { return }
        let limit = Double(CacheControl.maxDeltaSeconds)
        for seconds in [freshness.ttl, freshness.staleWhileRevalidate].compactMap({ $0 }) {
            fuzzCheck(seconds >= 0 && seconds <= limit * 2, "\(header.debugDescription), \(expires.debugDescription): \(freshness)")
        }
        if control.noCache { fuzzCheck(freshness.ttl == 0, "no-cache with ttl \(String(describing: freshness.ttl))") }
    }

    /// `RequestAuthenticator` on hostile requests. Lines: the request target, the
    /// `Authorization` header, `x-amz-date`, `x-amz-content-sha256`, then `NAME=value` CGI
    /// parameters. Nothing random is ever authenticated as a key (the one key's secret is not in
    /// the input), and a request without any signature is anonymous.
    package static func sigV4(_ data: UnsafeRawBufferPointer) {
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var params = ["REQUEST_METHOD": "GET", "REQUEST_URI": lines.first ?? "/"]
        if lines.count > 1, !lines[1].isEmpty { params["HTTP_AUTHORIZATION"] = lines[1] }
        if lines.count > 2, !lines[2].isEmpty { params["HTTP_X_AMZ_DATE"] = lines[2] }
        if lines.count > 3, !lines[3].isEmpty { params["HTTP_X_AMZ_CONTENT_SHA256"] = lines[3] }
        for line in lines.dropFirst(4) {
            let pair = line.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { params[String(pair[0])] = String(pair[1]) }
        }
        let exchange = ParameterExchange(params)
        let authenticator = RequestAuthenticator(keys: fuzzKeys, now: 1_800_000_000)
        do {
            let auth = try authenticator.authenticate(exchange, method: "GET")
            fuzzCheck(auth.principal == .anonymous, "\(lines) authenticated as \(auth.principal)")
            fuzzCheck(params["HTTP_AUTHORIZATION"] == nil, "an Authorization header was taken as anonymous")
        } catch {
            fuzzCheck(!error.message.contains(fuzzSecret), "the secret leaked into \(error)")
        }
    }

    private static let fuzzSecret = "fuzzing-secret-0123456789abcdefghij"
    private static let fuzzKeys = try! AccessKeys(parsing: "FUZZKEY0123456789ABC \(fuzzSecret) public:all", path: "fuzz")

    /// `AWSChunkedBody` and `AccessKeys` on hostile bytes: a body never decodes to more bytes
    /// than it has, and a keys file error never carries a secret-looking second field.
    package static func awsChunked(_ data: UnsafeRawBufferPointer) {
        let bytes = Array(data)
        let signing = ChunkSigning(key: Array(repeating: 7, count: 32), timestamp: "20260101T000000Z",
                                   scope: "20260101/us-east-1/s3/aws4_request", seedSignature: String(repeating: "0", count: 64))
        for (signed, trailer) in [(false, true), (true, false), (false, false)] {
            let body = AWSChunkedBody(FuzzBody(bytes), signing: signed ? signing : nil, trailer: trailer)
            var total = 0
            var buffer = [UInt8](repeating: 0, count: 4096)
            while let count = try? buffer.withUnsafeMutableBytes({ try body.read(into: $0) }), count > 0 {
                total += count
                fuzzCheck(total <= bytes.count, "decoded \(total) bytes from \(bytes.count)")
            }
        }
        let text = String(decoding: data, as: UTF8.self)
        do {
            _ = try AccessKeys(parsing: text, path: "fuzz")
        } catch {
            // The second field of a key line, unless the id or grants (which errors name) hold it too.
            for line in text.split(separator: "\n") where !line.trimmingWhitespace().hasPrefix("#") {
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard fields.count == 3, fields[1].count >= 16, !fields[0].contains(fields[1]), !fields[2].contains(fields[1])
                else { continue }
                fuzzCheck(!error.reason.contains(fields[1]), "keys file error shows a secret: \(error)")
            }
        }
    }

    /// Everything but unreserved characters and `/` as `%XX`.
    private static func percentEncoded(_ text: String) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        var output: [UInt8] = []
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"):
                output.append(byte)
            default:
                output += [UInt8(ascii: "%"), digits[Int(byte >> 4)], digits[Int(byte & 0x0f)]]
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// `Range`, `If-Range`, the conditionals and `Accept-Encoding` (`ReadRequest`, `ByteRange`,
    /// `EntityTags`, `ContentCoding`). The input is lines: the object's length, its strong
    /// ETag, its `Last-Modified`, then `Range`, `If-Range`, `If-None-Match`,
    /// `If-Modified-Since`, `If-Match`, `If-Unmodified-Since`, `Accept-Encoding`; a missing
    /// line or a line that is exactly `\u{1}` is an absent header.
    package static func readRequest(_ data: UnsafeRawBufferPointer) {
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        func line(_ index: Int) -> String? { index < lines.count && lines[index] != "\u{1}" ? lines[index] : nil }
        // Lengths up to Int.max: the parser must not overflow on any of them.
        let length = line(0).flatMap { Int($0) }.map { $0 == Int.min ? 0 : abs($0) } ?? 1000
        let strongETag = line(1) ?? "\"abc\""
        let lastModified = line(2) ?? "Sun, 06 Nov 1994 08:49:37 GMT"
        let request = ReadRequest(
            range: line(3), ifRange: line(4), ifNoneMatch: line(5), ifModifiedSince: line(6), ifMatch: line(7),
            ifUnmodifiedSince: line(8), acceptEncoding: line(9))

        let parsed = ByteRange.parse(request.range, length: length)
        checkRange(parsed, length: length, header: request.range)
        let served = request.byteRange(length: length, strongETag: strongETag, lastModified: lastModified)
        checkRange(served, length: length, header: request.range)
        fuzzCheck(served == .whole || served == parsed, "If-Range changed the range itself: \(served) against \(parsed)")
        if request.ifRange == nil { fuzzCheck(served == parsed, "byteRange \(served) differs from ByteRange.parse \(parsed)") }

        let precondition = request.evaluate(etags: [strongETag], lastModified: lastModified)
        if !request.hasPreconditions { fuzzCheck(precondition == .proceed, "\(precondition) without a precondition header") }
        if request.ifMatch?.trimmingWhitespace() == "*", request.ifNoneMatch == nil, request.ifModifiedSince == nil {
            fuzzCheck(precondition == .proceed, "If-Match: * failed")
        }
        if let ifNoneMatch = request.ifNoneMatch, ifNoneMatch.trimmingWhitespace() == "*" {
            fuzzCheck(EntityTags.noneMatchHits(ifNoneMatch, anyOf: []), "If-None-Match: * did not match")
        }

        let backend = request.forBackend
        fuzzCheck(backend.range == nil || backend.ifRange == nil, "S3 would be sent Range with If-Range")
        fuzzCheck(!backend.withoutRange.forwardedHeaders.contains { $0.name == "Range" || $0.name == "If-Range" },
                  "withoutRange still forwards a range")

        let accepts = ContentCoding.acceptsGzip(request.acceptEncoding)
        if request.acceptEncoding == nil { fuzzCheck(!accepts, "gzip accepted without Accept-Encoding") }
        if request.acceptEncoding == "gzip" { fuzzCheck(accepts, "Accept-Encoding: gzip refused") }
        _ = ContentCoding.isCompressible(request.acceptEncoding ?? "")
    }

    private static func checkRange(_ range: ByteRange, length: Int, header: String?) {
        switch range {
        case let .partial(start, end):
            fuzzCheck(0 <= start && start <= end && end < length,
                      "range \(start)-\(end) outside an object of \(length) bytes from \(String(describing: header).debugDescription)")
        case .whole, .unsatisfiable:
            break
        }
    }

    /// `HTTPDate.parse`: a date it accepts, formatted again as an IMF-fixdate, parses to the
    /// same instant.
    package static func httpDate(_ data: UnsafeRawBufferPointer) {
        let text = String(decoding: data, as: UTF8.self)
        guard let seconds = HTTPDate.parse(text) else { return }
        var time = time_t(seconds)
        var fields = tm()
        guard gmtime_r(&time, &fields) != nil else { return }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        // An IMF-fixdate's year has four digits.
        let year = Int64(fields.tm_year) + 1900
        guard (0...9999).contains(year) else { return }
        let fourDigitYear = String(repeating: "0", count: 4 - String(year).count) + String(year)
        let formatted = "\(days[Int(fields.tm_wday)]), \(two(fields.tm_mday)) \(months[Int(fields.tm_mon)]) \(fourDigitYear) "
            + "\(two(fields.tm_hour)):\(two(fields.tm_min)):\(two(fields.tm_sec)) GMT"
        fuzzCheck(HTTPDate.parse(formatted) == seconds, "\(text.debugDescription) parsed to \(seconds), formatted \(formatted) does not")
    }

    /// The configuration file and the settings it holds: `ConfigurationFile.parse`, then
    /// `Configuration.load` (sizes, durations, access rules, listen address, …). The first
    /// line is also given to `parseSize` alone.
    package static func configuration(_ data: UnsafeRawBufferPointer) {
        let text = String(decoding: data, as: UTF8.self)
        let firstLine = String(text.prefix { $0 != "\n" })
        if let size = EnvironmentReader.parseSize(firstLine.trimmingWhitespace()) {
            fuzzCheck(size >= 0, "negative size \(size) from \(firstLine.debugDescription)")
            fuzzCheck(EnvironmentReader.parseSize("\(size)b") == size, "\(size)b does not parse back")
        }
        let values: [String: String]
        do {
            values = try ConfigurationFile.parse(text, path: "fuzz.conf")
        } catch {
            fuzzCheck(error.variable == "--config", "file error names \(error.variable)")
            return
        }
        // The same file saved with CRLF line ends holds the same settings.
        if !text.unicodeScalars.contains("\r") {
            let crlf = (try? ConfigurationFile.parse(text.split(separator: "\n", omittingEmptySubsequences: false)
                .joined(separator: "\r\n"), path: "fuzz.conf"))
            fuzzCheck(crlf == values, "with CRLF line ends \(text.debugDescription) reads as \(String(describing: crlf))")
        }
        do {
            let configuration = try Configuration.load(from: values)
            fuzzCheck(configuration.maxObjectSize <= configuration.maxCacheSize / 2, "object size above half the cache")
            fuzzCheck(configuration.maxThreads > configuration.threads + configuration.backendConcurrency
                      + configuration.uploadConcurrency,
                      "at most \(configuration.maxThreads) threads for \(configuration.threads) and the waits")
            let rules = configuration.accessRules
            fuzzCheck((try? AccessRules(parsing: rules.description)) == rules, "access rules \(rules) do not parse back")
            _ = configuration.cacheSettings
        } catch {
            if ConfigurationError.isSecret(error.variable) {
                fuzzCheck(error.value == "<redacted>", "secret \(error.variable) not redacted")
            }
        }
    }
}

/// A broken invariant: a trap with the reason, which libFuzzer reports as a crash.
func fuzzCheck(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fatalError("fuzz invariant: \(message())", file: file, line: line) }
}

extension ReadRequest {
    /// A request from header values directly, as the fuzz target builds it.
    init(range: String?, ifRange: String?, ifNoneMatch: String?, ifModifiedSince: String?, ifMatch: String?,
         ifUnmodifiedSince: String?, acceptEncoding: String?) {
        self.range = range
        self.ifRange = ifRange
        self.ifNoneMatch = ifNoneMatch
        self.ifModifiedSince = ifModifiedSince
        self.ifMatch = ifMatch
        self.ifUnmodifiedSince = ifUnmodifiedSince
        self.acceptEncoding = acceptEncoding
    }
}

/// An `Exchange` with parameters only, for the fuzz targets.
final class ParameterExchange: Exchange {
    private let params: [String: String]

    init(_ params: [String: String]) { self.params = params }

    func param(_ name: StaticString) -> String? { params[name.description] }
    func param(named name: String) -> String? { params[name] }
    func rawParam(_ name: StaticString) -> [UInt8]? { params[name.description].map { Array($0.utf8) } }
    func readBody(into buffer: UnsafeMutableRawBufferPointer, idleTimeout: Double) throws -> Int { 0 }
    func write(_ bytes: UnsafeRawBufferPointer) throws {}
    func write(_ text: String) throws {}
    func flush() throws {}
    func abort() {}
    func peerClosed(within seconds: Double) -> Bool { false }
}

/// Bytes given out in small pieces, as a slow client sends them.
final class FuzzBody: BodySource {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = min(buffer.count, bytes.count - offset, 1 + offset % 13)
        guard count > 0 else { return 0 }
        bytes[offset..<offset + count].withUnsafeBytes { buffer.copyMemory(from: $0) }
        offset += count
        return count
    }
}
