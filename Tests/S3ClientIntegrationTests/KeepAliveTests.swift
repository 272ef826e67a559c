@testable import S3Client
import Testing

extension PlainMotoTests {
    /// Connection reuse and the one retry, seen through a relay that counts the TCP
    /// connections the client opens and can close them the way a server does
    /// (see `SharedMoto.withRelay`).
    @Suite struct KeepAliveTests {
        private func withRelay(_ body: (TCPRelay, S3Connection) throws -> Void) throws {
            let moto = try SharedMoto.get()
            try moto.withRelay { relay in try body(relay, try moto.server.connection(endpoint: relay.endpoint)) }
        }

        @Test func fiftySequentialRequestsShareOneConnection() throws {
            try withRelay { relay, s3 in
                let bucket = uniqueBucket("keepalive")
                try s3.createBucket(bucket: bucket)
                // 1 + 7 rounds of 7 requests = 50 requests.
                for round in 0..<7 {
                    let key = "object-\(round)"
                    let bytes = PatternStream().prefix(1000 + round * 7919)
                    try s3.putInChunks(bucket: bucket, key: key, bytes)
                    #expect(try s3.download(bucket: bucket, key: key).body == bytes)
                    #expect(try s3.headObject(bucket: bucket, key: key).status == 200)
                    // Error answers (with and without a body) must leave the connection reusable too.
                    let absent = key + "-absent"
                    expectServiceError(status: 404, code: "NoSuchKey") { _ = try s3.download(bucket: bucket, key: absent) }
                    expectServiceError(status: 404, code: nil) { _ = try s3.headObject(bucket: bucket, key: absent) }
                    #expect(try s3.deleteObject(bucket: bucket, key: key).status == 204)
                    #expect(try s3.deleteObject(bucket: bucket, key: key).status == 204)
                }
                #expect(relay.acceptedConnections == 1)
            }
        }

        /// The server closed the kept connection while the client was idle (an idle timeout):
        /// the next request still succeeds on a new connection, an upload (never retried)
        /// included, because the dead connection is noticed before anything is sent on it.
        @Test func idleConnectionClosedByTheServerIsReplaced() throws {
            try withRelay { relay, s3 in
                let bucket = uniqueBucket("idle-close")
                try s3.createBucket(bucket: bucket)
                #expect(relay.acceptedConnections == 1)
                relay.closeAllConnections()
                try s3.putInChunks(bucket: bucket, key: "k", Array("after close".utf8))
                #expect(relay.acceptedConnections == 2)
                relay.closeAllConnections()
                #expect(try s3.download(bucket: bucket, key: "k").body == Array("after close".utf8))
                #expect(try s3.headObject(bucket: bucket, key: "k").status == 200)
                #expect(relay.acceptedConnections == 3)
            }
        }

        /// The server closes the connection as the request arrives, before answering: libcurl
        /// gives up on a connection it has just opened, so only the client's own retry saves
        /// an idempotent request.
        @Test(arguments: ["GET", "HEAD", "DELETE"])
        func idempotentRequestIsRetriedOnceAfterTheConnectionDrops(method: String) throws {
            try withRelay { relay, s3 in
                let bucket = uniqueBucket("retry")
                try s3.createBucket(bucket: bucket)
                try s3.putInChunks(bucket: bucket, key: "k", Array("kept".utf8))
                relay.closeAllConnections()  // the next request opens a fresh connection
                relay.dropNextRequests(1)
                switch method {
                case "GET": #expect(try s3.download(bucket: bucket, key: "k").body == Array("kept".utf8))
                case "HEAD": #expect(try s3.headObject(bucket: bucket, key: "k").status == 200)
                default: #expect(try s3.deleteObject(bucket: bucket, key: "k").status == 204)
                }
                #expect(relay.acceptedConnections == 3, "first connection, the dropped one, the retry")
            }
        }

        @Test func retryIsBoundedToOne() throws {
            try withRelay { relay, s3 in
                let bucket = uniqueBucket("retry-bound")
                try s3.createBucket(bucket: bucket)
                relay.closeAllConnections()
                relay.dropNextRequests(2)
                expectS3Error("a transport error", { _ = try s3.download(bucket: bucket, key: "k") }) { $0.isTransport }
                #expect(relay.acceptedConnections == 3, "first connection and two attempts, no third")
            }
        }

        /// An upload cannot be replayed from a streaming callback, so a dropped PUT fails and
        /// is not sent again.
        @Test func uploadIsNotRetried() throws {
            try withRelay { relay, s3 in
                let bucket = uniqueBucket("no-retry")
                try s3.createBucket(bucket: bucket)
                relay.closeAllConnections()
                relay.dropNextRequests(1)
                expectS3Error("a transport error", { try s3.putInChunks(bucket: bucket, key: "k", Array("x".utf8)) }) {
                    $0.isTransport
                }
                #expect(relay.acceptedConnections == 2)
                expectServiceError(status: 404, code: nil) { _ = try s3.headObject(bucket: bucket, key: "k") }
            }
        }
    }
}
