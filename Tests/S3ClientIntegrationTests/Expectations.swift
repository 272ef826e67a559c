@testable import S3Client
import Testing

/// Runs `body`, expecting `S3Error.service` with this status and code; returns the error.
@discardableResult
func expectServiceError(
    status: Int, code: String?, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) -> S3Error? {
    let error = #expect(throws: S3Error.self, sourceLocation: sourceLocation) { try body() }
    guard let error else { return nil }
    guard case let .service(actualStatus, actualCode, _, _) = error, actualStatus == status, actualCode == code else {
        Issue.record("expected S3 \(status) \(code ?? "(no code)"), got \(error)", sourceLocation: sourceLocation)
        return error
    }
    return error
}

/// Runs `body`, expecting an `S3Error` for which `matches` holds; returns the error.
@discardableResult
func expectS3Error(
    _ what: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void,
    where matches: (S3Error) -> Bool
) -> S3Error? {
    let error = #expect(throws: S3Error.self, sourceLocation: sourceLocation) { try body() }
    guard let error else { return nil }
    if !matches(error) { Issue.record("expected \(what), got \(error)", sourceLocation: sourceLocation) }
    return error
}

extension S3Error {
    var isTransport: Bool { if case .transport = self { true } else { false } }
    var isTimeout: Bool { if case .timeout = self { true } else { false } }
    var isAborted: Bool { if case .aborted = self { true } else { false } }
}

/// Seconds `body` took, on the monotonic clock.
func measure(_ body: () throws -> Void) rethrows -> Double {
    let clock = ContinuousClock()
    let start = clock.now
    try body()
    let elapsed = clock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}
