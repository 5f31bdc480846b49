// swift-tools-version:6.0
import PackageDescription

/// nbdtap: a transparent NBD proxy, legacy-peer emulator, request logger and pcap decoder.
/// The layering follows Docs/design.md: the wire (NBDProtocol), one pure conversation
/// decoder (NBDConversation), log and statistics computed from its events (NBDReport),
/// and the two front ends that feed it bytes (NBDProxy from sockets, NBDCapture from pcap).
let package = Package(
    name: "nbdtap",
    products: [
        .executable(name: "nbdtap", targets: ["nbdtap"]),
        .library(name: "NBDProtocol", targets: ["NBDProtocol"]),
        .library(name: "NBDConversation", targets: ["NBDConversation"]),
        // For the fuzzing package in Fuzz/ (a path dependency): the pcap front end, the
        // reports and the emulation policy.
        .library(name: "NBDCapture", targets: ["NBDCapture"]),
        .library(name: "NBDReport", targets: ["NBDReport"]),
        .library(name: "NBDEmulation", targets: ["NBDEmulation"]),
        .library(name: "NBDProxy", targets: ["NBDProxy"]),
        .library(name: "NBDReplay", targets: ["NBDReplay"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        .target(
            name: "NBDProtocol",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        .target(
            name: "NBDConversation",
            dependencies: ["NBDProtocol", .product(name: "NIOCore", package: "swift-nio")]
        ),
        /// Legacy-peer emulation policy: what to mask, refuse or emulate; no I/O.
        .target(
            name: "NBDEmulation",
            dependencies: ["NBDProtocol", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .target(
            name: "NBDReport",
            dependencies: ["NBDProtocol", "NBDConversation", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]
        ),
        .target(
            name: "NBDProxy",
            dependencies: [
                "NBDProtocol", "NBDConversation", "NBDReport", "NBDEmulation", "CSplice",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]
        ),
        /// TLS termination with swift-nio-ssl, apart from the relay so that what builds the
        /// relay alone (the fuzz targets) does not build BoringSSL.
        .target(
            name: "NBDTLS",
            dependencies: [
                "NBDProxy",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        /// `--metrics`: the conversation's events as Prometheus metrics, served over HTTP/1.
        /// Apart from the relay so that what builds the relay alone (the fuzz targets)
        /// does not build swift-prometheus or NIOHTTP1.
        .target(
            name: "NBDMetrics",
            dependencies: [
                "NBDProtocol", "NBDConversation", "NBDReport", "NBDProxy",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .systemLibrary(name: "CPcap", providers: [.apt(["libpcap-dev"])]),
        /// splice(2) and pipe sizing for the proxy's kernel path: glibc declares them only
        /// under _GNU_SOURCE, which Swift's Glibc module does not define.
        .target(name: "CSplice"),
        /// A SIGBUS guard for mapped capture files another process shrinks while they are
        /// read: a signal handler has to be C.
        .target(name: "CMapGuard"),
        /// pcap input and TCP reassembly. Release builds skip Swift's run-time exclusivity
        /// checks here (debug builds and tests keep them): they were ~15% of decoding a
        /// 916 MB capture of 4 KiB requests (1.12 s -> 0.93 s), mostly in NIO's ByteBuffer
        /// accessors specialized into this module. Not a library product, so the unsafe
        /// flag does not stop other packages depending on NBDProtocol or NBDConversation.
        .target(
            name: "NBDCapture",
            dependencies: ["NBDProtocol", "NBDConversation", "NBDReport", "CPcap", "CMapGuard", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        /// Replay: a recorded workload re-driven against any server, its answers compared.
        .target(
            name: "NBDReplay",
            dependencies: [
                "NBDProtocol", "NBDConversation", "NBDReport", "NBDCapture", "NBDProxy",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "nbdtap",
            dependencies: [
                "NBDProtocol", "NBDConversation", "NBDReport", "NBDProxy", "NBDCapture", "NBDEmulation", "NBDReplay", "NBDTLS", "NBDMetrics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            plugins: ["BuildInfo"]
        ),
        /// `nbdtap --version`: the VERSION file and the git commit, written before each build.
        .plugin(name: "BuildInfo", capability: .buildTool()),
        /// Helpers the test targets share: reading nbdkit logs and other ground truth.
        .target(name: "NBDTestSupport", path: "Tests/NBDTestSupport"),
        .testTarget(name: "NBDProtocolTests", dependencies: ["NBDProtocol", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(
            name: "NBDEmulationTests",
            dependencies: ["NBDEmulation", "NBDProtocol", .product(name: "NIOCore", package: "swift-nio")],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "NBDConversationTests",
            dependencies: ["NBDProtocol", "NBDConversation", "NBDReport", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(name: "NBDReplayTests", dependencies: ["NBDReplay", "NBDProtocol", "NBDConversation", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "NBDCaptureTests", dependencies: ["NBDCapture", "NBDConversation", "NBDReport", "NBDTestSupport", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "NBDReportTests", dependencies: ["NBDProtocol", "NBDConversation", "NBDReport", "NBDTestSupport", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["NBDProtocol", "NBDConversation", "NBDReport", "NBDProxy", "NBDTestSupport", .product(name: "NIOCore", package: "swift-nio")],
            exclude: ["Tools"]
        ),
    ],
    swiftLanguageModes: [.v5]
)
