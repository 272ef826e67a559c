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
        var out = ""
        write(.object(fields), to: &out)
        return out
    }

    static func write(_ value: Value, to out: inout String) {
        switch value {
        case let .string(text): appendQuoted(text, to: &out)
        case let .int(number): out += String(number)
        case let .double(number): out += number.isFinite ? String(number) : "null"
        case let .bool(flag): out += flag ? "true" : "false"
        case .null: out += "null"
        case let .object(fields):
            out += "{"
            for (index, (name, field)) in fields.enumerated() {
                if index > 0 { out += "," }
                appendQuoted(name, to: &out)
                out += ":"
                write(field, to: &out)
            }
            out += "}"
        }
    }

    /// Quotes `text`, escaping what RFC 8259 requires (quote, backslash, controls) and
    /// U+2028/U+2029 so that a line-oriented reader never splits a log line.
    static func appendQuoted(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x2028 || scalar.value == 0x2029 || scalar.value == 0x7f:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
