@testable import S3CacheCore
import Testing

@Suite struct RouteTests {
    @Test func objectKeysMayContainSlashesAndAreDecodedOnce() {
        #expect(Route.parse(requestURI: "/objects/public/a/b/c.txt") == .object(ObjectAddress(bucket: "public", key: "a/b/c.txt")))
        #expect(Route.parse(requestURI: "/objects/public/with%20space+plus?x=1")
            == .object(ObjectAddress(bucket: "public", key: "with space+plus")))
        #expect(Route.parse(requestURI: "/objects/public/caf%C3%A9") == .object(ObjectAddress(bucket: "public", key: "café")))
        // Decoded exactly once: %252e stays the literal text "%2e".
        #expect(Route.parse(requestURI: "/objects/public/%252e%252e/x") == .object(ObjectAddress(bucket: "public", key: "%2e%2e/x")))
    }

    @Test func serviceAndUnknownPaths() {
        #expect(Route.parse(requestURI: "/health") == .health)
        #expect(Route.parse(requestURI: "/health?deep=1") == .health)
        #expect(Route.parse(requestURI: "/healthz") == .notFound)
        #expect(Route.parse(requestURI: "/") == .notFound)
        #expect(Route.parse(requestURI: "/health/../objects/private/x") == .notFound)
    }

    @Test(arguments: [
        "/objects/public/../private/x", "/objects/public/%2e%2e/private/x", "/objects/public/%2E%2E%2Fprivate%2Fx",
        "/objects/public/a/./b", "/objects/public/a/..", "/objects/public/.", "/objects/public/%2e",
        "/objects/public/a/%2E/b",
    ])
    func dotSegmentsAreRefused(uri: String) {
        guard case .invalidObject = Route.parse(requestURI: uri) else {
            Issue.record("\(uri) was accepted")
            return
        }
    }

    @Test(arguments: [
        "/objects/public%2F..%2Fprivate/x", "/objects/%2e%2e/x", "/objects/Public/x", "/objects/ab/x",
        "/objects/192.168.1.1/x", "/objects/-bucket/x", "/objects/a..b/x", "/objects/xn--bucket/x",
        "/objects/" + String(repeating: "a", count: 64) + "/x", "/objects/a.-b/x", "/objects/a-.b/x", "/objects/bucket-/x",
        "/objects/bucket./x", "/objects/my_bucket/x", "/objects/data-s3alias/x", "/objects/x--ol-s3/x", "/objects/a.mrap/x",
        "/objects/sthree-a/x", "/objects/amzn-s3-demo-a/x", "/objects/b--x-s3/x", "/objects/caf%C3%A9/x",
    ])
    func badBucketNamesAreRefused(uri: String) {
        #expect(Route.parse(requestURI: uri) == .invalidObject(reason: "invalid bucket name"))
    }

    @Test(arguments: [
        ("/objects/public/a%00b", "object key contains control characters"),
        ("/objects/public/a%0Ab", "object key contains control characters"),
        ("/objects/public/a%7fb", "object key contains control characters"),
        ("/objects/public/a%C2%85b", "object key contains control characters"),
        ("/objects/public/%ff", "object key is not valid UTF-8"),
        ("/objects/public/a%zz", "malformed percent-encoding in key"),
        ("/objects/public/a%4", "malformed percent-encoding in key"),
        ("/objects/public/", "missing object key"),
        ("/objects/public", "missing object key"),
    ])
    func badKeysAreRefused(uri: String, reason: String) {
        #expect(Route.parse(requestURI: uri) == .invalidObject(reason: reason))
    }

    @Test func keyLengthIsCountedInDecodedBytes() {
        let longest = String(repeating: "é", count: 512)  // 1024 bytes
        #expect(Route.parse(requestURI: "/objects/public/" + longest) == .object(ObjectAddress(bucket: "public", key: longest)))
        #expect(Route.parse(requestURI: "/objects/public/" + longest + "x")
            == .invalidObject(reason: "object key longer than 1024 bytes"))
        let encoded = String(repeating: "%41", count: 1025)
        #expect(Route.parse(requestURI: "/objects/public/" + encoded) == .invalidObject(reason: "object key longer than 1024 bytes"))
    }

    @Test(arguments: ["abc", "my-bucket.v2", "a1b", "public", String(repeating: "b", count: 63), "1.2.3", "a--b", "1.2.3.4a",
                      "192.168.1.1.5", "s3alias", "mrap.x"])
    func validBucketNames(name: String) {
        #expect(BucketName.isValid(name))
    }
}
