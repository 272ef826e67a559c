/// S3's bucket naming rules (general purpose buckets).
enum BucketName {
    /// 3–63 characters of lower-case letters, digits, `.` and `-`; starting and ending with a
    /// letter or digit; no `..`; not shaped like an IPv4 address; none of AWS's reserved prefixes and suffixes.
    static func isValid(_ name: some StringProtocol) -> Bool {
        let bytes = Array(name.utf8)
        guard (3...63).contains(bytes.count) else { return false }
        let isLowerAlnum: (UInt8) -> Bool = { (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) }
        guard bytes.allSatisfy({ isLowerAlnum($0) || $0 == 0x2e || $0 == 0x2d }) else { return false }
        guard isLowerAlnum(bytes.first!), isLowerAlnum(bytes.last!) else { return false }
        let text = String(name)
        if text.contains("..") || text.contains(".-") || text.contains("-.") { return false }
        if looksLikeIPv4(text) { return false }
        for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] where text.hasPrefix(prefix) { return false }
        for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3"] where text.hasSuffix(suffix) { return false }
        return true
    }

    private static func looksLikeIPv4(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
    }
}
