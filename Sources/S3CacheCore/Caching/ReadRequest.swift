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
        // A range in another unit, or one we cannot read, is ignored (RFC 9110 §14.2): it
        // must not make a 206 anywhere, neither from the cache nor from S3.
        range = exchange.param("HTTP_RANGE").flatMap { ByteRange.isForwardable($0) ? $0 : nil }
        ifRange = exchange.param("HTTP_IF_RANGE")
        ifNoneMatch = exchange.param("HTTP_IF_NONE_MATCH")
        ifModifiedSince = exchange.param("HTTP_IF_MODIFIED_SINCE")
        ifMatch = exchange.param("HTTP_IF_MATCH")
        ifUnmodifiedSince = exchange.param("HTTP_IF_UNMODIFIED_SINCE")
        acceptEncoding = exchange.param("HTTP_ACCEPT_ENCODING")
    }

    /// The request as S3 can answer it, for reads S3 answers itself (bypass).
    ///
    /// S3 ignores `If-Range` and would send the range of whatever version it holds now, which a
    /// client resuming a download splices onto its older bytes. So a strong entity tag in
    /// `If-Range` becomes `If-Match` (S3 answers 412 if the object changed, and the caller asks
    /// again without the range: `withoutRange`), and any other validator drops the range: a
    /// whole 200 is always a correct answer to a range request.
    var forBackend: ReadRequest {
        guard range != nil, let ifRange else { return self }
        var request = self
        request.ifRange = nil
        if ifMatch == nil, Self.isStrongETag(ifRange) {
            request.ifMatch = ifRange.trimmingWhitespace()
        } else {
            request.range = nil
        }
        return request
    }

    /// Whether an `If-Range` value is a strong entity tag (`"…"`), not a weak one or a date.
    private static func isStrongETag(_ value: String) -> Bool {
        let tag = value.trimmingWhitespace()
        return tag.count >= 2 && tag.hasPrefix("\"") && tag.hasSuffix("\"")
    }

    /// The whole object, without the range or its `If-Range`: what to ask S3 once it refused
    /// the `If-Match` that `forBackend` put in place of `If-Range`.
    var withoutRange: ReadRequest {
        var request = self
        request.range = nil
        request.ifRange = nil
        return request
    }

    /// Headers to forward when S3 answers the request itself (bypass): S3 then applies them.
    /// Use on `forBackend`, which has no `If-Range` left for S3 to ignore.
    ///
    /// The gateway's own gzip entity tags become S3's tag: S3 never issued them, and both name
    /// the same version of the object.
    var forwardedHeaders: [(name: String, value: String)] {
        [("Range", range), ("If-Range", ifRange), ("If-None-Match", ifNoneMatch.map(EntityTags.identityTags)),
         ("If-Modified-Since", ifModifiedSince), ("If-Match", ifMatch.map(EntityTags.identityTags)),
         ("If-Unmodified-Since", ifUnmodifiedSince)]
            .compactMap { name, value in value.map { (name, $0) } }
    }

    /// RFC 9110 §13.2.2 order of precondition evaluation, against what we hold.
    enum Precondition: Equatable {
        case proceed
        case notModified
        case failed
    }

    /// Whether any precondition header was sent (most requests have none).
    var hasPreconditions: Bool {
        ifMatch != nil || ifUnmodifiedSince != nil || ifNoneMatch != nil || ifModifiedSince != nil
    }

    ///
    /// `etags` are every tag the gateway issues for the object: S3's, and the gzip form's when
    /// it may be stored compressed. Both name the current version, so both satisfy `If-Match`
    /// (strong comparison) and `If-None-Match` (weak comparison). `If-Range` is different: see
    /// `byteRange`.
    func evaluate(etags: [String], lastModified: String) -> Precondition {
        // Only the date conditionals need the object's date parsed.
        let modified = ifUnmodifiedSince != nil || ifModifiedSince != nil ? HTTPDate.parse(lastModified) : nil
        if let ifMatch {
            if !EntityTags.matchHits(ifMatch, anyOf: etags) { return .failed }
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
    ///
    /// Ranges are always cut from the object as S3 holds it, never from the gzip form, so only
    /// S3's own entity tag (`strongETag`) validates a range. A client holding part of the gzip
    /// representation names its gzip tag and gets the whole response, never identity bytes to
    /// splice onto gzip ones.
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
