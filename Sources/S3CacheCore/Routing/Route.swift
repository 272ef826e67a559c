/// What a request URI asks for, parsed once from the raw `REQUEST_URI`.
public enum Route: Equatable, Sendable {
    /// `/objects/{bucket}/{key}` with both parts percent-decoded once and validated.
    case object(ObjectAddress)
    /// `/objects/…` whose bucket or key is unusable; never reaches S3.
    case invalidObject(reason: String)
    /// `GET /health`: liveness, answered by the worker alone.
    case health
    /// `GET /ready`: readiness, which checks that S3 answers.
    case ready
    /// `GET /stats`: cache statistics as JSON.
    case stats
    /// `GET /metrics`: Prometheus text exposition.
    case metrics
    /// `POST /notifications`: bucket event notifications that invalidate cached keys.
    case notifications
    case notFound

    /// Parses the raw request target as nginx received it (`$request_uri`).
    ///
    /// We never route on nginx's normalised `$uri`: it has already resolved `..` and decoded
    /// escapes, which is exactly what must be refused rather than followed into another bucket.
    public static func parse(requestURI: String) -> Route {
        // Bytes, not Characters, throughout: a combining mark after `?` or `/` would make one
        // Character with it, and the query or the split would go unnoticed.
        let path = requestURI[..<(requestURI.utf8.firstIndex(of: UInt8(ascii: "?")) ?? requestURI.endIndex)]
        switch path {
        case "/health": return .health
        case "/ready": return .ready
        case "/stats": return .stats
        case "/metrics": return .metrics
        case "/notifications": return .notifications
        default: break
        }
        let prefix = "/objects/"
        guard path.utf8.starts(with: prefix.utf8) else {
            return path == "/objects" ? .invalidObject(reason: "missing bucket and key") : .notFound
        }
        let rest = path[path.utf8.index(path.startIndex, offsetBy: prefix.utf8.count)...]
        // Split on the raw `/` first: an encoded %2F inside the bucket part stays in the bucket
        // name (and fails its rules) instead of moving the split.
        guard let slash = rest.utf8.firstIndex(of: UInt8(ascii: "/")) else { return .invalidObject(reason: "missing object key") }
        switch ObjectAddress.validated(rawBucket: rest[..<slash], rawKey: rest[rest.utf8.index(after: slash)...]) {
        case let .success(address): return .object(address)
        case let .failure(problem): return .invalidObject(reason: problem.reason)
        }
    }
}

/// A bucket and key that passed validation.
public struct ObjectAddress: Equatable, Sendable, CustomStringConvertible {
    public let bucket: String
    public let key: String

    struct Problem: Error {
        let reason: String
    }

    /// Largest key S3 accepts, in UTF-8 bytes.
    static let maxKeyBytes = 1024

    static func validated(rawBucket: Substring, rawKey: Substring) -> Result<ObjectAddress, Problem> {
        guard let bucket = PercentDecoding.decodeText(rawBucket), BucketName.isValid(bucket) else {
            return .failure(Problem(reason: "invalid bucket name"))
        }
        let keyBytes: [UInt8]
        if rawKey.utf8.contains(UInt8(ascii: "%")) {
            guard let decoded = PercentDecoding.decode(rawKey) else {
                return .failure(Problem(reason: "malformed percent-encoding in key"))
            }
            keyBytes = decoded
        } else {
            keyBytes = Array(rawKey.utf8)  // FastCGI parameters are valid UTF-8 already
        }
        guard !keyBytes.isEmpty else { return .failure(Problem(reason: "missing object key")) }
        guard keyBytes.count <= maxKeyBytes else {
            return .failure(Problem(reason: "object key longer than \(maxKeyBytes) bytes"))
        }
        guard let key = String(validating: keyBytes, as: UTF8.self) else {
            return .failure(Problem(reason: "object key is not valid UTF-8"))
        }
        if let problem = keyProblem(keyBytes) { return .failure(problem) }
        return .success(ObjectAddress(bucket: bucket, key: key))
    }

    /// Control characters and `.`/`..` segments, found in one pass over valid UTF-8.
    private static func keyProblem(_ bytes: [UInt8]) -> Problem? {
        var segmentStart = 0
        for index in bytes.indices {
            let byte = bytes[index]
            // C0 controls and DEL; C1 controls (U+0080–U+009F) are C2 80–C2 9F in UTF-8.
            if byte < 0x20 || byte == 0x7f || (byte == 0xc2 && index + 1 < bytes.count && bytes[index + 1] < 0xa0) {
                return Problem(reason: "object key contains control characters")
            }
            if byte == UInt8(ascii: "/") {
                if isDotSegment(bytes[segmentStart..<index]) { return dotSegment }
                segmentStart = index + 1
            }
        }
        return isDotSegment(bytes[segmentStart...]) ? dotSegment : nil
    }

    private static let dotSegment = Problem(reason: "object key contains a '.' or '..' segment")

    private static func isDotSegment(_ segment: ArraySlice<UInt8>) -> Bool {
        (segment.count == 1 || segment.count == 2) && segment.allSatisfy { $0 == UInt8(ascii: ".") }
    }

    public var description: String { "\(bucket)/\(key)" }
}

/// Percent-decoding of a URI path component, applied exactly once.
enum PercentDecoding {
    /// The decoded text, or nil when an escape is malformed or the bytes are not UTF-8. Without
    /// a `%` the text is taken as it is (FastCGI parameters are already valid UTF-8).
    static func decodeText(_ text: Substring) -> String? {
        guard text.utf8.contains(UInt8(ascii: "%")) else { return String(text) }
        return decode(text).flatMap { String(validating: $0, as: UTF8.self) }
    }

    /// The decoded bytes, or nil when a `%` is not followed by two hex digits.
    static func decode(_ text: Substring) -> [UInt8]? {
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                output.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                return nil
            }
            output.append(high << 4 | low)
        }
        return output
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
