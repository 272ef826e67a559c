import S3Client
import Testing

/// AWS's published SigV4 test suite (aws-sig-v4-test-suite, 2015 edition): credentials
/// AKIDEXAMPLE, region us-east-1, service `service`, 20150830T123600Z. Each expected
/// signature is the published one; a single wrong byte anywhere in the canonical request
/// changes it.
@Suite struct SigV4TestSuiteTests {
    struct Vector: Sendable, CustomTestStringConvertible {
        var name: String
        var method = "GET"
        var path = "/"
        var query: [(name: String, value: String)] = []
        /// Besides `Host`, which every vector has.
        var headers: [(name: String, value: String)] = []
        var body = ""
        var signedHeaders = "host;x-amz-date"
        var signature: String
        var testDescription: String { name }
    }

    static let signer = SigV4Signer(
        credentials: S3Credentials(accessKey: "AKIDEXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        region: "us-east-1", service: "service")
    /// 2015-08-30T12:36:00Z
    static let date = AmzDate(secondsSinceEpoch: 1_440_938_160)
    static let unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

    static let vectors: [Vector] = [
        Vector(name: "get-vanilla", signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        Vector(
            name: "get-vanilla-empty-query-key", query: [("Param1", "value1")],
            signature: "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"),
        Vector(
            name: "get-vanilla-query-order-key-case", query: [("Param2", "value2"), ("Param1", "value1")],
            signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        Vector(
            name: "get-vanilla-query-order-value", query: [("Param1", "value2"), ("Param1", "value1")],
            signature: "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"),
        Vector(
            name: "get-vanilla-query-unreserved", query: [(unreserved, unreserved)],
            signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"),
        Vector(
            name: "get-vanilla-utf8-query", query: [("\u{1234}", "bar")],
            signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"),
        Vector(
            name: "get-unreserved", path: "/" + unreserved,
            signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"),
        Vector(
            name: "get-utf8", path: "/\u{1234}",
            signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
        // From the suite's normalize-path folder; with no dot segment S3's rule gives the same path.
        Vector(
            name: "get-space", path: "/example space/",
            signature: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"),
        Vector(
            name: "get-header-value-trim", headers: [("My-Header1", " value1"), ("My-Header2", "\"a   b   c\"")],
            signedHeaders: "host;my-header1;my-header2;x-amz-date",
            signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
        Vector(
            name: "get-header-key-duplicate",
            headers: [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")],
            signedHeaders: "host;my-header1;x-amz-date",
            signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"),
        Vector(
            name: "get-header-value-order",
            headers: [("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"), ("My-Header1", "value2")],
            signedHeaders: "host;my-header1;x-amz-date",
            signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"),
        Vector(
            name: "post-vanilla", method: "POST",
            signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        Vector(
            name: "post-x-www-form-urlencoded", method: "POST",
            headers: [("Content-Type", "application/x-www-form-urlencoded")], body: "Param1=value1",
            signedHeaders: "content-type;host;x-amz-date",
            signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
    ]

    static func sign(_ vector: Vector) -> SigV4Signature {
        signer.sign(
            SigV4Request(
                method: vector.method, path: vector.path, query: vector.query,
                headers: [("Host", "example.amazonaws.com")] + vector.headers,
                payloadHash: SHA256.hexDigest(vector.body)),
            date: date)
    }

    @Test(arguments: vectors)
    func publishedAuthorizationHeader(_ vector: Vector) {
        #expect(
            Self.sign(vector).authorization
                == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                + "SignedHeaders=\(vector.signedHeaders), Signature=\(vector.signature)")
    }

    @Test func getVanillaCanonicalRequestAndStringToSign() {
        let signed = Self.sign(Self.vectors[0])
        #expect(
            signed.canonicalRequest == """
                GET
                /

                host:example.amazonaws.com
                x-amz-date:20150830T123600Z

                host;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """)
        #expect(signed.amzDate == "20150830T123600Z")
    }

    @Test func queryIsSortedAndUTF8PathEncodedOnceWithUpperCaseHex() {
        let sorted = Self.sign(Self.vectors[2])
        #expect(sorted.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[2] == "Param1=value1&Param2=value2")
        #expect(sorted.stringToSign.hasSuffix("\n816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0"))
        let utf8 = Self.sign(Self.vectors[7])
        #expect(utf8.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[1] == "/%E1%88%B4")
        #expect(
            utf8.stringToSign == """
                AWS4-HMAC-SHA256
                20150830T123600Z
                20150830/us-east-1/service/aws4_request
                2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102
                """)
    }

    @Test func headerValuesAreTrimmedAndInnerSpacesCollapsed() {
        let signed = Self.sign(Self.vectors[9])
        #expect(signed.canonicalRequest.contains("\nmy-header1:value1\nmy-header2:\"a b c\"\n"))
    }

    @Test func aCallerSuppliedDateHeaderIsReplacedByTheSigningDate() {
        var vector = Self.vectors[0]
        vector.headers = [("X-Amz-Date", "19990101T000000Z")]
        #expect(Self.sign(vector).signature == Self.vectors[0].signature)
    }
}
