@testable import S3CacheCore
import S3Client
import Testing

/// Client signatures checked against the worked examples in AWS's S3 documentation
/// ("Signature Calculations for the Authorization Header", "… Query String Parameters",
/// "… Transferring Payload in Multiple Chunks"): the same vectors our signer is tested with.
@Suite struct RequestAuthenticationTests {
    static let keys = try! AccessKeys(
        parsing: "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY examplebucket:all\n", path: "keys")
    /// 2013-05-24T00:00:00Z
    static let exampleTime: Int64 = 1_369_353_600
    static let emptyHash = SHA256.emptyPayloadHash

    private func authenticate(_ exchange: FakeExchange, now: Int64 = exampleTime) throws(AuthenticationFailure) -> Authentication {
        try RequestAuthenticator(keys: Self.keys, now: now).authenticate(exchange, method: exchange.params["REQUEST_METHOD"]!)
    }

    private func getWithRange(signature: String = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41") -> FakeExchange {
        FakeExchange(method: "GET", uri: "/test.txt", params: [
            "HTTP_HOST": "examplebucket.s3.amazonaws.com", "HTTP_RANGE": "bytes=0-9", "HTTP_X_AMZ_CONTENT_SHA256": Self.emptyHash,
            "HTTP_X_AMZ_DATE": "20130524T000000Z",
            "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=\(signature)",
        ])
    }

    @Test func theGetObjectExampleIsAccepted() throws {
        let auth = try authenticate(getWithRange())
        #expect(auth.principal.keyID == "AKIAIOSFODNN7EXAMPLE" && auth.speaksS3)
        #expect(auth.payload == .sha256(Self.emptyHash))
    }

    @Test func refusalsCarryS3sCodes() {
        func code(_ exchange: FakeExchange, now: Int64 = Self.exampleTime) -> String? {
            do {
                _ = try authenticate(exchange, now: now)
                return nil
            } catch {
                return error.code
            }
        }
        #expect(code(getWithRange(signature: "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb42")) == "SignatureDoesNotMatch")
        #expect(code(getWithRange(), now: Self.exampleTime + 16 * 60) == "RequestTimeTooSkewed")
        #expect(code(getWithRange(), now: Self.exampleTime - 14 * 60) == nil)
        let tampered = getWithRange()
        tampered.params["HTTP_RANGE"] = "bytes=0-10"
        #expect(code(tampered) == "SignatureDoesNotMatch")
        let otherPath = getWithRange()
        otherPath.params["REQUEST_URI"] = "/test.txtx"
        #expect(code(otherPath) == "SignatureDoesNotMatch")
        let unknown = getWithRange()
        unknown.params["HTTP_AUTHORIZATION"] = unknown.params["HTTP_AUTHORIZATION"]!.replacingOccurrences("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLF")
        #expect(code(unknown) == "InvalidAccessKeyId")
        let sigV2 = FakeExchange(method: "GET", uri: "/x", params: ["HTTP_AUTHORIZATION": "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg="])
        #expect(code(sigV2) == "InvalidRequest")
        #expect(code(FakeExchange(method: "GET", uri: "/x?AWSAccessKeyId=A&Signature=B&Expires=1")) == "InvalidRequest")
        let noDate = getWithRange()
        noDate.params["HTTP_X_AMZ_DATE"] = nil
        #expect(code(noDate) == "AccessDenied")
        #expect(code(FakeExchange(method: "GET", uri: "/x")) == nil, "no signature at all is anonymous")
    }

    @Test func thePutObjectExampleMatchesWhetherTheDollarIsEscapedOrNot() throws {
        for uri in ["/test%24file.text", "/test$file.text"] {
            let exchange = FakeExchange(method: "PUT", uri: uri, params: [
                "HTTP_HOST": "examplebucket.s3.amazonaws.com", "HTTP_DATE": "Fri, 24 May 2013 00:00:00 GMT",
                "HTTP_X_AMZ_STORAGE_CLASS": "REDUCED_REDUNDANCY", "HTTP_X_AMZ_DATE": "20130524T000000Z",
                "HTTP_X_AMZ_CONTENT_SHA256": "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
                "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                    + "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
                    + "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
            ])
            let auth = try authenticate(exchange)
            #expect(auth.payload == .sha256("44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"))
        }
    }

    @Test func thePresignedExampleIsAcceptedUntilItExpires() throws {
        let uri = "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
            + "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
            + "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        let exchange = FakeExchange(method: "GET", uri: uri, params: ["HTTP_HOST": "examplebucket.s3.amazonaws.com"])
        #expect(try authenticate(exchange, now: Self.exampleTime + 86_400).principal.keyID == "AKIAIOSFODNN7EXAMPLE")
        #expect(throws: AuthenticationFailure.self) { try authenticate(exchange, now: Self.exampleTime + 86_401) }
        do {
            _ = try authenticate(exchange, now: Self.exampleTime + 86_401)
        } catch {
            #expect(error.code == "AccessDenied" && error.message == "Request has expired")
        }
        let key = try #require(Self.keys["AKIAIOSFODNN7EXAMPLE"])
        // Our presigner, at the example's time and lifetime, makes the example's URL.
        let url = try Presigner.presign(
            url: "https://examplebucket.s3.amazonaws.com/test.txt", method: "GET", expires: 86_400, key: key, region: "us-east-1",
            now: Self.exampleTime)
        #expect(url.hasSuffix("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"))
    }

