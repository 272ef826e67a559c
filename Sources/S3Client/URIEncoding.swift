/// Percent-encoding the way S3's SigV4 wants it (RFC 3986, encoded exactly once).
///
/// The same function produces the path that goes on the wire and the path in the
/// canonical request, so the two cannot disagree: every byte outside
/// `A-Z a-z 0-9 - . _ ~` becomes `%XX` with upper-case hex; `/` is kept in paths
/// and encoded in query components. No normalisation: `a/../b` stays as it is.
public enum S3URIEncoding {
    /// Encodes an object path such as `/bucket/dir/my key.txt`, keeping `/`.
    public static func path(_ text: String) -> String {
        encode(text, keepSlash: true)
    }

    /// Encodes a query parameter name or value; `/`, `=`, `&`, `+` and space are all escaped.
    public static func component(_ text: String) -> String {
        encode(text, keepSlash: false)
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    private static func encode(_ text: String, keepSlash: Bool) -> String {
        var output = [UInt8]()
        output.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if isUnreserved(byte) || (keepSlash && byte == UInt8(ascii: "/")) {
                output.append(byte)
            } else {
                output.append(UInt8(ascii: "%"))
                output.append(hexDigits[Int(byte >> 4)])
                output.append(hexDigits[Int(byte & 0x0f)])
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}
