/// `If-Match` and `If-None-Match` on PUT and DELETE (RFC 9110 §13.1.1, §13.1.2): a write that
/// must not overwrite a newer version (a lost update) or an existing object.
struct WriteConditions {
    var ifMatch: String?
    var ifNoneMatch: String?

    init(_ exchange: any Exchange) throws {
        ifMatch = exchange.param("HTTP_IF_MATCH").map { $0.trimmingWhitespace() }
        ifNoneMatch = exchange.param("HTTP_IF_NONE_MATCH").map { $0.trimmingWhitespace() }
        for value in [ifMatch, ifNoneMatch].compactMap({ $0 }) where !EntityTags.isTagList(value) {
            throw HTTPError.badRequest("If-Match and If-None-Match take * or a list of quoted entity tags")
        }
    }

    var isEmpty: Bool { ifMatch == nil && ifNoneMatch == nil }

    /// Evaluates the conditions against S3's current version (`current`: its entity tag, nil when
    /// the object does not exist); throws 412 when they fail. The gateway's gzip tag names the
    /// same version as S3's.
    func check(current: String?) throws {
        let tags = current.map { [$0, EntityTags.gzipTag($0)] } ?? []
        if let ifMatch, current == nil || !EntityTags.matchHits(ifMatch, anyOf: tags) { throw Self.failed }
        if let ifNoneMatch, current != nil, EntityTags.noneMatchHits(ifNoneMatch, anyOf: tags) { throw Self.failed }
    }

    /// The conditions as S3 evaluates them itself, atomically with the write: `If-Match` with
    /// S3's own tags, and `If-None-Match: *`, the forms S3 supports on writes.
    var forwarded: [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = []
        if let ifMatch, ifMatch != "*" { headers.append(("If-Match", EntityTags.identityTags(ifMatch))) }
        if ifNoneMatch == "*" { headers.append(("If-None-Match", "*")) }
        return headers
    }

    private static let failed = HTTPError(status: 412, code: "precondition_failed", message: "precondition failed")
}
