@testable import S3Client
import Testing

extension VerifyingMotoTests {
    /// SigV4 against a moto that verifies it with an IAM user's key pair. Keys are plain:
    /// a verifying moto wrongly refuses correctly signed paths that hold %-escapes.
    @Suite struct SignatureTests {
        @Test func correctCredentialsWorkForEveryMethod() throws {
            let s3 = try SharedMoto.get().connection()
            let bucket = uniqueBucket("signed")
            try s3.createBucket(bucket: bucket)
            let bytes = PatternStream().prefix(3000)

            #expect(try s3.putInChunks(bucket: bucket, key: "dir/unsigned-payload.bin", bytes).head.status == 200)
            let hash = SHA256.hexDigest(bytes)
            #expect(try s3.putInChunks(bucket: bucket, key: "signed-payload.bin", bytes, payloadSHA256: hash).head.status == 200)
            #expect(try s3.download(bucket: bucket, key: "dir/unsigned-payload.bin").body == bytes)
            #expect(try s3.download(bucket: bucket, key: "signed-payload.bin", headers: [("Range", "bytes=0-9")]).body
                == Array(bytes[0..<10]))
            #expect(try s3.headObject(bucket: bucket, key: "signed-payload.bin").header("content-length") == "3000")
            #expect(try s3.headBucket(bucket: bucket).status == 200)
            #expect(try s3.deleteObject(bucket: bucket, key: "signed-payload.bin").status == 204)
            expectServiceError(status: 404, code: nil) { _ = try s3.headObject(bucket: bucket, key: "signed-payload.bin") }
        }

        /// The bucket travels in the signed Host header (`bucket.localhost:port`), not the path.
        @Test func virtualHostedRequestsAreSignedCorrectly() throws {
            let moto = try SharedMoto.get()
            let credentials = try #require(moto.credentials)
            let s3 = try moto.server.connection(
                credentials: credentials, addressing: .virtualHost, endpoint: "localhost:\(moto.server.port)")
            let bucket = uniqueBucket("signed-virtual")
            try s3.createBucket(bucket: bucket)
            try s3.putInChunks(bucket: bucket, key: "plain.bin", Array("virtual".utf8))
            #expect(try s3.download(bucket: bucket, key: "plain.bin").body == Array("virtual".utf8))
            #expect(try s3.headObject(bucket: bucket, key: "plain.bin").status == 200)
            #expect(try s3.deleteObject(bucket: bucket, key: "plain.bin").status == 204)
        }

        @Test func wrongSecretIsRefusedWithoutLeakingIt() throws {
            let moto = try SharedMoto.get()
            let good = try moto.connection()
            let bucket = uniqueBucket("forged")
            try good.createBucket(bucket: bucket)
            try good.putInChunks(bucket: bucket, key: "object", Array("stored".utf8))

            let credentials = try #require(moto.credentials)
            let wrongSecret = "wrong-\(credentials.secretKey.reversed())"
            let forged = try moto.server.connection(
                credentials: S3Credentials(accessKey: credentials.accessKey, secretKey: wrongSecret))
            var errors: [S3Error?] = []
            errors.append(expectServiceError(status: 403, code: "SignatureDoesNotMatch") {
                _ = try forged.download(bucket: bucket, key: "object")
            })
            errors.append(expectServiceError(status: 403, code: "SignatureDoesNotMatch") {
                try forged.putInChunks(bucket: bucket, key: "forged-write", Array("evil".utf8))
            })
            errors.append(expectServiceError(status: 403, code: "SignatureDoesNotMatch") {
                try forged.deleteObject(bucket: bucket, key: "object")
            })
            // A HEAD answer has no body, so there is no code to parse, only the status.
            errors.append(expectServiceError(status: 403, code: nil) { _ = try forged.headObject(bucket: bucket, key: "object") })
            for error in errors.compactMap({ $0 }) {
                let text = "\(error) \(String(reflecting: error))"
                #expect(!text.contains(wrongSecret))
                #expect(!text.contains(credentials.secretKey))
            }
            #expect(!"\(forged.configuration)".contains(wrongSecret), "a logged configuration must not show the secret")

            // Nothing the forged requests asked for happened.
            #expect(try good.download(bucket: bucket, key: "object").body == Array("stored".utf8))
            expectServiceError(status: 404, code: nil) { _ = try good.headObject(bucket: bucket, key: "forged-write") }
        }

        @Test func unknownAccessKeyIsRefused() throws {
            let moto = try SharedMoto.get()
            let bucket = uniqueBucket("unknown-key")
            try moto.connection().createBucket(bucket: bucket)
            let stranger = try moto.server.connection(
                credentials: S3Credentials(accessKey: "AKIAUNKNOWNUNKNOWN00", secretKey: "not-a-real-secret"))
            expectServiceError(status: 403, code: "InvalidAccessKeyId") { _ = try stranger.download(bucket: bucket, key: "x") }
        }
    }
}
