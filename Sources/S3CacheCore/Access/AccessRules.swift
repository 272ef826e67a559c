/// What a bucket's rule lets a client do.
public enum AccessLevel: String, Sendable, Equatable {
    /// GET and HEAD.
    case read
    /// PUT, DELETE and PURGE as well as reads.
    case write
    /// Everything the gateway offers.
    case all

    func permits(_ method: ObjectMethod) -> Bool {
        switch (self, method) {
        case (.read, .get), (.read, .head): return true
        case (.read, _): return false
        case (.write, _), (.all, _): return true
        }
    }
}

/// The object methods the gateway serves.
public enum ObjectMethod: String, Sendable, CaseIterable {
    case get = "GET", head = "HEAD", put = "PUT", delete = "DELETE"
    /// Drops cached copies (one key, a prefix, a bucket); S3 is not asked.
    case purge = "PURGE"

    /// The `Allow` header value for a 405.
    static let allowHeader = allCases.map(\.rawValue).joined(separator: ", ")
}

/// Per-bucket access rules from `ALLOWED_BUCKETS` (`public:read,private:all,local:all`).
///
/// A bucket that is not listed is refused for every method, HEAD included.
public struct AccessRules: Sendable, Equatable, CustomStringConvertible {
    public private(set) var levels: [String: AccessLevel]

    /// Why a rules string was refused.
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// No bucket at all (`ANONYMOUS_BUCKETS=` set empty: nothing without a key).
    public static let none = AccessRules(levels: [:])

    private init(levels: [String: AccessLevel]) {
        self.levels = levels
    }

    /// `text` as `init(parsing:)` reads it, or no bucket at all when it is empty.
    public init(parsingAllowingNone text: String) throws(ParseError) {
        if text.trimmingWhitespace().isEmpty {
            self = .none
        } else {
            try self.init(parsing: text)
        }
    }

    public init(parsing text: String) throws(ParseError) {
        var levels: [String: AccessLevel] = [:]
        for entry in text.split(separator: ",") {
            let parts = entry.split(separator: ":", omittingEmptySubsequences: false).map { $0.trimmingWhitespace() }
            guard parts.count == 2 else {
                throw ParseError(description: "entry \"\(entry.trimmingWhitespace())\" is not bucket:level")
            }
            guard BucketName.isValid(parts[0]) else {
                throw ParseError(description: "\"\(parts[0])\" is not a valid S3 bucket name")
            }
            guard let level = AccessLevel(rawValue: parts[1].lowercased()) else {
                throw ParseError(description: "access level \"\(parts[1])\" for \(parts[0]) is not read, write or all")
            }
            guard levels.updateValue(level, forKey: parts[0]) == nil else {
                throw ParseError(description: "bucket \(parts[0]) is listed twice")
            }
        }
        guard !levels.isEmpty else { throw ParseError(description: "no bucket is listed") }
        self.levels = levels
    }

    /// Whether `method` is allowed on `bucket`.
    public func permits(_ method: ObjectMethod, on bucket: String) -> Bool {
        levels[bucket]?.permits(method) ?? false
    }

    /// `public:read,private:all` with buckets sorted, for the startup log (`none` for no bucket).
    public var description: String {
        levels.isEmpty ? "none" : levels.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value.rawValue)" }.joined(separator: ",")
    }
}

/// Who may do what: `ALLOWED_BUCKETS` bounds everything; anonymous requests get
/// `ANONYMOUS_BUCKETS` within it, a gateway key its grants within it.
struct Permissions {
    let allowed: AccessRules
    let anonymous: AccessRules

    func permits(_ method: ObjectMethod, on bucket: String, by principal: Principal) -> Bool {
        guard allowed.permits(method, on: bucket) else { return false }
        switch principal {
        case .anonymous: return anonymous.permits(method, on: bucket)
        case let .key(key): return key.grants.permits(method, on: bucket)
        }
    }

    /// Whether anyone may read the bucket without a key: if not, responses are `private`, so
    /// that a shared cache in front (a CDN) never hands them to someone else.
    func isPublic(_ bucket: String) -> Bool {
        permits(.get, on: bucket, by: .anonymous)
    }
}
