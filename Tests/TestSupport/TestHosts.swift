import Foundation
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
    /// Requests without an `Authorization` header carry a key of `role` (ops unless said;
    /// nil sends them as they are, to test the access rules themselves).
    package static func routes(
        _ host: TenkiHost, as role: APIRole? = .ops, _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        try await Application(router: try await router(host, as: role)).test(.router) { client in try await body(client) }
        await host.database.close()
    }

    /// The host's router; requests without an `Authorization` header carry a fresh key of `role`.
    package static func router(_ host: TenkiHost, as role: APIRole? = .ops) async throws -> HostRouter {
        guard let role else { return host.makeRouter() }
        let made = try await host.apiKeys.create(
            name: "tests-\(role.rawValue)", role: role, workspaceID: nil, expiresAt: nil, nowMs: Timestamp.ms(Date()))
        return host.makeRouter(before: [DefaultKeyMiddleware(token: made.token)])
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

/// Adds `Authorization: Bearer <token>` to a request that has no such header.
struct DefaultKeyMiddleware: RouterMiddleware {
    typealias Context = HostRequestContext
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.headers[.authorization] == nil else { return try await next(request, context) }
        var head = request.head
        head.headerFields[.authorization] = "Bearer \(token)"
        return try await next(Request(head: head, body: request.body), context)
    }
}
