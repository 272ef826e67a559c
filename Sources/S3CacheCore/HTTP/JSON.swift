/// Just enough JSON writing for error bodies, health answers and log lines, without Foundation.
enum JSON {
    /// A value we write: strings, numbers, booleans, null and nested objects.
    enum Value {
        case string(String)
        case int(Int64)
        case double(Double)
        case bool(Bool)
        case null
        case object([(String, Value)])
    }

    static func object(_ fields: [(String, Value)]) -> String {
        var out: [UInt8] = []
        write(.object(fields), to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func write(_ value: Value, to out: inout [UInt8]) {
        switch value {
        case let .string(text): appendQuoted(text, to: &out)
        case let .int(number): out += String(number).utf8
        case let .double(number): out += (number.isFinite ? String(number) : "null").utf8
        case let .bool(flag): out += (flag ? "true" : "false").utf8
        case .null: out += "null".utf8
        case let .object(fields):
            out.append(UInt8(ascii: "{"))
            for (index, (name, field)) in fields.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                appendQuoted(name, to: &out)
                out.append(UInt8(ascii: ":"))
                write(field, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    static func appendQuoted(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        appendEscaped(text, to: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// Appends `text` escaped for a JSON string: quote, backslash and control characters as
    /// RFC 8259 requires, and also DEL and U+2028/U+2029, so that a line-oriented reader never
    /// splits a log line. Plain bytes are copied in runs.
    static func appendEscaped(_ text: String, to out: inout [UInt8]) {
        var text = text
        text.withUTF8 { bytes in
            var runStart = 0
            var index = 0
            while index < bytes.count {
                let byte = bytes[index]
                let escape: [UInt8]?
                var width = 1
                switch byte {
                case UInt8(ascii: "\""): escape = Array(#"\""#.utf8)
                case UInt8(ascii: "\\"): escape = Array(#"\\"#.utf8)
                case UInt8(ascii: "\n"): escape = Array(#"\n"#.utf8)
                case UInt8(ascii: "\r"): escape = Array(#"\r"#.utf8)
                case UInt8(ascii: "\t"): escape = Array(#"\t"#.utf8)
                case 0..<0x20, 0x7f: escape = unicodeEscape(UInt32(byte))
                // U+2028 and U+2029 are E2 80 A8 and E2 80 A9 in UTF-8.
                case 0xe2 where index + 2 < bytes.count && bytes[index + 1] == 0x80 && (bytes[index + 2] & 0xfe) == 0xa8:
                    escape = unicodeEscape(0x2000 | UInt32(bytes[index + 2] - 0x80))
                    width = 3
                default: escape = nil
                }
                if let escape {
                    out += UnsafeBufferPointer(rebasing: bytes[runStart..<index])
                    out += escape
                    index += width
                    runStart = index
                } else {
                    index += 1
                }
            }
            out += UnsafeBufferPointer(rebasing: bytes[runStart..<bytes.count])
        }
    }

    private static func unicodeEscape(_ value: UInt32) -> [UInt8] {
        let hex = Array("0123456789abcdef".utf8)
        return Array(#"\u"#.utf8) + [12, 8, 4, 0].map { hex[Int((value >> $0) & 0xf)] }
    }
}
