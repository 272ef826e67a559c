#if canImport(Glibc)
import Glibc
#endif
import Logging
import S3CacheCore

/// Exit status for a configuration that cannot be used (sysexits' EX_CONFIG); the unit's
/// `RestartPreventExitStatus=78` stops systemd from restarting into the same mistake.
let exitConfigurationError: Int32 = 78

let arguments = CommandLine.arguments.dropFirst()
if arguments.contains("--version") || arguments.contains("-V") {
    print("s3cache \(S3CacheVersion.current)")
    exit(0)
}
if arguments.contains("--help") || arguments.contains("-h") {
    print(S3CacheVersion.usage)
    exit(0)
}
if let unknown = arguments.first {
    writeStandardError("s3cache: unknown argument \(unknown)\n\(S3CacheVersion.usage)\n")
    exit(64)
}

let environment = processEnvironment()
let configuration: Configuration
do {
    configuration = try Configuration.load(from: environment)
} catch {
    writeStandardError("s3cache: configuration error: \(error)\n")
    exit(exitConfigurationError)
}

let logLevel = configuration.logLevel
LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: logLevel) }
let logger = Logger(label: "s3cache")

do {
    try Server.run(configuration: configuration, environment: environment, logger: logger)
    exit(0)
} catch {
    logger.critical("cannot start", metadata: ["error": .string(String(describing: error))])
    writeStandardError("s3cache: cannot start: \(error)\n")
    exit(1)
}
