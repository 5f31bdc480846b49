// swift-tools-version:6.1
import PackageDescription

/// Micro-benchmarks of nbdtap's conversation decoder on in-memory streams.
///
/// A separate package so that its dependency on ordo-one/benchmark (and that package's own
/// dependencies) stays out of the main `swift build`. Run it with
/// `swift package --package-path Benchmarks benchmark` (or `bench/run --only micro`).
let package = Package(
    name: "nbdtap-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "nbdtap", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "DecoderBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "NBDProtocol", package: "nbdtap"),
                .product(name: "NBDConversation", package: "nbdtap"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/DecoderBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
