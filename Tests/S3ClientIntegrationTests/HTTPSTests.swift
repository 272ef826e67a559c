@testable import S3Client
import Testing

extension VerifyingMotoTests {
    /// HTTPS to the backend (`S3_USE_SSL`) with certificate verification, through a real nginx
    /// terminating TLS in front of a moto that verifies signatures: the signed `Host` must
    /// reach moto as the client sent it.
    @Suite struct HTTPSTests {
        /// Runs `body` with a fresh TLS terminator in front of the suite's moto; always stops it.
        private func withTerminator(_ body: (NginxProxy, SharedMoto) throws -> Void) throws {
            let moto = try SharedMoto.get()
            let terminator = try NginxProxy.start(upstreamPort: moto.server.port, tls: true)
            defer { terminator.stop() }
            try body(terminator, moto)
        }

        private func connection(_ moto: SharedMoto, endpoint: String, caFile: String?) throws -> S3Connection {
            try S3Connection(
                configuration: S3Configuration(
                    endpoint: endpoint, useSSL: true, credentials: try #require(moto.credentials),
                    connectTimeout: 5, readTimeout: 20, caFile: caFile))
        }

        /// Through a counting relay in front of nginx, so the test also sees the TLS
        /// connection kept alive across requests.
        @Test func trustedCertificateCarriesSignedRequests() throws {
            try withTerminator { terminator, moto in
                let caFile = try #require(terminator.certificateFile)
                let relay = try TCPRelay(upstreamPort: terminator.port)
                defer { relay.stop() }
                let s3 = try connection(moto, endpoint: relay.endpoint, caFile: caFile)
                let bucket = uniqueBucket("tls")
                try s3.createBucket(bucket: bucket)
                let bytes = PatternStream().prefix(300_000)
                try s3.putInChunks(bucket: bucket, key: "over/tls.bin", bytes, chunkSize: 16 * 1024)
                let download = try s3.download(bucket: bucket, key: "over/tls.bin")
                #expect(download.body == bytes)
                #expect(download.headCalls == 1)
                #expect(try s3.headObject(bucket: bucket, key: "over/tls.bin").header("content-length") == "300000")
                #expect(try s3.deleteObject(bucket: bucket, key: "over/tls.bin").status == 204)
                expectServiceError(status: 404, code: "NoSuchKey") { _ = try s3.download(bucket: bucket, key: "over/tls.bin") }
                #expect(relay.acceptedConnections == 1, "six requests, one TLS connection")
            }
        }

        /// Without the CA file the system store does not know the self-signed certificate.
        @Test func untrustedCertificateIsRefused() throws {
            try withTerminator { terminator, moto in
                let s3 = try connection(moto, endpoint: terminator.endpoint, caFile: nil)
                expectS3Error("a certificate verification failure", { try s3.headBucket(bucket: "any") }) {
                    $0.isTransport && "\($0)".lowercased().contains("certificate")
                }
            }
        }

        /// The certificate is trusted but names 127.0.0.1, not localhost: the host check refuses it.
        @Test func certificateForAnotherNameIsRefused() throws {
            try withTerminator { terminator, moto in
                let caFile = try #require(terminator.certificateFile)
                let s3 = try connection(moto, endpoint: "localhost:\(terminator.port)", caFile: caFile)
                expectS3Error("a host name verification failure", { try s3.headBucket(bucket: "any") }) {
                    $0.isTransport && "\($0)".lowercased().contains("localhost")
                }
            }
        }
    }
}
