@testable import S3Client
import Testing

/// The suites that share one moto checking no signature: the one to test escaping and the
/// wire format against (a verifying moto wrongly refuses signed paths holding %-escapes).
@Suite(.moto(verifying: false)) enum PlainMotoTests {}

/// The suites that share one moto verifying SigV4 against an IAM user's key pair.
@Suite(.moto(verifying: true)) enum VerifyingMotoTests {}

/// The moto of the enclosing suite, started before its first test and stopped after its
/// last one, whether the tests passed, failed or threw.
///
/// Starting moto costs seconds of CPU (a Python import of every AWS service) on a 2-core
/// machine; the tests each use their own bucket and do not need a process each. Tests
/// reach it through `SharedMoto.get()`.
struct SharedMoto: Sendable {
    let server: MotoServer
    /// The IAM key pair moto verifies signatures against; nil when it verifies none.
    let credentials: S3Credentials?

    @TaskLocal static var current: SharedMoto?

    /// The enclosing suite's moto; a test failure when there is none.
    static func get(sourceLocation: SourceLocation = #_sourceLocation) throws -> SharedMoto {
        try #require(current, "nest the suite in PlainMotoTests or VerifyingMotoTests", sourceLocation: sourceLocation)
    }

    /// A connection to this moto, signed with the verified key pair when there is one.
    func connection() throws -> S3Connection {
        if let credentials { return try server.connection(credentials: credentials) }
        return try server.connection()
    }

    /// Runs `body` with client → relay (counts, closes, drops, stalls) → nginx → this moto,
    /// and stops the relay and nginx afterwards, however `body` ends.
    ///
    /// moto closes the connection after every answer (`Connection: close`), so keep-alive
    /// is only observable through a server that keeps client connections open: nginx does,
    /// opening upstream connections to moto as moto closes them.
    func withRelay(_ body: (TCPRelay) throws -> Void) throws {
        let nginx = try NginxProxy.start(upstreamPort: server.port, tls: false)
        defer { nginx.stop() }
        let relay = try TCPRelay(upstreamPort: nginx.port)
        defer { relay.stop() }
        try body(relay)
    }
}

/// The trait that gives a suite (and the suites nested in it) its `SharedMoto`.
struct MotoTrait: SuiteTrait, TestScoping {
    /// Whether moto checks SigV4 (see `MotoServer.enableSignatureVerification`).
    var verifying: Bool

    /// Provided once around the suite, not around each test.
    var isRecursive: Bool { false }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        let server = try await MotoServer.start()
        do {
            let credentials = verifying ? try server.enableSignatureVerification() : nil
            try await SharedMoto.$current.withValue(SharedMoto(server: server, credentials: credentials)) {
                try await function()
            }
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }
}

extension Trait where Self == MotoTrait {
    static func moto(verifying: Bool) -> Self { MotoTrait(verifying: verifying) }
}

/// A bucket name no other test uses: S3 rules (lower case, digits, hyphens, 3–63 bytes).
func uniqueBucket(_ prefix: String) -> String {
    "\(prefix)-\(UInt32.random(in: 0...UInt32.max))"
}
