@testable import S3CacheCore
import Testing

@Suite struct JSONTests {
    @Test func stringsAreEscapedForOneLine() {
        let text = JSON.object([("k", .string("a\"b\\c\nd\u{01}e\u{2028}f"))])
        #expect(text == "{\"k\":\"a\\\"b\\\\c\\nd\\u0001e\\u2028f\"}")
        #expect(!text.contains("\n"))
    }

    @Test func numbersAndNesting() {
        #expect(JSON.object([("n", .int(-3)), ("b", .bool(true)), ("o", .object([("z", .null)]))]) == "{\"n\":-3,\"b\":true,\"o\":{\"z\":null}}")
    }
}
