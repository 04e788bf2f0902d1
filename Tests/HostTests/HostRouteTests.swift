import Foundation
import Host
import Hummingbird
import HummingbirdTesting
import SQL
import TestSupport
import Testing

/// The kernel's own routes, and the one error path every route shares, in-process.
@Suite("Host routes and the error path")
struct HostRouteTests {
    struct Secret: Error, CustomStringConvertible { var description: String { "password=hunter2 at /srv/tenki.db" } }

    @Test("health, readiness, policy status and metrics answer", arguments: DriverKind.allCases)
    func kernelRoutes(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let host = try await TestHosts.open(test, plugins: [])
        try await TestHosts.routes(host) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                #expect(RouteAnswers.text(response) == #"{"status":"ok"}"#)
            }
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .ok)
                #expect((RouteAnswers.json(response) as? [String: Any])?["database"] as? String == host.database.dialect.rawValue)
            }
            try await client.execute(uri: "/policies/status", method: .get) { response in
                #expect(response.status == .ok)
                #expect((RouteAnswers.json(response) as? [String: Any])?["version"] is String, "\(RouteAnswers.text(response))")
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
            }
        }
    }

    @Test("no route is a 404 and an unexpected error a 500, both in the one shape with no internals")
    func notFoundAndInternal() async throws {
        let test = try TestDatabase.make(.sqlite)
        let host = try await TestHosts.open(test, plugins: [])
        let router = try await TestHosts.router(host)
        router.get("/test/secret") { _, _ -> Response in throw Secret() }
        router.get("/test/refused") { _, _ -> Response in throw HostError(.unauthorized, "no token", reason: "token_missing") }
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/nowhere", method: .get) { response in
                RouteAnswers.expectError(response, .notFound, "not_found")
            }
            try await client.execute(uri: "/healthz", method: .post) { response in
                RouteAnswers.expectError(response, .notFound, "not_found")
            }
            try await client.execute(uri: "/test/secret", method: .get) { response in
                #expect(RouteAnswers.expectError(response, .internalServerError, "internal") == "internal error")
                #expect(!RouteAnswers.text(response).contains("hunter2"))
            }
            try await client.execute(uri: "/test/refused", method: .get) { response in
                #expect(RouteAnswers.expectError(response, .unauthorized, "token_missing") == "no token")
            }
        }
        await host.database.close()
    }

    @Test("a database gone mid-request is a clean 503", arguments: DriverKind.allCases)
    func databaseGone(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let host = try await TestHosts.open(test, plugins: [])
        try await TestHosts.routes(host) { client in
            try await client.execute(uri: "/metrics", method: .get) { response in #expect(response.status == .ok) }
            try await TestHosts.expectUnavailable(client, test, host, uris: ["/metrics", "/readyz"])
        }
    }
}

/// Each code's one HTTP status and one exit code, and how other errors map onto the codes.
@Suite("HostError: statuses and exit codes")
struct HostErrorTests {
    @Test(
        "every code has its status and exit code",
        arguments: [
            (HostError.Code.badRequest, 400, 64), (.unauthorized, 401, 77), (.notFound, 404, 66), (.payloadTooLarge, 413, 65),
            (.rejected, 422, 65), (.notFinished, 409, 75), (.failed, 409, 1), (.unavailable, 503, 69), (.badConfiguration, 500, 78),
            (.internal, 500, 70), (.headersTooLarge, 431, 65), (.forbidden, 403, 77), (.tooManyRequests, 429, 75),
        ] as [(HostError.Code, Int, Int32)])
    func table(_ code: HostError.Code, _ status: Int, _ exitCode: Int32) {
        #expect(HostError.Code.allCases.count == 13, "a new code gets a row here")
        let error = HostError(code, "m")
        #expect(error.status.code == status)
        #expect(error.exitCode == exitCode)
        #expect(error.reason == code.rawValue)
    }

    @Test("other errors: the router's by status, a lost or busy database unavailable, the rest internal")
    func mapping() {
        #expect(HostError(HTTPError(.notFound)).code == .notFound)
        #expect(HostError(HTTPError(.contentTooLarge)).code == .payloadTooLarge)
        #expect(HostError(HTTPError(.methodNotAllowed)).code == .badRequest)
        #expect(HostError(HTTPError(.badGateway)).code == .internal)
        // A bare 500 is internal (exit 70), not a configuration error; a bare 409 is a bad request.
        #expect(HostError(HTTPError(.internalServerError)).code == .internal)
        #expect(HostError(HTTPError(.internalServerError)).exitCode == 70)
        #expect(HostError(HTTPError(.conflict)).code == .badRequest)
        #expect(HostError(HTTPError(.serviceUnavailable)).code == .unavailable)
        #expect(HostError(SQLError(.connection, "server closed the connection")).code == .unavailable)
        #expect(HostError(SQLError(.busy, "locked")).code == .unavailable)
        #expect(HostError(SQLError(.serializationFailure, "retry")).code == .unavailable)
        let constraint = HostError(SQLError(.constraintViolation, "UNIQUE failed: secret_table.id"))
        #expect(constraint.code == .internal && !constraint.message.contains("secret_table"))
        #expect(HostError(HostRouteTests.Secret()).message == "internal error")
        #expect(HostError(HostError(.notFound, "kept", reason: "fine")).reason == "fine")
    }
}
