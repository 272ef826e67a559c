import S3Client
import Testing

@Suite struct S3ErrorDocumentTests {
    @Test func readsCodeMessageAndRequestID() throws {
        let body = """
            <?xml version="1.0" encoding="UTF-8"?>
            <Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>
            <Key>a/b.txt</Key><RequestId>4442587FB7D0A2F9</RequestId><HostId>xyz</HostId></Error>
            """
        let document = try #require(S3ErrorDocument(parsing: Array(body.utf8)))
        #expect(document == S3ErrorDocument(code: "NoSuchKey", message: "The specified key does not exist.", requestID: "4442587FB7D0A2F9"))
    }

    @Test func decodesEntitiesOnce() throws {
        let body = "<Error><Code>X</Code><Message>a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos; &amp;lt; &#65;&#x42; &bogus; &</Message></Error>"
        let document = try #require(S3ErrorDocument(parsing: Array(body.utf8)))
        #expect(document.message == "a & b <c> \"d\" 'e' &lt; AB &bogus; &")
    }

    @Test func missingElementsAreNilAndWhitespaceTrimmed() throws {
        let document = try #require(S3ErrorDocument(parsing: Array("<Error>\n  <Code>\n SlowDown </Code>\n</Error>".utf8)))
        #expect(document == S3ErrorDocument(code: "SlowDown", message: nil, requestID: nil))
    }

    @Test func notAnErrorDocument() {
        #expect(S3ErrorDocument(parsing: Array("<html><body>502 Bad Gateway</body></html>".utf8)) == nil)
        #expect(S3ErrorDocument(parsing: [UInt8]()) == nil)
    }

    @Test func unclosedElementIsNil() throws {
        let document = try #require(S3ErrorDocument(parsing: Array("<Error><Code>NoSuchKey</Code><Message>cut off".utf8)))
        #expect(document.code == "NoSuchKey")
        #expect(document.message == nil)
    }
}