    @Test func theChunkedUploadExampleDecodesAndEachChunkIsChecked() throws {
        let signingKey = SigV4Signer.signingKey(
            secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", day: "20130524", region: "us-east-1", service: "s3")
        let signing = ChunkSigning(
            key: signingKey, timestamp: "20130524T000000Z", scope: "20130524/us-east-1/s3/aws4_request",
            seedSignature: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9")
        func body(finalSignature: String = "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9") -> [UInt8] {
            Array("10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n".utf8)
                + [UInt8](repeating: UInt8(ascii: "a"), count: 65_536) + Array("\r\n".utf8)
                + Array("400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n".utf8)
                + [UInt8](repeating: UInt8(ascii: "a"), count: 1024) + Array("\r\n".utf8)
                + Array("0;chunk-signature=\(finalSignature)\r\n\r\n".utf8)
        }
        let decoded = try readAll(AWSChunkedBody(MemoryBody(body()), signing: signing, trailer: false))
        #expect(decoded == [UInt8](repeating: UInt8(ascii: "a"), count: 66_560))
        #expect(throws: HTTPError.self) {
            try readAll(AWSChunkedBody(
                MemoryBody(body(finalSignature: "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df8")), signing: signing,
                trailer: false))
        }
        var truncated = body()
        truncated.removeLast(40)
        #expect(throws: HTTPError.self) { try readAll(AWSChunkedBody(MemoryBody(truncated), signing: signing, trailer: false)) }
    }

    @Test func checksumsMatchTheStandardCheckValues() {
        let expected: [PayloadChecksum.Algorithm: String] = [
            .crc32: "y/Q5Jg==", .crc32c: "4waSgw==", .crc64nvme: "rosUhgp5mIg=", .sha1: "98O8HYCOBHMq32eZZczDTKeuNEE=",
            .sha256: "FeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiU=",
        ]
        for algorithm in PayloadChecksum.Algorithm.allCases {
            let checksum = PayloadChecksum(algorithm)
            Array("1234".utf8).withUnsafeBytes { checksum.update($0) }
            Array("56789".utf8).withUnsafeBytes { checksum.update($0) }
            #expect(checksum.finish() == expected[algorithm], "\(algorithm)")
        }
    }

    @Test func aVerifiedBodyHoldsItsLastByteUntilTheDigestMatches() throws {
        let bytes = Array("Welcome to Amazon S3.".utf8)
        let good = VerifiedBody(
            MemoryBody(bytes), length: Int64(bytes.count), sha256: "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
            checksums: [])
        #expect(try readAll(good) == bytes)
        let bad = VerifiedBody(MemoryBody(bytes), length: Int64(bytes.count), sha256: Self.emptyHash, checksums: [])
        var buffer = [UInt8](repeating: 0, count: 64)
        let first = try buffer.withUnsafeMutableBytes { try bad.read(into: $0) }
        #expect(first == bytes.count - 1, "everything but the last byte goes on before the check")
        #expect(throws: HTTPError.self) { _ = try buffer.withUnsafeMutableBytes { try bad.read(into: $0) } }
        let short = VerifiedBody(MemoryBody(Array(bytes.dropLast())), length: Int64(bytes.count), sha256: nil, checksums: [])
        #expect(throws: HTTPError.self) { try readAll(short) }
    }

    @Test func keysFileErrorsNameTheLineNeverTheSecret() {
        do {
            _ = try AccessKeys(parsing: "# c\n\nAKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY nobucket:sometimes\n", path: "/etc/k")
            Issue.record("accepted a bad grant")
        } catch {
            #expect(error.description.contains("/etc/k:3") && !error.description.contains("wJalrXUtnFEMI"))
        }
        #expect(throws: ConfigurationError.self) { try AccessKeys(parsing: "SHORT secretsecretsecretsecret public:read", path: "k") }
        #expect(throws: ConfigurationError.self) {
            try AccessKeys(parsing: "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY public:read\n"
                + "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY public:read", path: "k")
        }
    }

    @Test func aNewKeyLineParsesBack() throws {
        let line = try AccessKeys.newLine(grants: try AccessRules(parsing: "public:read,private:all"))
        let keys = try AccessKeys(parsing: line, path: "k")
        let id = String(line.split(separator: " ")[0])
        #expect(keys[id]?.grants.description == "private:all,public:read" && id.count == 20)
        #expect(try AccessKeys.newLine(grants: try AccessRules(parsing: "public:read")) != line)
    }

    @Test func permissionsAreBoundedByAllowedBuckets() throws {
        let key = AccessKey(id: "AKIAIOSFODNN7EXAMPLE", secret: "s", grants: try AccessRules(parsing: "public:all,private:all"))
        let permissions = Permissions(
            allowed: try AccessRules(parsing: "public:read,private:all"), anonymous: try AccessRules(parsing: "public:read"))
        #expect(!permissions.permits(.put, on: "public", by: .key(key)), "a grant never exceeds ALLOWED_BUCKETS")
        #expect(permissions.permits(.put, on: "private", by: .key(key)))
        #expect(permissions.permits(.get, on: "public", by: .anonymous))
        #expect(!permissions.permits(.get, on: "private", by: .anonymous))
        #expect(permissions.isPublic("public") && !permissions.isPublic("private"))
    }
}

/// A body held in memory, given out a few bytes at a time.
final class MemoryBody: BodySource {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = min(buffer.count, bytes.count - offset, 7000)
        guard count > 0 else { return 0 }
        bytes[offset..<offset + count].withUnsafeBytes { buffer.copyMemory(from: $0) }
        offset += count
        return count
    }
}

@discardableResult
func readAll(_ source: any BodySource) throws -> [UInt8] {
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 5000)
    while true {
        let count = try buffer.withUnsafeMutableBytes { try source.read(into: $0) }
        if count == 0 { return output }
        output += buffer[..<count]
    }
}

extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
