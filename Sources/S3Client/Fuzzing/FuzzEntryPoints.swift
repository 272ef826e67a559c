/// Entry points for the fuzz targets in `fuzz/` (fuzz/README.md); `package` access keeps
/// the parsers internal to the module.
package enum S3ClientFuzzing {
    /// `S3ErrorDocument(parsing:)` on the raw bytes, then on a document built around them:
    /// text escaped as XML inside `<Code>` comes back as the text, trimmed.
    package static func errorDocument(_ data: UnsafeRawBufferPointer) {
        let document = S3ErrorDocument(parsing: data)
        if let document {
            for field in [document.code, document.message, document.requestID] {
                if let field { check(field == field.trimmingASCIIWhitespace(), "untrimmed field \(field.debugDescription)") }
            }
        }
        let text = String(decoding: data, as: UTF8.self)
        var escaped = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        let built = S3ErrorDocument(parsing: Array("<Error><Code>\(escaped)</Code></Error>".utf8))
        check(built?.code == text.trimmingASCIIWhitespace(),
              "\(text.debugDescription) escaped came back as \(String(describing: built?.code).debugDescription)")
    }

    private static func check(_ condition: Bool, _ message: @autoclosure () -> String, line: UInt = #line) {
        if !condition { fatalError("fuzz invariant: \(message())", line: line) }
    }
}
