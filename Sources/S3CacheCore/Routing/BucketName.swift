/// S3's bucket naming rules (general purpose buckets).
enum BucketName {
    /// 3–63 characters of lower-case letters, digits, `.` and `-`; starting and ending with a
    /// letter or digit; no `..`, `.-` or `-.`; not shaped like an IPv4 address; none of AWS's
    /// reserved prefixes and suffixes.
    ///
    /// One pass over the bytes: it runs on every object request.
    static func isValid(_ name: some StringProtocol) -> Bool {
        var name = String(name)
        return name.withUTF8 { bytes in
            guard (3...63).contains(bytes.count) else { return false }
            var previous: UInt8 = 0
            var dots = 0
            var allDigitsOrDots = true
            for byte in bytes {
                let isLetter = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                let isDigit = (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                let isDot = byte == UInt8(ascii: "."), isDash = byte == UInt8(ascii: "-")
                guard isLetter || isDigit || isDot || isDash else { return false }
                if isDot { dots += 1 }
                if isLetter || isDash { allDigitsOrDots = false }
                // "..", ".-" and "-.": a punctuation byte next to a dot.
                let previousIsPunctuation = previous == UInt8(ascii: ".") || previous == UInt8(ascii: "-")
                if previousIsPunctuation && (isDot || isDash) && (isDot || previous == UInt8(ascii: ".")) { return false }
                previous = byte
            }
            let isAlphanumeric = { (byte: UInt8) in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
            }
            guard isAlphanumeric(bytes.first!), isAlphanumeric(bytes.last!) else { return false }
            if allDigitsOrDots && dots == 3 { return false }  // 192.168.5.4: no empty part, since ".." is refused
            return !hasReservedAffix(bytes)
        }
    }

    private static let reservedPrefixes = ["xn--", "sthree-", "amzn-s3-demo-"].map { Array($0.utf8) }
    private static let reservedSuffixes = ["-s3alias", "--ol-s3", ".mrap", "--x-s3"].map { Array($0.utf8) }

    private static func hasReservedAffix(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        reservedPrefixes.contains { bytes.starts(with: $0) }
            || reservedSuffixes.contains { $0.count <= bytes.count && bytes.reversed().starts(with: $0.reversed()) }
    }
}
