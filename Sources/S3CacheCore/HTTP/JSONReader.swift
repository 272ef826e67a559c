/// A JSON value read from a request body (RFC 8259), without Foundation.
enum JSONValue: Equatable, Sendable {
    /// Members in document order; a repeated name keeps every occurrence, lookups take the first.
    case object([Member])
    case array([JSONValue])
    case string(String)
    /// The number as written (validated against the grammar); nobody here computes with it.
    case number(String)
    case bool(Bool)
    case null

    struct Member: Equatable, Sendable {
        var name: String
        var value: JSONValue
    }

    subscript(name: String) -> JSONValue? {
        guard case let .object(members) = self else { return nil }
        return members.first { $0.name == name }?.value
    }

    var string: String? {
        if case let .string(text) = self { return text }
        return nil
    }

    var array: [JSONValue]? {
        if case let .array(values) = self { return values }
        return nil
    }
}

/// Why a body is not JSON we accept; `offset` is the byte where reading stopped.
struct JSONReadError: Error, Equatable, CustomStringConvertible {
    var reason: String
    var offset: Int
    var description: String { "\(reason) at byte \(offset)" }
}

/// Reads one JSON document from untrusted bytes. Strict: nothing but whitespace after the
/// value, no comments, no trailing commas, strings valid UTF-8 with escapes as the RFC lists
/// them (a lone surrogate is refused), and nesting at most `maxDepth` deep, so that a hostile
/// body costs time linear in its length and a bounded stack.
struct JSONReader {
    private let bytes: [UInt8]
    private let maxDepth: Int
    private var position = 0

    static func parse(_ bytes: [UInt8], maxDepth: Int = 32) throws(JSONReadError) -> JSONValue {
        var reader = JSONReader(bytes: bytes, maxDepth: maxDepth)
        // A UTF-8 byte order mark is not JSON, but some senders write one (RFC 8259 §8.1 allows ignoring it).
        if bytes.starts(with: [0xef, 0xbb, 0xbf]) { reader.position = 3 }
        let value = try reader.value(depth: 0)
        reader.skipWhitespace()
        guard reader.position == bytes.count else { throw reader.failure("unexpected data after the JSON value") }
        return value
    }

    private init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    private func failure(_ reason: String) -> JSONReadError {
        JSONReadError(reason: reason, offset: position)
    }

    private mutating func skipWhitespace() {
        while position < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[position]) { position += 1 }
    }

    private mutating func value(depth: Int) throws(JSONReadError) -> JSONValue {
        skipWhitespace()
        guard position < bytes.count else { throw failure("unexpected end of input") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw failure("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONReadError) {
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard bytes.count - position >= expected.count, bytes[position..<(position + expected.count)].elementsEqual(expected) else {
            throw failure("unexpected character")
        }
        position += expected.count
    }

    private mutating func object(depth: Int) throws(JSONReadError) -> JSONValue {
        guard depth <= maxDepth else { throw failure("nested deeper than \(maxDepth)") }
        position += 1
        var members: [JSONValue.Member] = []
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw failure("expected a member name") }
            let name = try string()
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw failure("expected ':'") }
            position += 1
            members.append(JSONValue.Member(name: name, value: try value(depth: depth)))
            skipWhitespace()
            guard position < bytes.count else { throw failure("unexpected end of input") }
            switch bytes[position] {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"):
                position += 1
                return .object(members)
            default: throw failure("expected ',' or '}'")
            }
        }
    }

    private mutating func array(depth: Int) throws(JSONReadError) -> JSONValue {
        guard depth <= maxDepth else { throw failure("nested deeper than \(maxDepth)") }
        position += 1
        var values: [JSONValue] = []
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
            position += 1
            return .array(values)
        }
        while true {
            values.append(try value(depth: depth))
            skipWhitespace()
            guard position < bytes.count else { throw failure("unexpected end of input") }
            switch bytes[position] {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"):
                position += 1
                return .array(values)
            default: throw failure("expected ',' or ']'")
            }
        }
    }

    private mutating func number() throws(JSONReadError) -> String {
        let start = position
        func digits() -> Int {
            let first = position
            while position < bytes.count, bytes[position] >= UInt8(ascii: "0"), bytes[position] <= UInt8(ascii: "9") { position += 1 }
            return position - first
        }
        if bytes[position] == UInt8(ascii: "-") { position += 1 }
        let integerStart = position
        let integerDigits = digits()
        guard integerDigits > 0 else { throw failure("malformed number") }
        guard integerDigits == 1 || bytes[integerStart] != UInt8(ascii: "0") else { throw failure("number with a leading zero") }
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            guard digits() > 0 else { throw failure("malformed number") }
        }
        if position < bytes.count, bytes[position] | 0x20 == UInt8(ascii: "e") {
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
            guard digits() > 0 else { throw failure("malformed number") }
        }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    private mutating func string() throws(JSONReadError) -> String {
        position += 1  // the opening quote
        var text: [UInt8] = []
        while true {
            // Plain bytes are copied in runs up to the next quote, backslash or control byte.
            let runStart = position
            while position < bytes.count, bytes[position] != UInt8(ascii: "\""), bytes[position] != UInt8(ascii: "\\"),
                  bytes[position] >= 0x20
            {
                position += 1
            }
            text += bytes[runStart..<position]
            guard position < bytes.count else { throw failure("unterminated string") }
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                position += 1
                guard let string = String(validating: text, as: UTF8.self) else { throw failure("string is not valid UTF-8") }
                return string
            }
            guard byte == UInt8(ascii: "\\") else { throw failure("control character in string") }
            position += 1
            guard position < bytes.count else { throw failure("unterminated string") }
            let escaped = bytes[position]
            position += 1
            switch escaped {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): text.append(escaped)
            case UInt8(ascii: "b"): text.append(0x08)
            case UInt8(ascii: "f"): text.append(0x0c)
            case UInt8(ascii: "n"): text.append(0x0a)
            case UInt8(ascii: "r"): text.append(0x0d)
            case UInt8(ascii: "t"): text.append(0x09)
            case UInt8(ascii: "u"): try unicodeEscape(into: &text)
            default: throw failure("unknown escape in string")
            }
        }
    }

    /// `\uXXXX`, or a surrogate pair `\uD8xx\uDCxx`, appended as UTF-8.
    private mutating func unicodeEscape(into text: inout [UInt8]) throws(JSONReadError) {
        var scalar = try hexQuad()
        if (0xd800..<0xdc00).contains(scalar) {
            guard bytes.count - position >= 6, bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u") else {
                throw failure("lone surrogate in string")
            }
            position += 2
            let low = try hexQuad()
            guard (0xdc00..<0xe000).contains(low) else { throw failure("lone surrogate in string") }
            scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
        } else if (0xdc00..<0xe000).contains(scalar) {
            throw failure("lone surrogate in string")
        }
        guard let unicode = Unicode.Scalar(scalar) else { throw failure("invalid escape in string") }
        text += Array(String(Character(unicode)).utf8)
    }

    private mutating func hexQuad() throws(JSONReadError) -> UInt32 {
        guard bytes.count - position >= 4 else { throw failure("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("malformed \\u escape")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }
}
