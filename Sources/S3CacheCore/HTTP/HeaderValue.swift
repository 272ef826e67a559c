/// Header field values that may be stored and relayed (RFC 9110 §5.5).
enum HeaderValue {
    /// Whether `value` is free of control characters: C0 controls other than horizontal tab,
    /// and DEL. A CR or LF would end the header line; the others are refused by careful
    /// recipients and smuggle meaning past careless ones.
    static func isSafe(_ value: String) -> Bool {
        !value.utf8.contains { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7f }
    }
}
