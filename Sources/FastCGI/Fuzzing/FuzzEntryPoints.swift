/// Entry points for the fuzz targets in `fuzz/` (fuzz/README.md); `package` access keeps
/// the parsers internal to the module.
package enum FastCGIFuzzing {
    /// `ParameterText.decode`: valid UTF-8 comes out as it went in; otherwise only the invalid
    /// bytes change, each into `%XX`, so unescaping gives the input back (when the input had no
    /// `%` of its own to confuse the two).
    package static func parameterText(_ data: UnsafeRawBufferPointer) {
        let bytes = data.bindMemory(to: UInt8.self)
        let text = ParameterText.decode(bytes)
        let output = Array(text.utf8)
        if String(validating: bytes, as: UTF8.self) != nil {
            check(output.elementsEqual(bytes), "valid UTF-8 changed")
            return
        }
        check(output.count > bytes.count, "invalid UTF-8 came out no longer")
        guard !bytes.contains(UInt8(ascii: "%")) else { return }
        var unescaped: [UInt8] = []
        var index = 0
        while index < output.count {
            if output[index] == UInt8(ascii: "%") {
                check(index + 2 < output.count, "truncated escape")
                let value = UInt8(String(decoding: output[index + 1...index + 2], as: UTF8.self), radix: 16)
                check(value.map { $0 >= 0x80 } ?? false, "escape %\(output[index + 1])\(output[index + 2]) is not an invalid byte")
                unescaped.append(value!)
                index += 3
            } else {
                unescaped.append(output[index])
                index += 1
            }
        }
        check(unescaped.elementsEqual(bytes), "escaped text does not unescape to the input")
    }

    private static func check(_ condition: Bool, _ message: @autoclosure () -> String, line: UInt = #line) {
        if !condition { fatalError("fuzz invariant: \(message())", line: line) }
    }
}
