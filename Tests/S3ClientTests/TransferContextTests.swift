@testable import S3Client
import Testing

/// The callback logic behind a transfer, driven the way libcurl drives it, without a socket.
@Suite struct TransferContextTests {
    struct Refused: Error {}

    private func feed(_ context: TransferContext, _ lines: [String]) -> Bool {
        lines.allSatisfy { line in Array(line.utf8).withUnsafeBytes { context.receiveHeaderLine($0) } }
    }

    private func body(_ context: TransferContext, _ text: String) -> Bool {
        Array(text.utf8).withUnsafeBytes { context.receiveBody($0) }
    }

    @Test func interimBlockIsDiscardedAndHeadDeliveredOnceBeforeBody() {
        var events: [String] = []
        let context = TransferContext(
            onHead: { events.append("head \($0.status) \($0.header("etag") ?? "-")") },
            onBody: { events.append("body \($0.count)") })
        #expect(feed(context, ["HTTP/1.1 100 Continue\r\n", "X-Interim: 1\r\n", "\r\n"]))
        #expect(events.isEmpty)
        #expect(feed(context, ["HTTP/1.1 200 OK\r\n", "ETag: \"abc\"\r\n", "Content-Length:  5 \r\n", "\r\n"]))
        #expect(body(context, "hel") && body(context, "lo"))
        #expect(events == ["head 200 \"abc\"", "body 3", "body 2"])
        #expect(context.head.headers.map(\.name) == ["ETag", "Content-Length"])
        #expect(context.head.header("content-length") == "5")
        #expect(context.headDelivered)
    }

    @Test func notModifiedIsDeliveredWithoutBody() {
        var heads: [Int] = []
        let context = TransferContext(onHead: { heads.append($0.status) }, onBody: { _ in Issue.record("no body expected") })
        #expect(feed(context, ["HTTP/1.1 304 Not Modified\r\n", "ETag: \"abc\"\r\n", "\r\n"]))
        #expect(heads == [304])
    }

    @Test func errorStatusKeepsBoundedBodyAndNeverCallsTheCaller() {
        let context = TransferContext(onHead: { _ in Issue.record("onHead on 404") }, onBody: { _ in Issue.record("onBody on 404") })
        #expect(feed(context, ["HTTP/1.1 404 Not Found\r\n", "\r\n"]))
        let chunk = String(repeating: "x", count: 40_000)
        #expect(body(context, chunk) && body(context, chunk))
        #expect(context.errorBody.count == TransferContext.errorBodyLimit)
        #expect(!context.headDelivered)
    }

    @Test func foldedHeaderContinuesPreviousValue() {
        let context = TransferContext()
        #expect(feed(context, ["HTTP/1.1 200 OK\r\n", "X-Long: part one\r\n", "\t part two\r\n", "\r\n"]))
        #expect(context.head.header("x-long") == "part one part two")
    }

    @Test func trailersAfterTheHeadAreIgnored() {
        let context = TransferContext()
        #expect(feed(context, ["HTTP/1.1 200 OK\r\n", "A: 1\r\n", "\r\n", "Trailer: 2\r\n"]))
        #expect(context.head.headers.count == 1)
    }

    @Test func oversizedHeadersStopTheTransfer() {
        let context = TransferContext()
        let line = "X-Big: " + String(repeating: "y", count: 1000) + "\r\n"
        #expect(feed(context, ["HTTP/1.1 200 OK\r\n"]))
        #expect(!feed(context, Array(repeating: line, count: 70)))
        #expect(context.failure is S3Error)
    }

    @Test func throwingOnHeadStopsBeforeAnyBody() {
        let context = TransferContext(onHead: { _ in throw Refused() }, onBody: { _ in Issue.record("body after refusal") })
        #expect(!feed(context, ["HTTP/1.1 200 OK\r\n", "\r\n"]))
        #expect(!body(context, "data"))
        #expect(context.failure is Refused)
    }

    @Test func throwingOnBodyStopsTheTransfer() {
        let context = TransferContext(onHead: { _ in }, onBody: { _ in throw Refused() })
        #expect(feed(context, ["HTTP/1.1 200 OK\r\n", "\r\n"]))
        #expect(!body(context, "data"))
        #expect(context.failure is Refused)
    }

    @Test func uploadStopsAtContentLengthAndNeverAsksForMore() {
        var calls = 0
        let context = TransferContext(upload: { buffer in
            calls += 1
            buffer.initializeMemory(as: UInt8.self, repeating: 7)
            return buffer.count
        }, uploadLength: 10)
        var buffer = [UInt8](repeating: 0, count: 8)
        let first = buffer.withUnsafeMutableBytes { context.supplyBody(into: $0) }
        let second = buffer.withUnsafeMutableBytes { context.supplyBody(into: $0) }
        let third = buffer.withUnsafeMutableBytes { context.supplyBody(into: $0) }
        #expect([first, second, third] == [8, 2, 0])
        #expect(calls == 2)
        #expect(!context.canRewind(to: 0))
    }

    @Test func shortUploadAborts() {
        let context = TransferContext(upload: { _ in 0 }, uploadLength: 10)
        var buffer = [UInt8](repeating: 0, count: 8)
        #expect(context.canRewind(to: 0))
        #expect(buffer.withUnsafeMutableBytes { context.supplyBody(into: $0) } == nil)
        guard case .aborted(let message)? = context.failure as? S3Error else {
            Issue.record("expected .aborted, got \(String(describing: context.failure))")
            return
        }
        #expect(message.contains("0 of 10"))
    }

    @Test func throwingUploadAbortsWithTheCallersError() {
        let context = TransferContext(upload: { _ in throw Refused() }, uploadLength: 10)
        var buffer = [UInt8](repeating: 0, count: 8)
        #expect(buffer.withUnsafeMutableBytes { context.supplyBody(into: $0) } == nil)
        #expect(context.failure is Refused)
    }

    @Test func uploadClaimingMoreThanTheBufferAborts() {
        let context = TransferContext(upload: { $0.count + 1 }, uploadLength: 100)
        var buffer = [UInt8](repeating: 0, count: 8)
        #expect(buffer.withUnsafeMutableBytes { context.supplyBody(into: $0) } == nil)
        #expect(context.failure is S3Error)
    }

    @Test func idleLimitCountsOnlyAfterBodyBytesMoved() {
        let context = TransferContext()
        context.idleLimit = .zero
        // Connecting, waiting for the head: no body byte yet, the low-speed check's job.
        #expect(context.progress(downloaded: 0, uploaded: 0))
        #expect(context.progress(downloaded: 0, uploaded: 0))
        #expect(context.progress(downloaded: 0, uploaded: 4096))
        #expect(context.progress(downloaded: 100, uploaded: 4096))
        #expect(!context.stalled)
        // Nothing moved since the last report, and the (zero) limit has passed.
        #expect(!context.progress(downloaded: 100, uploaded: 4096))
        #expect(context.stalled)
    }

    @Test func withoutIdleLimitProgressNeverStops() {
        let context = TransferContext()
        #expect(context.progress(downloaded: 5, uploaded: 0))
        #expect(context.progress(downloaded: 5, uploaded: 0))
        #expect(!context.stalled)
    }
}
