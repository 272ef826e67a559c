/// Per-bucket origins allowed to call the gateway from a browser (`CORS_ORIGINS`), for pages
/// that use presigned URLs: `bucket:https://app.example.com|https://admin.example.com,...`,
/// or an origin of `*` for any.
public struct CORSOrigins: Sendable, Equatable {
    public private(set) var byBucket: [String: [String]] = [:]

    public init?(parsing text: String) {
        for entry in text.split(separator: ",") {
            let parts = entry.split(separator: ":", maxSplits: 1).map { $0.trimmingWhitespace() }
            guard parts.count == 2, BucketName.isValid(parts[0]), byBucket[parts[0]] == nil else { return nil }
            let origins = parts[1].split(separator: "|").map { $0.trimmingWhitespace() }
            guard !origins.isEmpty, origins.allSatisfy(Self.isOrigin) else { return nil }
            byBucket[parts[0]] = origins
        }
    }

    public var isEmpty: Bool { byBucket.isEmpty }

    /// `*`, or `scheme://host[:port]` with nothing after it (what browsers send as `Origin`).
    static func isOrigin(_ text: String) -> Bool {
        if text == "*" { return true }
        let host: Substring
        if text.hasPrefix("https://") {
            host = text.dropFirst(8)
        } else if text.hasPrefix("http://") {
            host = text.dropFirst(7)
        } else {
            return false
        }
        return !host.isEmpty && host.utf8.allSatisfy(isHostByte)
    }

    private static func isHostByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: ":"), UInt8(ascii: "["), UInt8(ascii: "]"):
            return true
        default:
            return false
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin` to `bucket`, or nil
    /// when that origin is not allowed there.
    func allowedOrigin(_ origin: String, bucket: String) -> String? {
        guard let origins = byBucket[bucket] else { return nil }
        if origins.contains(origin) { return origin }
        return origins.contains("*") ? "*" : nil
    }

    /// Headers of an answer to a request from an allowed origin.
    static func responseHeaders(allowOrigin: String) -> [(name: String, value: String)] {
        [("Access-Control-Allow-Origin", allowOrigin), ("Vary", "Origin"),
         ("Access-Control-Expose-Headers", "ETag, Content-Length, Content-Range, Last-Modified, X-Cache, Cache-Status")]
    }

    /// A preflight's requested headers, if they are header names (each echoed back as allowed).
    static func requestedHeaders(_ text: String) -> String? {
        let names = text.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
        guard names.count <= 32, names.allSatisfy({ name in
            name.utf8.count <= 64 && name.utf8.allSatisfy { (0x21...0x7e).contains($0) && $0 != UInt8(ascii: ",") }
        }) else { return nil }
        return names.joined(separator: ", ")
    }
}
