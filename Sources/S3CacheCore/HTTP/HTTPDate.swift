/// HTTP dates (RFC 9110 §5.6.7), parsed from bytes a client or S3 sent.
///
/// Recipients must accept all three forms: IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`,
/// the obsolete RFC 850 form `Sunday, 06-Nov-94 08:49:37 GMT`, and asctime
/// `Sun Nov  6 08:49:37 1994`. Every field has a fixed number of digits, so no value read from
/// the header can overflow: nothing here traps, whatever the input.
enum HTTPDate {
    /// Seconds since the epoch, or nil for anything that is not an HTTP date (the header is then
    /// ignored, as RFC 9110 §13.1.3 and §13.1.4 say for `If-Modified-Since` and `If-Unmodified-Since`).
    static func parse(_ text: String) -> Int64? {
        var text = text
        return text.withUTF8 { parse(bytes: $0) }
    }

    static func parse(bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
        var scanner = Scanner(bytes: bytes)
        scanner.skipSpaces()
        guard let weekdayLength = scanner.skipLetters(), weekdayLength >= 3 else { return nil }
        let fields: Fields?
        if scanner.consume(UInt8(ascii: ",")) {
            scanner.skipSpaces()
            fields = weekdayLength == 3 ? imfFixdate(&scanner) : rfc850(&scanner)
        } else {
            fields = weekdayLength == 3 ? asctime(&scanner) : nil
        }
        scanner.skipSpaces()
        guard let fields, scanner.atEnd else { return nil }
        return fields.secondsSinceEpoch
    }

    /// `06 Nov 1994 08:49:37 GMT` (after the weekday and comma).
    private static func imfFixdate(_ scanner: inout Scanner) -> Fields? {
        guard let day = scanner.digits(exactly: 2), scanner.consume(UInt8(ascii: " ")),
              let month = scanner.month(), scanner.consume(UInt8(ascii: " ")),
              let year = scanner.digits(exactly: 4), scanner.consume(UInt8(ascii: " ")),
              let time = scanner.timeOfDay(), scanner.consume(UInt8(ascii: " ")), scanner.consumeGMT()
        else { return nil }
        return Fields(year: year, month: month, day: day, time: time)
    }

    /// `06-Nov-94 08:49:37 GMT`: a two-digit year more than 50 years in the future means the
    /// past century (RFC 9110 §5.6.7); taken against 2000–2099 here, which agrees until 2050.
    private static func rfc850(_ scanner: inout Scanner) -> Fields? {
        guard let day = scanner.digits(exactly: 2), scanner.consume(UInt8(ascii: "-")),
              let month = scanner.month(), scanner.consume(UInt8(ascii: "-")),
              let shortYear = scanner.digits(exactly: 2), scanner.consume(UInt8(ascii: " ")),
              let time = scanner.timeOfDay(), scanner.consume(UInt8(ascii: " ")), scanner.consumeGMT()
        else { return nil }
        return Fields(year: shortYear >= 50 ? 1900 + shortYear : 2000 + shortYear, month: month, day: day, time: time)
    }

    /// `Nov  6 08:49:37 1994` (after the weekday): the day is space-padded.
    private static func asctime(_ scanner: inout Scanner) -> Fields? {
        guard scanner.consume(UInt8(ascii: " ")), let month = scanner.month(), scanner.consume(UInt8(ascii: " ")) else {
            return nil
        }
        let day: Int
        if scanner.consume(UInt8(ascii: " ")) {
            guard let digit = scanner.digits(exactly: 1) else { return nil }
            day = digit
        } else {
            guard let digits = scanner.digits(exactly: 2) else { return nil }
            day = digits
        }
        guard scanner.consume(UInt8(ascii: " ")), let time = scanner.timeOfDay(), scanner.consume(UInt8(ascii: " ")),
              let year = scanner.digits(exactly: 4)
        else { return nil }
        return Fields(year: year, month: month, day: day, time: time)
    }

    /// The fields of a date, each within the range its digit count allows.
    struct Fields {
        var year: Int  // 0...9999
        var month: Int  // 1...12
        var day: Int
        var time: (hour: Int, minute: Int, second: Int)

        /// Nil for a day the month does not have (31 Feb) or a time out of range.
        var secondsSinceEpoch: Int64? {
            guard (1...Self.daysIn(month: month, year: year)).contains(day), (0...23).contains(time.hour),
                  (0...59).contains(time.minute), (0...60).contains(time.second)
            else { return nil }
            let days = Self.daysFromCivil(year: year, month: month, day: day)
            return Int64(days) * 86_400 + Int64(time.hour * 3600 + time.minute * 60 + time.second)
        }

        static func daysIn(month: Int, year: Int) -> Int {
            switch month {
            case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
            case 4, 6, 9, 11: return 30
            default: return 31
            }
        }

        /// Days since 1970-01-01 in the proleptic Gregorian calendar (Howard Hinnant's
        /// `days_from_civil`); all values stay far inside `Int` for years 0–9999.
        static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
            let y = month <= 2 ? year - 1 : year
            let era = (y >= 0 ? y : y - 399) / 400
            let yearOfEra = y - era * 400
            let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
            let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
            return era * 146_097 + dayOfEra - 719_468
        }
    }

    private static let months: [[UInt8]] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .map { Array($0.utf8) }

    /// A cursor over the header's bytes.
    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0

        var atEnd: Bool { position == bytes.count }

        mutating func consume(_ byte: UInt8) -> Bool {
            guard position < bytes.count, bytes[position] == byte else { return false }
            position += 1
            return true
        }

        mutating func skipSpaces() {
            while position < bytes.count, bytes[position] == UInt8(ascii: " ") || bytes[position] == UInt8(ascii: "\t") {
                position += 1
            }
        }

        /// Skips a run of ASCII letters (a weekday name, only its length matters), at most 9
        /// long; returns that length.
        mutating func skipLetters() -> Int? {
            let start = position
            while position < bytes.count, position - start < 10, Self.isLetter(bytes[position]) { position += 1 }
            guard position > start, position - start <= 9 else { return nil }
            return position - start
        }

        /// Exactly `count` decimal digits (1 to 4): the value cannot overflow.
        mutating func digits(exactly count: Int) -> Int? {
            guard count <= 4, bytes.count - position >= count else { return nil }
            var value = 0
            for offset in 0..<count {
                let byte = bytes[position + offset]
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            position += count
            return value
        }

        /// `Jan` … `Dec`, case-sensitive as the grammar says; 1-based.
        mutating func month() -> Int? {
            guard bytes.count - position >= 3 else { return nil }
            let name = Array(bytes[position..<position + 3])
            guard let index = HTTPDate.months.firstIndex(of: name) else { return nil }
            position += 3
            return index + 1
        }

        /// `hh:mm:ss`.
        mutating func timeOfDay() -> (hour: Int, minute: Int, second: Int)? {
            guard let hour = digits(exactly: 2), consume(UInt8(ascii: ":")), let minute = digits(exactly: 2),
                  consume(UInt8(ascii: ":")), let second = digits(exactly: 2)
            else { return nil }
            return (hour, minute, second)
        }

        mutating func consumeGMT() -> Bool {
            consume(UInt8(ascii: "G")) && consume(UInt8(ascii: "M")) && consume(UInt8(ascii: "T"))
        }

        private static func isLetter(_ byte: UInt8) -> Bool {
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
        }
    }
}
