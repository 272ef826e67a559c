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

    /// Whether an `If-Match` list names any of `tags`, by strong comparison. `*` matches anything.
    static func matchHits(_ header: String, anyOf tags: [String]) -> Bool {
        if header.trimmingWhitespace() == "*" { return true }
        return header.split(separator: ",").contains { candidate in tags.contains { strongMatch(String(candidate), $0) } }
    }

    /// The validator of the gzip representation: a distinct strong tag (as Apache's
    /// mod_deflate does), so no cache in front of us can confuse it with the identity bytes.
    static func gzipTag(_ etag: String) -> String {
        guard etag.hasSuffix("\"") else { return etag + gzipSuffix }
        return String(etag.dropLast()) + gzipSuffix + "\""
    }

    private static let gzipSuffix = "-gzip"

    /// A tag list with every gzip tag the gateway issued turned back into S3's tag, for
    /// conditionals that S3 evaluates.
    static func identityTags(_ header: String) -> String {
        guard header.contains(gzipSuffix + "\"") else { return header }
        return header.split(separator: ",", omittingEmptySubsequences: false).map { item -> String in
            let tag = item.trimmingWhitespace()
            guard tag.hasSuffix(gzipSuffix + "\"") else { return tag }
            return String(tag.dropLast(gzipSuffix.count + 1)) + "\""
        }.joined(separator: ", ")
    }

    /// Whether a header is `*` or a comma-separated list of entity tags (`"…"` or `W/"…"`, with
    /// the characters RFC 9110 §8.8.3 allows between the quotes).
    static func isTagList(_ header: String) -> Bool {
        if header.trimmingWhitespace() == "*" { return true }
        var sawTag = false
        for item in header.split(separator: ",", omittingEmptySubsequences: true) {
            let tag = item.trimmingWhitespace()
            if tag.isEmpty { continue }
            let opaque = tag.hasPrefix("W/") ? tag.utf8.dropFirst(2) : tag.utf8[...]
            guard opaque.count >= 2, opaque.first == UInt8(ascii: "\""), opaque.last == UInt8(ascii: "\""),
                  opaque.dropFirst().dropLast().allSatisfy({ $0 == 0x21 || ($0 >= 0x23 && $0 != 0x7f) })
            else { return false }
            sawTag = true
        }
        return sawTag
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

