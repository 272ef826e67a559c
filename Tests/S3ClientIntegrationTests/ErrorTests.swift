import Foundation
@testable import S3Client
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension PlainMotoTests {
    /// How failures reach the caller: S3's own errors, an unreachable or silent server, and
    /// uploads that the caller's body callback cuts short.
    @Suite struct ErrorTests {
        struct BodySourceFailed: Error, Equatable {}
        struct SinkFailed: Error, Equatable {}

        @Test func missingKeyAndMissingBucket() throws {
            let s3 = try SharedMoto.get().connection()
            let bucket = uniqueBucket("errors")
            try s3.createBucket(bucket: bucket)
            let noKey = expectServiceError(status: 404, code: "NoSuchKey") { _ = try s3.download(bucket: bucket, key: "absent") }
            if case let .service(_, _, message, _)? = noKey { #expect(message?.isEmpty == false) }
            expectServiceError(status: 404, code: nil) { _ = try s3.headObject(bucket: bucket, key: "absent") }
            let otherBucket = uniqueBucket("never-created")
            expectServiceError(status: 404, code: "NoSuchBucket") { _ = try s3.download(bucket: otherBucket, key: "k") }
            expectServiceError(status: 404, code: "NoSuchBucket") {
                try s3.putInChunks(bucket: otherBucket, key: "k", Array("body".utf8))
            }
            expectServiceError(status: 404, code: nil) { try s3.headBucket(bucket: otherBucket) }
        }

        @Test func connectionRefusedIsATransportErrorAtOnce() throws {
            let closedPort = try LoopbackPort.free()
            let s3 = try S3Connection(configuration: S3Configuration(endpoint: "127.0.0.1:\(closedPort)", connectTimeout: 5))
            let seconds = measure {
                let error = expectS3Error("a transport error", { _ = try s3.download(bucket: "b", key: "k") }) { $0.isTransport }
                #expect("\(error.map(String.init(describing:)) ?? "")".contains("\(closedPort)"))
            }
            #expect(seconds < 2, "a refused connection fails fast, retry included (took \(seconds) s)")
        }

        /// A server that accepts the connection (the kernel does, from the listen backlog) and
        /// never answers: the read timeout, not the connect timeout, must end the request.
        @Test func silentServerTimesOutAfterTheReadTimeout() throws {
            let silent = try LoopbackPort.listening(backlog: 8)
            defer { close(silent.descriptor) }
            let s3 = try S3Connection(
                configuration: S3Configuration(endpoint: "127.0.0.1:\(silent.port)", connectTimeout: 5, readTimeout: 1))
            let seconds = measure {
                expectS3Error("a timeout", { _ = try s3.download(bucket: "b", key: "k") }) { $0.isTimeout }
            }
            #expect(seconds >= 0.9 && seconds < 3, "read timeout 1 s took \(seconds) s")
            #expect(try Self.queuedConnections(silent.descriptor) == 1, "a timed-out request is not retried")
        }

        /// An upload to a server that stops reading: once the socket buffers are full no byte
        /// moves, and the read timeout (which watches both directions) ends the request.
        @Test func stalledUploadTimesOut() throws {
            let silent = try LoopbackPort.listening(backlog: 8)
            defer { close(silent.descriptor) }
            let s3 = try S3Connection(
                configuration: S3Configuration(endpoint: "127.0.0.1:\(silent.port)", connectTimeout: 5, readTimeout: 1))
            let pattern = PatternStream()
            var offset: Int64 = 0
            let seconds = measure {
                expectS3Error("a timeout", {
                    try s3.putObject(bucket: "b", key: "k", contentLength: 256 << 20, payloadSHA256: nil) { buffer in
                        pattern.fill(buffer, at: offset)
                        offset += Int64(buffer.count)
                        return buffer.count
                    }
                }) { $0.isTimeout }
            }
            #expect(seconds >= 0.9 && seconds < 4, "read timeout 1 s took \(seconds) s")
            #expect(offset < 256 << 20, "the body stopped being pulled when the server stopped reading")
        }

        /// A download that stops mid-body after a fast first megabyte: the read timeout counts
        /// from the last byte, not from an average over the burst.
        @Test func stalledDownloadTimesOut() throws {
            let moto = try SharedMoto.get()
            let bucket = uniqueBucket("stall")
            let bytes = PatternStream().prefix(4 << 20)
            let direct = try moto.connection()
            try direct.createBucket(bucket: bucket)
            try direct.putInChunks(bucket: bucket, key: "big", bytes, chunkSize: 1 << 20)
            try moto.withRelay { relay in
                relay.stallResponses(after: 1 << 20)
                let s3 = try S3Connection(
                    configuration: S3Configuration(endpoint: relay.endpoint, connectTimeout: 5, readTimeout: 1))
                var heads = 0
                var received = 0
                let seconds = measure {
                    expectS3Error("a timeout", {
                        try s3.getObject(
                            bucket: bucket, key: "big", onHead: { _ in heads += 1 }, onBody: { received += $0.count })
                    }) { $0.isTimeout }
                }
                #expect(seconds >= 0.9 && seconds < 4, "read timeout 1 s took \(seconds) s")
                #expect(heads == 1)
                #expect(received > 0 && received < bytes.count)
                #expect(relay.acceptedConnections == 1, "a GET whose head reached the caller is not retried")
            }
        }

        /// S3 refuses an upload (no such bucket) while the body is still being sent: the
        /// caller gets S3's answer, not the broken pipe that may follow it.
        @Test func refusedLargeUploadReportsTheServiceError() throws {
            let s3 = try SharedMoto.get().connection()
            let pattern = PatternStream()
            var offset: Int64 = 0
            expectServiceError(status: 404, code: "NoSuchBucket") {
                try s3.putObject(
                    bucket: uniqueBucket("absent"), key: "big", contentLength: 8 << 20, payloadSHA256: nil
                ) { buffer in
                    pattern.fill(buffer, at: offset)
                    offset += Int64(buffer.count)
                    return buffer.count
                }
            }
        }

        /// The body callback runs dry early: the upload is aborted mid-request, so S3 sees a
        /// truncated request, not a shorter object, and stores nothing.
        @Test func shortUploadIsAbortedAndNothingIsStored() throws {
            let s3 = try SharedMoto.get().connection()
            let bucket = uniqueBucket("short")
            try s3.createBucket(bucket: bucket)
            let pattern = PatternStream()
            var supplied: Int64 = 0
            expectS3Error("an aborted transfer", {
                try s3.putObject(bucket: bucket, key: "short", contentLength: 100_000, payloadSHA256: nil) { buffer in
                    guard supplied < 30_000 else { return 0 }
                    let count = min(buffer.count, 10_000)
                    pattern.fill(UnsafeMutableRawBufferPointer(rebasing: buffer[..<count]), at: supplied)
                    supplied += Int64(count)
                    return count
                }
            }) { $0.isAborted }
            // The same connection goes on working after the aborted upload.
            expectServiceError(status: 404, code: nil) { _ = try s3.headObject(bucket: bucket, key: "short") }
        }

        @Test func throwingBodyCallbackIsRethrownAndNothingIsStored() throws {
            let s3 = try SharedMoto.get().connection()
            let bucket = uniqueBucket("throwing")
            try s3.createBucket(bucket: bucket)
            var calls = 0
            #expect(throws: BodySourceFailed()) {
                try s3.putObject(bucket: bucket, key: "partial", contentLength: 1 << 20, payloadSHA256: nil) { buffer in
                    calls += 1
                    guard calls < 4 else { throw BodySourceFailed() }
                    let count = min(buffer.count, 4096)
                    PatternStream().fill(UnsafeMutableRawBufferPointer(rebasing: buffer[..<count]), at: 0)
                    return count
                }
            }
            expectServiceError(status: 404, code: nil) { _ = try s3.headObject(bucket: bucket, key: "partial") }
        }

        @Test func overfullBodyCallbackIsAborted() throws {
            let s3 = try SharedMoto.get().connection()
            let bucket = uniqueBucket("overfull")
            try s3.createBucket(bucket: bucket)
            expectS3Error("an aborted transfer", {
                try s3.putObject(bucket: bucket, key: "liar", contentLength: 10, payloadSHA256: nil) { buffer in
                    buffer.count + 1
                }
            }) { $0.isAborted }
            expectServiceError(status: 404, code: nil) { _ = try s3.headObject(bucket: bucket, key: "liar") }
        }

        /// The caller's sink fails mid-download: its error comes back as is, the connection
        /// stays usable, and the GET is not repeated behind the caller's back.
        @Test func throwingSinkIsRethrown() throws {
            let s3 = try SharedMoto.get().connection()
            let bucket = uniqueBucket("sink")
            try s3.createBucket(bucket: bucket)
            let bytes = PatternStream().prefix(1 << 20)
            try s3.putInChunks(bucket: bucket, key: "big", bytes, chunkSize: 1 << 16)
            var heads = 0
            var received = 0
            #expect(throws: SinkFailed()) {
                try s3.getObject(
                    bucket: bucket, key: "big", onHead: { _ in heads += 1 },
                    onBody: { chunk in
                        received += chunk.count
                        if received > 100_000 { throw SinkFailed() }
                    })
            }
            #expect(heads == 1)
            #expect(received < bytes.count)
            #expect(try s3.download(bucket: bucket, key: "big").body == bytes)
        }

        /// Accepts (non-blocking) every connection waiting on `listener` and counts them.
        private static func queuedConnections(_ listener: Int32) throws -> Int {
            let flags = fcntl(listener, F_GETFL)
            guard flags >= 0, fcntl(listener, F_SETFL, flags | O_NONBLOCK) == 0 else {
                throw TestSetupError("fcntl O_NONBLOCK: errno \(errno)")
            }
            var count = 0
            while true {
                let fd = accept(listener, nil, nil)
                guard fd >= 0 else { break }
                close(fd)
                count += 1
            }
            return count
        }
    }
}
