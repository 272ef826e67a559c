import Logging
import S3Client

/// One worker thread's gateway, rebuilt before the next request after a reload changed the
/// configuration; a new S3 connection is made only when the S3 settings changed.
final class ReloadingGateway {
    typealias Connect = (S3Configuration) throws -> any ObjectStore

    private let shared: SharedState
    private let logger: Logger
    private let connect: Connect
    private var generation: Int
    private var configuration: Configuration
    private var connection: any ObjectStore
    private var gateway: Gateway

    /// - Parameter connect: opens this thread's connection to S3 (kept alive across requests).
    init(shared: SharedState, logger: Logger, connect: @escaping Connect) throws {
        self.shared = shared
        self.logger = logger
        self.connect = connect
        generation = shared.live.generation
        configuration = shared.live.current
        connection = try connect(configuration.s3)
        gateway = Gateway(configuration: configuration, connection: connection, shared: shared, logger: logger)
    }

    func handle(_ exchange: any Exchange) {
        let current = shared.live.generation
        if current != generation { rebuild(generation: current) }
        gateway.handle(exchange)
    }

    private func rebuild(generation current: Int) {
        let updated = shared.live.current
        if updated.s3 != configuration.s3 {
            do {
                connection = try connect(updated.s3)
            } catch {
                logger.error("cannot apply the new S3 settings; keeping the old ones", metadata: ["error": .string(String(describing: error))])
            }
        }
        gateway = gateway.rebuilt(configuration: updated, connection: connection)
        configuration = updated
        generation = current
    }
}
