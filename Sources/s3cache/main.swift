#if canImport(Glibc)
import Glibc
#endif
import Logging
import S3CacheCore

/// Exit status for a configuration that cannot be used (sysexits' EX_CONFIG); the unit's
/// `RestartPreventExitStatus=78` stops systemd from restarting into the same mistake.
let exitConfigurationError: Int32 = 78
/// Exit status for a wrong command line (sysexits' EX_USAGE).
let exitUsage: Int32 = 64

let options: CommandLineOptions
do {
    options = try CommandLineOptions(parsing: Array(CommandLine.arguments.dropFirst()))
} catch {
    writeStandardError("s3cache: \(error)\n\n\(CommandLineOptions.usage)\n")
    exit(exitUsage)
}
switch options.action {
case .version:
    print("s3cache \(S3CacheVersion.current)")
    exit(0)
case .help:
    print(CommandLineOptions.usage)
    exit(0)
case let .newKey(grants):
    do {
        print(try AccessKeys.newLine(grants: try AccessRules(parsing: grants)))
        exit(0)
    } catch {
        writeStandardError("s3cache: keys new: \(error)\n")
        exit(exitUsage)
    }
case .checkConfiguration, .serve, .presign:
    break
}

let environment = processEnvironment()
let source = ConfigurationSource(
    path: options.configPath ?? ConfigurationSource.defaultPath, pathIsRequired: options.configPath != nil,
    environment: environment)
let configuration: Configuration
do {
    configuration = try source.load()
} catch {
    writeStandardError("s3cache: configuration error: \(error)\n")
    exit(exitConfigurationError)
}
if case let .presign(request) = options.action {
    guard let key = configuration.accessKeys[request.keyID] else {
        writeStandardError("s3cache: presign: no key \(request.keyID) in \(configuration.accessKeysFile)\n")
        exit(exitConfigurationError)
    }
    do {
        print(try Presigner.presign(
            url: request.url, method: request.method, expires: request.expires, key: key, region: request.region,
            now: Int64(time(nil))))
        exit(0)
    } catch {
        writeStandardError("s3cache: presign: \(error)\n")
        exit(exitUsage)
    }
}
if case .checkConfiguration = options.action {
    print("s3cache: configuration OK (\(source.path ?? "environment only"); buckets \(configuration.accessRules))")
    exit(0)
}

let logLevel = LogLevelSetting(configuration.logLevel)
LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: logLevel) }
let logger = Logger(label: "s3cache")

do {
    try Server.run(source: source, configuration: configuration, logLevel: logLevel, environment: environment, logger: logger)
    exit(0)
} catch {
    logger.critical("cannot start", metadata: ["error": .string(String(describing: error))])
    writeStandardError("s3cache: cannot start: \(error)\n")
    exit(1)
}
