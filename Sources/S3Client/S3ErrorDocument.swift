/// The fields of an S3 XML error body that we report.
///
/// ```xml
/// <Error><Code>NoSuchKey</Code><Message>…</Message><RequestId>…</RequestId></Error>
/// ```
/// A tiny extractor rather than an XML parser: the body is at most 64 KiB, the three
/// elements hold plain text, and Foundation's XMLParser would pull in libxml2 and ICU.
public struct S3ErrorDocument: Sendable, Equatable {
    /// `<Code>`, e.g. `NoSuchKey`, `SignatureDoesNotMatch`.
    public var code: String?
    /// `<Message>`, human-readable.
    public var message: String?
    /// `<RequestId>`, what AWS support asks for.
    public var requestID: String?

    public init(code: String?, message: String?, requestID: String?) {
        self.code = code
        self.message = message
        self.requestID = requestID
    }

    /// Reads an error body; nil when it has no `<Error` element (an HTML page from a
    /// proxy, an empty body, a truncated document).
    public init?(parsing body: some Collection<UInt8>) {
        let bytes = Array(body)
        guard bytes.firstRange(of: Array("<Error".utf8)) != nil else { return nil }
        code = Self.text(of: "Code", in: bytes)
        message = Self.text(of: "Message", in: bytes)
        requestID = Self.text(of: "RequestId", in: bytes)
    }

    /// Decoded text of the first `<name>…</name>`, trimmed; nil when absent or not closed.
    static func text(of name: String, in bytes: [UInt8]) -> String? {
        guard let open = bytes.firstRange(of: Array("<\(name)>".utf8)),
            let close = bytes[open.upperBound...].firstRange(of: Array("</\(name)>".utf8))
        else { return nil }
        let raw = String(decoding: bytes[open.upperBound..<close.lowerBound], as: UTF8.self)
        return decodeEntities(raw).trimmingASCIIWhitespace()
    }

    /// Replaces the five predefined XML entities and numeric references; anything else
    /// that starts with `&` is left as it is.
    ///
    /// Scalar by scalar, not by `Character`: a combining mark after the `;` would otherwise
    /// form one character with it, and the reference would go undecoded.
    static func decodeEntities(_ text: String) -> String {
        guard text.utf8.contains(UInt8(ascii: "&")) else { return text }
        let scalars = Array(text.unicodeScalars)
        var output = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            index += 1
            guard scalar == "&",
                let semicolon = scalars[index..<min(index + 11, scalars.count)].firstIndex(of: ";"),
                let decoded = entity(Substring(String(String.UnicodeScalarView(scalars[index..<semicolon]))))
            else {
                output.append(scalar)
                continue
            }
            output.append(contentsOf: decoded.unicodeScalars)
            index = semicolon + 1
        }
        return String(output)
    }

    private static func entity(_ name: Substring) -> String? {
        switch name {
        case "amp": return "&"
        case "lt": return "<"
        case "gt": return ">"
        case "quot": return "\""
        case "apos": return "'"
        default:
            guard name.hasPrefix("#") else { return nil }
            let digits = name.dropFirst()
            let value = digits.hasPrefix("x") || digits.hasPrefix("X")
                ? UInt32(digits.dropFirst(), radix: 16) : UInt32(digits, radix: 10)
            return value.flatMap(Unicode.Scalar.init).map { String(Character($0)) }
        }
    }
}

extension String {
    /// Drops leading and trailing spaces, tabs and line breaks.
    func trimmingASCIIWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
