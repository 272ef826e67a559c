/// The client's headers that shape a read: ranges, conditionals, accepted codings.
struct ReadRequest {
    var range: String?
    var ifRange: String?
    var ifNoneMatch: String?
    var ifModifiedSince: String?
    var ifMatch: String?
    var ifUnmodifiedSince: String?
    var acceptEncoding: String?

    init(_ exchange: any Exchange) {
        range = exchange.param("HTTP_RANGE")
        ifRange = exchange.param("HTTP_IF_RANGE")
        ifNoneMatch = exchange.param("HTTP_IF_NONE_MATCH")
        ifModifiedSince = exchange.param("HTTP_IF_MODIFIED_SINCE")
        ifMatch = exchange.param("HTTP_IF_MATCH")
        ifUnmodifiedSince = exchange.param("HTTP_IF_UNMODIFIED_SINCE")
        acceptEncoding = exchange.param("HTTP_ACCEPT_ENCODING")
    }

    /// Headers to forward when S3 answers the request itself (bypass): S3 then applies them.
    var forwardedHeaders: [(name: String, value: String)] {
        [("Range", range), ("If-Range", ifRange), ("If-None-Match", ifNoneMatch), ("If-Modified-Since", ifModifiedSince),
         ("If-Match", ifMatch), ("If-Unmodified-Since", ifUnmodifiedSince)]
            .compactMap { name, value in value.map { (name, $0) } }
    }

    /// RFC 9110 §13.2.2 order of precondition evaluation, against what we hold.
    enum Precondition: Equatable {
        case proceed
        case notModified
        case failed
    }

    func evaluate(etags: [String], strongETag: String, lastModified: String) -> Precondition {
        let modified = HTTPDate.parse(lastModified)
        if let ifMatch {
            let matches = ifMatch.trimmingWhitespace() == "*"
                || ifMatch.split(separator: ",").contains { EntityTags.strongMatch(String($0), strongETag) }
            if !matches { return .failed }
        } else if let ifUnmodifiedSince, let limit = HTTPDate.parse(ifUnmodifiedSince), let modified, modified > limit {
            return .failed
        }
        if let ifNoneMatch {
            if EntityTags.noneMatchHits(ifNoneMatch, anyOf: etags) { return .notModified }
        } else if let ifModifiedSince, let since = HTTPDate.parse(ifModifiedSince), let modified, modified <= since {
            return .notModified
        }
        return .proceed
    }

    /// The range to serve, honouring `If-Range` (a stale validator means: send everything).
    func byteRange(length: Int, strongETag: String, lastModified: String) -> ByteRange {
        guard range != nil else { return .whole }
        if let ifRange {
            let stillValid = ifRange.hasPrefix("\"") || ifRange.hasPrefix("W/")
                ? EntityTags.strongMatch(ifRange, strongETag)
                : ifRange.trimmingWhitespace() == lastModified
            if !stillValid { return .whole }
        }
        return ByteRange.parse(range, length: length)
    }
}
