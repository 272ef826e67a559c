import S3Client

/// What the cache did for one response: the `X-Cache` value and the facts behind the
/// standard `Cache-Status` header (RFC 9211).
struct CacheReport: Equatable {
    enum Result: String {
        case hit = "HIT", miss = "MISS", revalidated = "REVALIDATED", stale = "STALE", bypass = "BYPASS"
    }

    var result: Result
    /// Status S3 answered when we asked it (nil when we did not).
    var forwardStatus: Int?
    /// Whether the response was stored in the cache.
    var stored = false
    /// Whether this request waited for another request's fetch instead of making its own.
    var collapsed = false
    /// Seconds of freshness left, for hits.
    var ttl: Int?
    /// Why, when it is not obvious: `too-large`, `range`, `stale-if-error`, `backend-busy`.
    var detail: String?

    static func hit(ttl: Int) -> CacheReport { CacheReport(result: .hit, ttl: ttl) }
    static func bypass(_ detail: String) -> CacheReport { CacheReport(result: .bypass, detail: detail) }

    /// The response headers that report this.
    var headers: [(name: String, value: String)] {
        [("X-Cache", result.rawValue), ("Cache-Status", cacheStatus)]
    }

    var cacheStatus: String {
        var value = "s3cache; "
        switch result {
        case .hit: value += "hit"
        case .miss: value += "fwd=uri-miss"
        // Refused a fetch (S3 busy), the stale copy was served without asking S3: RFC 9211 calls
        // that a hit; its ttl would be negative.
        case .stale where detail == "backend-busy": value += "hit"
        case .revalidated, .stale: value += "fwd=stale"
        case .bypass: value += "fwd=bypass"
        }
        if let forwardStatus { value += "; fwd-status=\(forwardStatus)" }
        if let ttl { value += "; ttl=\(ttl)" }
        if stored { value += "; stored" }
        if collapsed { value += "; collapsed" }
        if let detail { value += "; detail=\(detail)" }
        return value
    }
}

/// A read that failed once the cache had decided what it was doing: the error, and the report
/// its error response carries (`X-Cache` and `Cache-Status` are on every read response).
struct CacheReportedError: Error, CustomStringConvertible {
    let underlying: any Error
    let report: CacheReport

    init(_ underlying: any Error, report: CacheReport) {
        self.underlying = underlying
        var report = report
        if let backend = underlying as? S3Error {
            if case let .service(status, _, _, _) = backend { report.forwardStatus = status } else { report.forwardStatus = nil }
        }
        self.report = report
    }

    var description: String { String(describing: underlying) }
}
