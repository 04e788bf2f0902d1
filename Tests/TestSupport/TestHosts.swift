import Host
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// Hosts for in-process route tests: a test database, quiet logs, the given plugins.
package enum TestHosts {
    package static func open(
        _ test: TestDatabase, plugins: [any Plugin.Type],
        configure: (inout HostConfiguration) -> Void = { _ in }
    ) async throws -> TenkiHost {
        var configuration = HostConfiguration()
        configuration.dataDir = test.directory
        configuration.databaseURL = test.url
        configuration.policyRoot = Fixtures.packageRoot + "/policies"
        configuration.scriptsRoot = test.directory + "/no-scripts"
        configure(&configuration)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return try await TenkiHost.open(configuration, plugins: plugins, logger: logger)
    }

    /// Runs `body` against the host's router in-process, then closes the host's database.
    package static func routes(_ host: TenkiHost, _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        try await Application(router: host.makeRouter()).test(.router) { client in try await body(client) }
        await host.database.close()
    }

    /// Takes the database away, then expects each GET of `uris` to answer a clean 503.
    package static func expectUnavailable(
        _ client: any TestClientProtocol, _ test: TestDatabase, _ host: TenkiHost, uris: [String],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        try await test.takeAway(from: host.database)
        for uri in uris {
            try await client.execute(uri: uri, method: .get) { response in
                let message = RouteAnswers.expectError(response, .serviceUnavailable, "unavailable", sourceLocation: sourceLocation)
                #expect(message == "database unavailable", "\(uri)", sourceLocation: sourceLocation)
            }
        }
    }
}
