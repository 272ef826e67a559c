/// FastCGI parameter values as Swift strings.
///
/// Values are bytes (nginx passes `$request_uri` and header values as the client sent them),
/// Swift strings are Unicode. Valid UTF-8 is taken as it is. A byte that is not part of valid
/// UTF-8 is written as `%XX` rather than replaced by U+FFFD: replacement would turn every
/// invalid byte into the same character, so `/objects/b/a\xFF` and `/objects/b/a\xFE` would
/// name the same key. `%XX` is how a URI spells that octet anyway, so the router decodes it
/// once like any escape and refuses the key as not UTF-8.
///
/// libfcgi stores values as C strings: a value is cut at its first NUL byte before it gets here
/// (nginx refuses a raw NUL in the request line, so only other FastCGI clients can send one).
enum ParameterText {
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count + 16)
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        // The parser reports each valid scalar or invalid run with its length, in input order.
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case let .valid(scalar):
                output.append(contentsOf: scalar)
                offset += scalar.count
            case let .error(length):
                for byte in bytes[offset..<offset + length] { appendEscaped(byte, to: &output) }
                offset += length
            case .emptyInput:
                return String(decoding: output, as: UTF8.self)
            }
        }
    }

    private static func appendEscaped(_ byte: UInt8, to output: inout [UInt8]) {
        let digits = Array("0123456789ABCDEF".utf8)
        output += [UInt8(ascii: "%"), digits[Int(byte >> 4)], digits[Int(byte & 0x0f)]]
    }
}
