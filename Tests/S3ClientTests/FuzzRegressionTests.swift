import Foundation
import S3Client
import Testing

/// What fuzz-s3-error (fuzz/README.md) found, and its seed corpus replayed through the
/// fuzzer's entry point.
@Suite struct S3ErrorDocumentFuzzRegressionTests {
    /// fuzz-s3-error: a combining mark after an entity's `;` made one `Character` with it,
    /// so `&amp;` followed by U+0301 stayed undecoded.
    @Test func entityFollowedByACombiningMarkIsDecoded() throws {
        let body = "<Error><Code>X</Code><Message>a &amp;\u{301} b &lt;\u{308}</Message></Error>"
        let document = try #require(S3ErrorDocument(parsing: Array(body.utf8)))
        #expect(document.message == "a &\u{301} b <\u{308}")
        #expect(document.message?.unicodeScalars.elementsEqual("a &\u{301} b <\u{308}".unicodeScalars) == true)
    }

    @Test func seedCorpusReplays() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fuzz/corpus/s3-error")
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        #expect(!files.isEmpty)
        for file in files { try Data(contentsOf: file).withUnsafeBytes(S3ClientFuzzing.errorDocument) }
    }
}
