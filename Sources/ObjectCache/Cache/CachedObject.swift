/// One object held in memory: its bytes, stored once (gzip-compressed when that pays), and
/// the metadata needed to answer GET, HEAD, ranges and conditionals without S3.
///
/// Immutable and shared: a thread serving a hit holds a reference while it writes, so an
/// eviction in the meantime frees the memory only after that response is done.
public final class CachedObject: Sendable {
    /// The bytes as stored: gzip when `isCompressed`, else the object itself.
    public let body: [UInt8]
    public let isCompressed: Bool
    /// Length of the object as S3 holds it (what `Content-Length` says for identity responses).
    public let originalLength: Int
    public let metadata: ObjectMetadata
    /// Response header lines for the whole object, rendered once when it was stored.
    public let headerLines: HeaderLines

    public init(
        body: [UInt8], isCompressed: Bool, originalLength: Int, metadata: ObjectMetadata, headerLines: HeaderLines = HeaderLines()
    ) {
        self.body = body
        self.isCompressed = isCompressed
        self.originalLength = originalLength
        self.metadata = metadata
        self.headerLines = headerLines
    }

    /// Bytes this object keeps alive: the body's allocation (its capacity, which can exceed its
    /// count), the metadata's strings and the rendered header lines.
    public var cost: Int { body.capacity + metadata.cost + headerLines.cost }
}

/// Response header lines that stay the same for as long as an object is cached, rendered by
/// whoever stores it (`Name: value` lines ending in CRLF), so that answering a hit only adds
/// what changes from request to request.
public struct HeaderLines: Sendable, Equatable {
    /// For a 200 with the object's own bytes; empty when nothing was rendered.
    public var identity: String
    /// For a 200 with the stored gzip bytes; empty when the body is not compressed.
    public var gzip: String

    public init(identity: String = "", gzip: String = "") {
        self.identity = identity
        self.gzip = gzip
    }

    var cost: Int { identity.utf8.count + gzip.utf8.count }
}

/// Response metadata of an object as S3 reported it.
public struct ObjectMetadata: Sendable, Equatable {
    public var contentType: String
    /// S3's entity tag, quoted as S3 sends it (`"9b2c…"`).
    public var etag: String
    /// `Last-Modified` as S3 sent it (an IMF-fixdate).
    public var lastModified: String
    /// Other headers relayed to clients (`Cache-Control`, `Content-Disposition`, …), in S3's order.
    public var extraHeaders: [Header]

    public struct Header: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(contentType: String, etag: String, lastModified: String, extraHeaders: [Header] = []) {
        self.contentType = contentType
        self.etag = etag
        self.lastModified = lastModified
        self.extraHeaders = extraHeaders
    }

    var cost: Int {
        contentType.utf8.count + etag.utf8.count + lastModified.utf8.count
            + extraHeaders.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 32 }
    }
}

/// What the cache remembers about a key.
public enum CachedState: Sendable {
    case object(CachedObject)
    /// An object in the file tier: its metadata as of this record, its bytes in `body`.
    case file(CachedFile)
    /// S3 said the key does not exist (negative caching).
    case missing
}

/// How long an object may be served without asking S3, as its own metadata says; what it
/// leaves unsaid the configured defaults decide.
public struct Freshness: Sendable, Equatable {
    /// Seconds fresh (`max-age`, `s-maxage`, `Expires`); nil for the configured `CACHE_TTL`.
    /// Capped by `CACHE_TTL_MAX`; 0 revalidates on every request (`no-cache`).
    public var ttl: Double?
    /// Seconds after expiry an entry may be served while another request revalidates it
    /// (`stale-while-revalidate`); nil for the configured `CACHE_SWR`.
    public var staleWhileRevalidate: Double?

    public init(ttl: Double? = nil, staleWhileRevalidate: Double? = nil) {
        self.ttl = ttl
        self.staleWhileRevalidate = staleWhileRevalidate
    }

    /// Everything as configured.
    public static let configured = Freshness()
}

extension CachedState {
    /// The object's metadata; nil for a remembered 404.
    public var metadata: ObjectMetadata? {
        switch self {
        case let .object(object): object.metadata
        case let .file(file): file.metadata
        case .missing: nil
        }
    }
}

/// An object whose bytes are in the file tier, with the metadata a response about it carries.
public final class CachedFile: Sendable {
    public let body: FileBody
    public let metadata: ObjectMetadata

    public init(body: FileBody, metadata: ObjectMetadata) {
        self.body = body
        self.metadata = metadata
    }
}

/// A cache entry with its timing.
public final class CacheRecord: Sendable {
    public let state: CachedState
    /// Monotonic seconds until which the entry is served without asking S3.
    public let freshUntil: Double
    /// Monotonic seconds until which an expired entry may be served at once while another
    /// request revalidates it (stale-while-revalidate); at most `keepUntil`.
    public let revalidatingUntil: Double
    /// Monotonic seconds until which an expired entry may still be revalidated, or served
    /// when S3 fails (stale-if-error); the entry is dropped after that.
    public let keepUntil: Double
    /// Bytes charged to the cache bound: content plus a fixed overhead for the key, the
    /// record, and the policy's and dictionary's slots.
    public let cost: Int

    /// Bookkeeping bytes per entry beyond the key and content (object headers, policy slot,
    /// dictionary bucket), measured rather than guessed: see the cache memory test.
    public static let overhead = 256

    public init(state: CachedState, key: CacheKey, freshUntil: Double, keepUntil: Double, revalidatingUntil: Double? = nil) {
        self.state = state
        self.freshUntil = freshUntil
        self.keepUntil = max(freshUntil, keepUntil)
        self.revalidatingUntil = min(max(freshUntil, revalidatingUntil ?? freshUntil), self.keepUntil)
        var cost = Self.overhead + key.byteCount
        switch state {
        case let .object(object): cost += object.cost
        case let .file(file): cost += file.metadata.cost
        case .missing: break
        }
        self.cost = cost
    }

    public func isFresh(at now: Double) -> Bool { now < freshUntil }

    /// Whether, expired at `now`, the entry may answer while another request revalidates it.
    public func servesWhileRevalidating(at now: Double) -> Bool { now < revalidatingUntil }

    /// The same entry expired at `now` (a soft purge): the next read revalidates it, and no
    /// read is answered from it while that happens; it stays for stale-if-error.
    func expired(at now: Double) -> CacheRecord {
        guard now < freshUntil || now < revalidatingUntil else { return self }
        return CacheRecord(
            state: state, freshUntil: min(freshUntil, now), revalidatingUntil: min(revalidatingUntil, now),
            keepUntil: keepUntil, cost: cost)
    }

    private init(state: CachedState, freshUntil: Double, revalidatingUntil: Double, keepUntil: Double, cost: Int) {
        self.state = state
        self.freshUntil = freshUntil
        self.revalidatingUntil = revalidatingUntil
        self.keepUntil = keepUntil
        self.cost = cost
    }
}
