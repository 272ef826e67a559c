#if canImport(Glibc)
import Glibc
#endif

/// HTTP dates (RFC 9110 §5.6.7): IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, the only
/// form S3 sends and the one clients echo back in `If-Modified-Since`.
enum HTTPDate {
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Seconds since the epoch, or nil for anything that is not an IMF-fixdate (the header is then ignored, as RFC 9110 says).
    static func parse(_ text: String) -> Int64? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[0].hasSuffix(","), parts[5] == "GMT",
              let day = Int32(parts[1]), let monthIndex = months.firstIndex(of: String(parts[2])),
              let year = Int32(parts[3])
        else { return nil }
        let clock = parts[4].split(separator: ":")
        guard clock.count == 3, let hour = Int32(clock[0]), let minute = Int32(clock[1]), let second = Int32(clock[2]),
              (1...31).contains(day), (0...23).contains(hour), (0...59).contains(minute), (0...60).contains(second)
        else { return nil }
        var fields = tm()
        fields.tm_year = year - 1900
        fields.tm_mon = Int32(monthIndex)
        fields.tm_mday = day
        fields.tm_hour = hour
        fields.tm_min = minute
        fields.tm_sec = second
        return Int64(timegm(&fields))
    }
}

/// A single byte range from a `Range` header, resolved against the object's length.
enum ByteRange: Equatable {
    /// No usable range: serve the whole object (absent, multiple ranges, or not `bytes=`).
    case whole
    /// Bytes `start...end`, both inclusive.
    case partial(start: Int, end: Int)
    /// Syntactically valid but outside the object: 416.
    case unsatisfiable

    /// RFC 9110 §14.1.2: `bytes=a-b`, `bytes=a-`, `bytes=-n`. Several ranges are answered
    /// with the whole object, which the RFC allows and which avoids multipart bodies.
    static func parse(_ header: String?, length: Int) -> ByteRange {
        guard let header, header.hasPrefix("bytes=") else { return .whole }
        let spec = header.dropFirst("bytes=".count).trimmingWhitespace()
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return .whole }
        let first = spec[..<dash].trimmingWhitespace(), last = spec[spec.index(after: dash)...].trimmingWhitespace()
        if first.isEmpty {
            guard let suffix = Int(last), suffix >= 0 else { return .whole }
            guard suffix > 0, length > 0 else { return .unsatisfiable }
            return .partial(start: max(0, length - suffix), end: length - 1)
        }
        guard let start = Int(first), start >= 0 else { return .whole }
        let end: Int
        if last.isEmpty {
            end = length - 1
        } else {
            guard let value = Int(last), value >= start else { return .whole }
            end = min(value, length - 1)
        }
        return start < length ? .partial(start: start, end: end) : .unsatisfiable
    }
}

/// Entity-tag comparisons for conditional requests (RFC 9110 §8.8.3).
enum EntityTags {
    /// Whether an `If-None-Match` list names any of `tags`, by weak comparison (the `W/`
    /// prefix is ignored), as RFC 9110 requires for `If-None-Match`. `*` matches anything.
    static func noneMatchHits(_ header: String, anyOf tags: [String]) -> Bool {
        let wanted = Set(tags.map(opaque))
        for candidate in header.split(separator: ",") {
            let tag = candidate.trimmingWhitespace()
            if tag == "*" || wanted.contains(opaque(tag)) { return true }
        }
        return false
    }

    /// Strong comparison for `If-Range`: weak tags never match.
    static func strongMatch(_ header: String, _ tag: String) -> Bool {
        let candidate = header.trimmingWhitespace()
        return !candidate.hasPrefix("W/") && candidate == tag
    }

    private static func opaque(_ tag: String) -> String {
        tag.hasPrefix("W/") ? String(tag.dropFirst(2)) : tag
    }
}

/// Content negotiation for the stored gzip bytes.
enum ContentCoding {
    /// Whether `Accept-Encoding` admits gzip (`gzip` or `*` with a non-zero q-value).
    static func acceptsGzip(_ header: String?) -> Bool {
        guard let header else { return false }
        var gzip: Double?, wildcard: Double?
        for item in header.split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingWhitespace().lowercased() }
            guard let coding = parts.first else { continue }
            var quality = 1.0
            for parameter in parts.dropFirst() where parameter.hasPrefix("q=") {
                quality = Double(parameter.dropFirst(2)) ?? 0
            }
            if coding == "gzip" || coding == "x-gzip" { gzip = quality } else if coding == "*" { wildcard = quality }
        }
        return (gzip ?? wildcard ?? 0) > 0
    }

    /// Media types worth compressing: text and structured text. Images, video and archives are
    /// already compressed and would only cost CPU.
    static func isCompressible(_ contentType: String) -> Bool {
        let type = (contentType.split(separator: ";").first.map { $0.trimmingWhitespace().lowercased() }) ?? ""
        if type.hasPrefix("text/") { return true }
        if type.hasSuffix("+json") || type.hasSuffix("+xml") || type.hasSuffix("+yaml") { return true }
        return [
            "application/json", "application/javascript", "application/x-javascript", "application/ecmascript",
            "application/xml", "application/yaml", "application/x-yaml", "application/toml", "application/x-ndjson",
            "application/graphql", "application/wasm", "application/x-sh", "application/sql", "application/csv",
            "image/svg+xml", "image/bmp", "image/x-icon", "image/vnd.microsoft.icon", "font/ttf", "font/otf",
            "application/vnd.ms-fontobject",
        ].contains(type)
    }
}
