// swift-tools-version:6.2
import PackageDescription

/// Tenki Host: one executable, `tenki`, built from C bindings, a kernel and built-in plugins.
/// The layout is the architecture: Sources/Bindings (C made safe), Sources/Host (kernel),
/// Sources/Plugins/<Name> (one business capability each).
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let hummingbirdTesting: Target.Dependency = .product(name: "HummingbirdTesting", package: "hummingbird")

let package = Package(
    name: "tenki-host",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "tenki", targets: ["tenki"])
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        // MARK: C libraries (system-library targets) and their tiny C shims
        .systemLibrary(name: "CLua", path: "Sources/Bindings/CLua", providers: [.apt(["liblua5.4-dev"])]),
        .target(name: "CLuaShim", dependencies: ["CLua"], path: "Sources/Bindings/CLuaShim"),
        .systemLibrary(name: "CSQLite", path: "Sources/Bindings/CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "CSQLiteShim", dependencies: ["CSQLite"], path: "Sources/Bindings/CSQLiteShim"),
        .systemLibrary(name: "CLibPQ", path: "Sources/Bindings/CLibPQ", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CCurl", path: "Sources/Bindings/CCurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(name: "CCurlShim", dependencies: ["CCurl"], path: "Sources/Bindings/CCurlShim"),
        .target(name: "CSpawnShim", path: "Sources/Bindings/CSpawnShim"),
        .systemLibrary(name: "CCrypto", path: "Sources/Bindings/CCrypto", providers: [.apt(["libssl-dev"])]),

        // MARK: safe Swift modules over them
        .target(name: "BlockingPool", path: "Sources/Bindings/BlockingPool", swiftSettings: swiftSettings),
        .target(name: "Spawn", dependencies: ["CSpawnShim"], path: "Sources/Bindings/Spawn", swiftSettings: swiftSettings),
        .target(name: "Lua", dependencies: ["CLua", "CLuaShim"], path: "Sources/Bindings/Lua", swiftSettings: swiftSettings),
        .target(
            name: "SQL", dependencies: ["CSQLite", "CSQLiteShim", "CLibPQ", "BlockingPool", .product(name: "Logging", package: "swift-log")],
            path: "Sources/Bindings/SQL", swiftSettings: swiftSettings),
        .target(
            name: "HTTPClient", dependencies: ["CCurl", "CCurlShim", "BlockingPool"], path: "Sources/Bindings/HTTPClient",
            swiftSettings: swiftSettings),
        .target(name: "TenkiCrypto", dependencies: ["CCrypto"], path: "Sources/Bindings/Crypto", swiftSettings: swiftSettings),
        .target(name: "Kubernetes", dependencies: ["HTTPClient"], path: "Sources/Bindings/Kubernetes", swiftSettings: swiftSettings),

        // MARK: kernel and plugins
        .target(
            name: "Host",
            dependencies: [
                "Lua", "SQL", "HTTPClient", "TenkiCrypto",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ], path: "Sources/Host", swiftSettings: swiftSettings),
        .target(
            name: "GitHubPlugin", dependencies: ["Host", "HTTPClient", "TenkiCrypto"], path: "Sources/Plugins/GitHub", swiftSettings: swiftSettings),
        .target(name: "LedgerPlugin", dependencies: ["Host", "SQL", "TenkiCrypto"], path: "Sources/Plugins/Ledger", swiftSettings: swiftSettings),
        .target(
            name: "WorkflowPlugin", dependencies: ["Host", "SQL", "Lua", "BlockingPool"], path: "Sources/Plugins/Workflow",
            swiftSettings: swiftSettings),
        .target(
            name: "RunnerPlugin",
            dependencies: ["Host", "GitHubPlugin", "LedgerPlugin", "WorkflowPlugin", "Kubernetes", "SQL", "TenkiCrypto", "HTTPClient", "Spawn"],
            path: "Sources/Plugins/Runner", swiftSettings: swiftSettings),
        .target(
            name: "BillingPlugin", dependencies: ["Host", "SQL", "TenkiCrypto", "HTTPClient", "LedgerPlugin", "RunnerPlugin", "WorkflowPlugin"],
            path: "Sources/Plugins/Billing", swiftSettings: swiftSettings),
        .executableTarget(
            name: "tenki", dependencies: ["Host", "GitHubPlugin", "LedgerPlugin", "WorkflowPlugin", "RunnerPlugin", "BillingPlugin"],
            path: "Sources/tenki", swiftSettings: swiftSettings),

        // MARK: tests (one target per module; route tests run the router in-process with HummingbirdTesting)
        .testTarget(name: "LuaTests", dependencies: ["Lua"], swiftSettings: swiftSettings),
        .testTarget(name: "SQLTests", dependencies: ["SQL", "Spawn", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "SpawnTests", dependencies: ["Spawn"], swiftSettings: swiftSettings),
        .testTarget(name: "HTTPClientTests", dependencies: ["HTTPClient", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "TenkiCryptoTests", dependencies: ["TenkiCrypto", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "HostTests", dependencies: ["Host", "SQL", "TestSupport", hummingbirdTesting], swiftSettings: swiftSettings),
        .testTarget(
            name: "GitHubPluginTests",
            dependencies: [
                "GitHubPlugin", "Host", "Lua", "SQL", "TenkiCrypto", "HTTPClient", "TestSupport", "PluginTestSupport", hummingbirdTesting,
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "BillingPluginTests",
            dependencies: [
                "BillingPlugin", "RunnerPlugin", "LedgerPlugin", "WorkflowPlugin", "GitHubPlugin", "Host", "SQL", "TenkiCrypto", "HTTPClient",
                "TestSupport", "PluginTestSupport", hummingbirdTesting,
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "LedgerTests", dependencies: ["LedgerPlugin", "Host", "SQL", "TestSupport", hummingbirdTesting], swiftSettings: swiftSettings),
        .testTarget(
            name: "RunnerTests",
            dependencies: [
                "RunnerPlugin", "LedgerPlugin", "GitHubPlugin", "WorkflowPlugin", "Kubernetes", "Host", "SQL",
                "HTTPClient", "TenkiCrypto", "TestSupport", "PluginTestSupport", hummingbirdTesting,
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "WorkflowTests", dependencies: ["WorkflowPlugin", "Host", "SQL", "Lua", "HTTPClient", "TestSupport", hummingbirdTesting],
            swiftSettings: swiftSettings),
        .testTarget(name: "TidyTests", dependencies: ["TestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "EndToEndTests", dependencies: ["HTTPClient", "SQL", "TenkiCrypto", "TestSupport", "PluginTestSupport"],
            swiftSettings: swiftSettings),
        .target(
            name: "PluginTestSupport", dependencies: ["TestSupport", "Spawn", "GitHubPlugin", "Kubernetes", "HTTPClient", "TenkiCrypto"],
            path: "Tests/PluginTestSupport", swiftSettings: swiftSettings),
        .testTarget(
            name: "KubernetesTests", dependencies: ["Kubernetes", "HTTPClient", "TestSupport", "PluginTestSupport"], swiftSettings: swiftSettings),
        .target(
            name: "TestSupport",
            dependencies: ["Host", "SQL", "HTTPClient", "Spawn", .product(name: "Hummingbird", package: "hummingbird"), hummingbirdTesting],
            path: "Tests/TestSupport", exclude: ["peers"], swiftSettings: swiftSettings),
    ]
)
