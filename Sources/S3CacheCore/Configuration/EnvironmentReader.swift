/// Typed reads of `KEY=VALUE` settings, each failure naming the variable.
struct EnvironmentReader {
    let values: [String: String]

    /// The trimmed value, or nil when unset or blank (blank means "use the default").
    func raw(_ name: String) -> String? {
        guard let value = values[name]?.trimmingWhitespace(), !value.isEmpty else { return nil }
        return value
    }

    func string(_ name: String, default fallback: String) -> String { raw(name) ?? fallback }

    func bool(_ name: String, default fallback: Bool) throws(ConfigurationError) -> Bool {
        guard let value = raw(name) else { return fallback }
        switch value.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ConfigurationError(variable: name, value: value, reason: "expected true or false")
        }
    }

    func integer(_ name: String, default fallback: Int, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard let value = raw(name) else { return fallback }
        guard let number = Int(value), range.contains(number) else {
            throw ConfigurationError(
                variable: name, value: value,
                reason: "expected a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    /// Seconds, fractional allowed (`0.5`).
    func seconds(_ name: String, default fallback: Double, in range: ClosedRange<Double>) throws(ConfigurationError) -> Double {
        guard let value = raw(name) else { return fallback }
        guard let number = Double(value), number.isFinite, range.contains(number) else {
            throw ConfigurationError(
                variable: name, value: value,
                reason: "expected seconds from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    /// A byte size: a plain number is megabytes (as the seed's MAX_CACHE_SIZE), or a number
    /// with a unit: `B`, `K`/`KB`/`KiB`, `M`/`MB`/`MiB`, `G`/`GB`/`GiB` (all binary multiples).
    func size(_ name: String, default fallback: Int64?, in range: ClosedRange<Int64>) throws(ConfigurationError) -> Int64? {
        guard let value = raw(name) else { return fallback }
        guard let bytes = Self.parseSize(value), range.contains(bytes) else {
            throw ConfigurationError(
                variable: name, value: value,
                reason: "expected a size such as 300 (MB), 512K, 64M or 2G, from \(range.lowerBound) to \(range.upperBound) bytes")
        }
        return bytes
    }

    static func parseSize(_ text: String) -> Int64? {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let number = Int64(digits) else { return nil }
        let unit = text.dropFirst(digits.count).trimmingWhitespace().lowercased()
        let multiplier: Int64
        switch unit {
        case "b": multiplier = 1
        case "k", "kb", "kib": multiplier = 1 << 10
        case "", "m", "mb", "mib": multiplier = 1 << 20
        case "g", "gb", "gib": multiplier = 1 << 30
        default: return nil
        }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : bytes
    }

    /// An octal file mode such as `0660`.
    func octalMode(_ name: String, default fallback: UInt32) throws(ConfigurationError) -> UInt32 {
        guard let value = raw(name) else { return fallback }
        guard let mode = UInt32(value, radix: 8), mode <= 0o777 else {
            throw ConfigurationError(variable: name, value: value, reason: "expected an octal mode such as 0660")
        }
        return mode
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
