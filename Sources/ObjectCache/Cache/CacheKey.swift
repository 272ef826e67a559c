#if canImport(Glibc)
import Glibc
#endif

/// An object's identity in the cache: `bucket/key`, compared and hashed by its UTF-8 bytes.
///
/// S3 compares keys byte for byte; Swift's `String` equality is canonical equivalence, under
/// which `café` (NFC) equals `cafe\u{301}` (NFD) and KELVIN SIGN equals `K`. Keyed by `String`,
/// one object's body would be served for another key. Every table of the cache (entries, flights,
/// shard choice) uses this type, so no table can compare keys any other way.
public struct CacheKey: Hashable, Sendable, CustomStringConvertible {
    public let text: String

    public init(_ text: String) {
        var text = text
        text.makeContiguousUTF8()  // so that comparing and hashing never copy
        self.text = text
    }

    /// Bytes of the key, for the cost it is charged.
    public var byteCount: Int { text.utf8.count }

    public static func == (lhs: CacheKey, rhs: CacheKey) -> Bool {
        guard lhs.text.utf8.count == rhs.text.utf8.count else { return false }
        var left = lhs.text, right = rhs.text
        return left.withUTF8 { a in right.withUTF8 { b in a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 } }
    }

    public func hash(into hasher: inout Hasher) {
        var text = text
        text.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Whether the key begins with the bytes of `prefix` (compared as bytes, as `==` does).
    public func hasPrefix(_ prefix: String) -> Bool {
        text.utf8.starts(with: prefix.utf8)
    }

    public var description: String { text }
}

extension CacheKey: ExpressibleByStringLiteral {
    public init(stringLiteral text: String) { self.init(text) }
}
