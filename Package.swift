// swift-tools-version:6.0
import PackageDescription

/// One settings array for every Swift target: Swift 6 language mode is the package default;
/// these add the checks we want on top of it.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "s3cache",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "s3cache", targets: ["s3cache"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // Thin C targets: a modulemap and a shim header each, nothing else.
        .systemLibrary(name: "CFastCGI", path: "Sources/CFastCGI"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl"),
        .systemLibrary(name: "CCrypto", path: "Sources/CCrypto"),
        .systemLibrary(name: "CLinux", path: "Sources/CLinux"),

        // What every layer uses: the monotonic clock, thread spawning, and the one system-call
        // wrapper (errno, EINTR) with its write loop.
        .target(name: "Platform", dependencies: ["CLinux"], swiftSettings: swiftSettings),
        .target(name: "FastCGI", dependencies: ["CFastCGI", "CLinux", "Platform"], swiftSettings: swiftSettings),
        .target(name: "Gzip", dependencies: ["CZlib"], swiftSettings: swiftSettings),
        // Cross-module optimisation lets a client specialise the generic eviction policies for its
        // own key and value types; unspecialised, the simulator in bench/ runs 10–20× slower.
        .target(
            name: "ObjectCache", dependencies: ["Gzip", "Platform"],
            swiftSettings: swiftSettings + [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]
        ),
        .target(name: "S3Client", dependencies: ["CCurl", "CCrypto"], swiftSettings: swiftSettings),
        .target(
            name: "S3CacheCore",
            dependencies: [
                "CLinux", "FastCGI", "Gzip", "ObjectCache", "Platform", "S3Client",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "s3cache", dependencies: ["S3CacheCore"], swiftSettings: swiftSettings),
        // The eviction-policy simulator (bench/README.md): the worker's own policies on synthetic traces.
        .executableTarget(name: "cachesim", dependencies: ["ObjectCache"], path: "bench/cachesim", swiftSettings: swiftSettings),
        // Hit latency while a purge walks 100,000 entries (bench/purge).
        .executableTarget(
            name: "purgestall", dependencies: ["ObjectCache", "Platform"], path: "bench/purgestall", swiftSettings: swiftSettings),

        // libFuzzer targets (fuzz/README.md): `fuzz/run` builds them with --sanitize=fuzzer,address
        // and -D FUZZING (libFuzzer's main); a plain build links them as replayers of corpus files.
        .target(name: "FuzzSupport", path: "fuzz/Support", swiftSettings: swiftSettings),
        fuzzTarget("route", testing: "S3CacheCore"),
        fuzzTarget("read-request", testing: "S3CacheCore"),
        fuzzTarget("http-date", testing: "S3CacheCore"),
        fuzzTarget("configuration", testing: "S3CacheCore"),
        fuzzTarget("fastcgi-params", testing: "FastCGI"),
        fuzzTarget("s3-error", testing: "S3Client"),
        fuzzTarget("notification", testing: "S3CacheCore"),
        fuzzTarget("cache-control", testing: "S3CacheCore"),
        fuzzTarget("sigv4", testing: "S3CacheCore"),
        fuzzTarget("aws-chunked", testing: "S3CacheCore"),
        fuzzTarget("file-record", testing: "ObjectCache"),

        .testTarget(name: "FastCGITests", dependencies: ["FastCGI", "CLinux", "Platform"], swiftSettings: swiftSettings),
        .testTarget(name: "GzipTests", dependencies: ["Gzip"], swiftSettings: swiftSettings),
        .testTarget(name: "ObjectCacheTests", dependencies: ["ObjectCache", "Platform"], swiftSettings: swiftSettings),
        .testTarget(name: "S3ClientTests", dependencies: ["S3Client"], swiftSettings: swiftSettings),
        .testTarget(name: "S3ClientIntegrationTests", dependencies: ["S3Client"], swiftSettings: swiftSettings),
        .testTarget(
            name: "S3CacheCoreTests",
            dependencies: ["S3CacheCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
    ]
)

/// `fuzz-<name>`, from fuzz/Targets/<name>/main.swift.
func fuzzTarget(_ name: String, testing module: String) -> Target {
    .executableTarget(
        name: "fuzz-\(name)", dependencies: ["FuzzSupport", .target(name: module)], path: "fuzz/Targets/\(name)",
        swiftSettings: swiftSettings)
}
