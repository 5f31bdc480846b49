// swift-tools-version:6.0
import PackageDescription

/// libFuzzer targets for nbdtap's parsers: a separate package so the main build stays
/// light. Build and run one with `Fuzz/run TARGET [MINUTES]`; `Fuzz/run --regress` replays
/// every committed corpus once (what CI runs).
let package = Package(
    name: "nbdtap-fuzz",
    dependencies: [
        .package(name: "nbdtap", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "NIOCore", package: "swift-nio")], path: "Sources/FuzzSupport"),
        .executableTarget(name: "FuzzConversation", dependencies: [
            "FuzzSupport", .product(name: "NBDConversation", package: "nbdtap"), .product(name: "NBDReport", package: "nbdtap"),
            .product(name: "NBDProtocol", package: "nbdtap"), .product(name: "NIOCore", package: "swift-nio"),
        ], path: "Sources/FuzzConversation"),
        .executableTarget(name: "FuzzPcap", dependencies: [
            "FuzzSupport", .product(name: "NBDCapture", package: "nbdtap"), .product(name: "NBDReport", package: "nbdtap"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], path: "Sources/FuzzPcap"),
        .executableTarget(name: "FuzzTranscript", dependencies: [
            "FuzzSupport", .product(name: "NBDConversation", package: "nbdtap"), .product(name: "NIOCore", package: "swift-nio"),
        ], path: "Sources/FuzzTranscript"),
        .executableTarget(name: "FuzzURI", dependencies: [
            "FuzzSupport", .product(name: "NBDProtocol", package: "nbdtap"),
        ], path: "Sources/FuzzURI"),
        .executableTarget(name: "FuzzPayloads", dependencies: [
            "FuzzSupport", .product(name: "NBDProtocol", package: "nbdtap"), .product(name: "NIOCore", package: "swift-nio"),
        ], path: "Sources/FuzzPayloads"),
        .executableTarget(name: "FuzzRelay", dependencies: [
            "FuzzSupport", .product(name: "NBDProxy", package: "nbdtap"), .product(name: "NBDEmulation", package: "nbdtap"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], path: "Sources/FuzzRelay"),
        .executableTarget(name: "FuzzPolicy", dependencies: [
            "FuzzSupport", .product(name: "NBDConversation", package: "nbdtap"), .product(name: "NBDEmulation", package: "nbdtap"),
            .product(name: "NBDProtocol", package: "nbdtap"), .product(name: "NIOCore", package: "swift-nio"),
        ], path: "Sources/FuzzPolicy"),
        .executableTarget(name: "FuzzReplay", dependencies: [
            "FuzzSupport", .product(name: "NBDReplay", package: "nbdtap"), .product(name: "NBDConversation", package: "nbdtap"),
            .product(name: "NBDReport", package: "nbdtap"), .product(name: "NBDProtocol", package: "nbdtap"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], path: "Sources/FuzzReplay"),
    ],
    swiftLanguageModes: [.v5]
)
