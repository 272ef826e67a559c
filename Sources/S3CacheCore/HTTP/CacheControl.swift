#if canImport(Glibc)
import Glibc
#endif
import ObjectCache

/// An object's `Cache-Control` and `Expires`, as S3 stores them, read for what this cache (a
/// shared cache, RFC 9111) may do with the object. The headers still reach clients unchanged.
struct CacheControl: Equatable {
    /// `no-store`, or `private` (a shared cache must not store it, RFC 9111 §5.2.2.7).
    var noStore = false
    /// `no-cache`: stored, but revalidated with S3 before every use.
    var noCache = false
    /// `must-revalidate` or `proxy-revalidate`: never answered from while expired, so no
    /// stale-while-revalidate window.
    var mustRevalidate = false
    /// `s-maxage`, which a shared cache prefers to `max-age`.
    var sharedMaxAge: Int?
    var maxAge: Int?
    var staleWhileRevalidate: Int?

    /// What RFC 9111 §1.2.2 says to use for a delta-seconds too large to represent.
    static let maxDeltaSeconds = 2_147_483_648

    /// Directives we do not act on are skipped; one whose value is malformed counts as its most
    /// cautious reading (`max-age=soon` as 0).
    init(_ header: String?) {
        guard let header else { return }
        for directive in Self.directives(header) {
            switch directive.name {
            case "no-store", "private": noStore = true
            case "no-cache": noCache = true
            case "must-revalidate", "proxy-revalidate": mustRevalidate = true
            case "s-maxage": sharedMaxAge = Self.deltaSeconds(directive.value)
            case "max-age": maxAge = Self.deltaSeconds(directive.value)
            case "stale-while-revalidate": staleWhileRevalidate = Self.deltaSeconds(directive.value)
            default: break
            }
        }
    }

    /// How long a cached copy stays fresh: nil when the object must not be stored. `expires`
    /// (an HTTP date) counts only without `max-age` or `s-maxage`, measured from `now` (Unix
    /// seconds); one that cannot be parsed, such as `0`, means already expired (§5.3).
    func freshness(expires: String?, now: Int64) -> Freshness? {
        guard !noStore else { return nil }
        var freshness = Freshness()
        if noCache {
            freshness.ttl = 0
        } else if let age = sharedMaxAge ?? maxAge {
            freshness.ttl = Double(age)
        } else if let expires {
            let until = HTTPDate.parse(expires) ?? now
            freshness.ttl = Double(min(max(0, until &- now), Int64(Self.maxDeltaSeconds)))
        }
        if noCache || mustRevalidate {
            freshness.staleWhileRevalidate = 0
        } else if let window = staleWhileRevalidate {
            freshness.staleWhileRevalidate = Double(window)
        }
        return freshness
    }

    /// The freshness of an object from its stored metadata, now.
    static func freshness(_ metadata: ObjectMetadata) -> Freshness? {
        var cacheControl: String?, expires: String?
        for header in metadata.extraHeaders {
            switch header.name.lowercased() {
            case "cache-control": cacheControl = cacheControl.map { $0 + ", " + header.value } ?? header.value
            case "expires": expires = expires ?? header.value
            default: break
            }
        }
        return CacheControl(cacheControl).freshness(expires: expires, now: Int64(time(nil)))
    }

    /// `1*DIGIT`, saturating; nil when the value is missing or not digits (then the caller's
    /// cautious default applies: 0).
    private static func deltaSeconds(_ value: Substring?) -> Int {
        guard let value, !value.isEmpty else { return 0 }
        var seconds = 0
        for byte in value.utf8 {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return 0 }
            seconds = min(seconds * 10 + Int(byte - UInt8(ascii: "0")), maxDeltaSeconds)
        }
        return seconds
    }

    /// `name[=value]` pairs separated by commas, names lowercased, quoted values unquoted (a
    /// comma inside quotes does not separate).
    static func directives(_ header: String) -> [(name: String, value: Substring?)] {
        var result: [(name: String, value: Substring?)] = []
        var rest = Substring(header)
        while !rest.isEmpty {
            var end = rest.startIndex
            var quoted = false
            while end < rest.endIndex {
                let character = rest.utf8[end]
                if character == UInt8(ascii: "\"") { quoted.toggle() }
                if character == UInt8(ascii: ","), !quoted { break }
                end = rest.utf8.index(after: end)
            }
            let item = rest[..<end]
            rest = end < rest.endIndex ? rest[rest.utf8.index(after: end)...] : rest[rest.endIndex...]
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = parts[0].trimmingWhitespace().lowercased()
            guard !name.isEmpty else { continue }
            var value = parts.count > 1 ? Substring(parts[1].trimmingWhitespace()) : nil
            if let quotedValue = value, quotedValue.utf8.count >= 2, quotedValue.utf8.first == UInt8(ascii: "\""),
               quotedValue.utf8.last == UInt8(ascii: "\"")
            {
                value = quotedValue.dropFirst().dropLast()
            }
            result.append((name, value))
        }
        return result
    }
}
