@testable import S3Client
import Testing

@Suite struct EncodingTests {
    @Test func pathKeepsSlashesAndUnreservedAndEscapesEverythingElse() {
        #expect(S3URIEncoding.path("/bucket/a b+c") == "/bucket/a%20b%2Bc")
        #expect(S3URIEncoding.path("/b/dir/sub/file.txt") == "/b/dir/sub/file.txt")
        #expect(S3URIEncoding.path("/b/A-Z_a.z~0") == "/b/A-Z_a.z~0")
        #expect(S3URIEncoding.path("/b/ünï ሴ") == "/b/%C3%BCn%C3%AF%20%E1%88%B4")
        #expect(S3URIEncoding.path("/b/100%") == "/b/100%25")
        #expect(S3URIEncoding.path("/b/!'()*$&=?#:@,;") == "/b/%21%27%28%29%2A%24%26%3D%3F%23%3A%40%2C%3B")
    }

    @Test func pathIsNeverNormalised() {
        #expect(S3URIEncoding.path("/b/a/../c/./d//e") == "/b/a/../c/./d//e")
    }

    @Test func queryComponentEscapesSlashToo() {
        #expect(S3URIEncoding.component("a/b c+d=e&f") == "a%2Fb%20c%2Bd%3De%26f")
    }

    @Test func canonicalQueryOrdersByEncodedBytes() {
        // `%2F` (0x25) sorts before `.` (0x2E); upper case before lower case.
        #expect(SigV4Signer.canonicalQuery([("x", "a.b"), ("x", "a/b")]) == "x=a%2Fb&x=a.b")
        #expect(SigV4Signer.canonicalQuery([("b", ""), ("B", "1"), ("a", "2")]) == "B=1&a=2&b=")
    }

    @Test func amzDateFormatsUTCFromEpochSeconds() {
        #expect(AmzDate(secondsSinceEpoch: 0).timestamp == "19700101T000000Z")
        #expect(AmzDate(secondsSinceEpoch: 1_440_938_160).timestamp == "20150830T123600Z")
        #expect(AmzDate(secondsSinceEpoch: 951_782_400).timestamp == "20000229T000000Z")
        #expect(AmzDate(secondsSinceEpoch: 4_102_444_799).timestamp == "20991231T235959Z")
        #expect(AmzDate(secondsSinceEpoch: 1_369_353_600).day == "20130524")
    }

    @Test func sha256KnownAnswers() {
        #expect(SHA256.hexDigest("") == SHA256.emptyPayloadHash)
        #expect(SHA256.hexDigest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func pathStyleLocationsAndURLs() {
        let endpoint = S3Endpoint(configuration: S3Configuration(endpoint: "127.0.0.1:9000"))
        let (host, path) = endpoint.location(bucket: "media", key: "dir/my file+1.txt")
        #expect(host == "127.0.0.1:9000")
        #expect(path == "/media/dir/my file+1.txt")
        #expect(endpoint.url(host: host, path: path, query: []) == "http://127.0.0.1:9000/media/dir/my%20file%2B1.txt")
        #expect(endpoint.location(bucket: "media", key: nil).path == "/media")
    }

    @Test func virtualHostLocationsAndDefaultPortsDropped() {
        let endpoint = S3Endpoint(
            configuration: S3Configuration(endpoint: "s3.example.com:443", useSSL: true, addressing: .virtualHost))
        let (host, path) = endpoint.location(bucket: "media", key: "a/b")
        #expect(host == "media.s3.example.com")
        #expect(path == "/a/b")
        #expect(endpoint.url(host: host, path: path, query: [("x-id", "1")]) == "https://media.s3.example.com/a/b?x-id=1")
        #expect(endpoint.location(bucket: "media", key: nil) == ("media.s3.example.com", "/"))
        #expect(S3Endpoint(configuration: S3Configuration(endpoint: "minio:80")).authority == "minio")
        #expect(S3Endpoint(configuration: S3Configuration(endpoint: "minio:443")).authority == "minio:443")
    }
}
