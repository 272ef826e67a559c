/// A single byte range from a `Range` header, resolved against the object's length.
enum ByteRange: Equatable {
    /// No usable range: serve the whole object (absent, multiple ranges, another unit, or
    /// syntactically invalid, which RFC 9110 §14.2 says to ignore).
    case whole
    /// Bytes `start...end`, both inclusive.
    case partial(start: Int, end: Int)
    /// Syntactically valid but outside the object: 416.
    case unsatisfiable

    /// RFC 9110 §14.1.2: `bytes=a-b`, `bytes=a-`, `bytes=-n`. Several ranges are answered
    /// with the whole object, which the RFC allows and which avoids multipart bodies.
    ///
    /// Positions are read with saturation: a last position past the end (however many digits)
    /// means "to the end", a first position past the end is unsatisfiable, and a suffix longer
    /// than the object is the whole object as a 206.
    static func parse(_ header: String?, length: Int) -> ByteRange {
        guard let header, let spec = bytesRangeSet(header) else { return .whole }
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return .whole }
        let first = spec[..<dash].trimmingWhitespace(), last = spec[spec.index(after: dash)...].trimmingWhitespace()
        if first.isEmpty {
            guard let suffix = decimal(last) else { return .whole }
            guard suffix > 0, length > 0 else { return .unsatisfiable }
            return .partial(start: suffix >= length ? 0 : length - suffix, end: length - 1)
        }
        guard let start = decimal(first) else { return .whole }
        let end: Int
        if last.isEmpty {
            end = length - 1
        } else {
            guard let value = decimal(last), value >= start else { return .whole }
            end = min(value, length - 1)
        }
        return start < length ? .partial(start: start, end: end) : .unsatisfiable
    }

    /// Whether S3 should see this `Range` header: a single, well-formed byte range. Anything
    /// else is ignored by us, and must not reach S3, which would read `items=0-5` as bytes.
    static func isForwardable(_ header: String) -> Bool {
        parse(header, length: .max) != .whole
    }

    /// The range set after `bytes=`; the unit is case-insensitive (RFC 9110 §14.1).
    private static func bytesRangeSet(_ header: String) -> Substring? {
        guard let equals = header.firstIndex(of: "="),
              header[..<equals].trimmingWhitespace().lowercased() == "bytes"
        else { return nil }
        return header[header.index(after: equals)...]
    }

    /// A run of ASCII digits as a number, `Int.max` when it would not fit; nil when empty or
    /// not all digits (a sign, a space, a `0x`).
    static func decimal(_ text: String) -> Int? {
        guard !text.isEmpty else { return nil }
        var value = 0
        for byte in text.utf8 {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = shifted.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            value = overflow1 || overflow2 ? .max : next
        }
        return value
    }
}
