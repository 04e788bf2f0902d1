import Foundation
import Host
import Hummingbird
import HummingbirdTesting
import RunnerPlugin
import TestSupport
import Testing

/// `/runner/jobs`, `/runner/metrics` and `/runner/workspaces` in-process: answers and errors.
@Suite("Runner routes")
struct RunnerRouteTests {
    /// An installed workspace with one job admitted and provisioned.
    static func harness(_ kind: DriverKind) async throws -> RunnerHarness {
        let h = try await RunnerHarness(kind)
        try await h.installFixture()
        try await h.deliver("workflow_job", RunnerHarness.job("queued", id: 1, labels: ["tenki-4c-8gb"]))
        _ = try await h.runner.scheduler.runOnce()
        return h
    }

    static func object(_ response: TestResponse) -> [String: Any]? { RouteAnswers.json(response) as? [String: Any] }
    static func array(_ response: TestResponse) -> [[String: Any]]? { RouteAnswers.json(response) as? [[String: Any]] }

    @Test("jobs, metrics and workspaces answer, filtered by status, workspace and window", arguments: DriverKind.allCases)
    func reads(_ kind: DriverKind) async throws {
        let h = try await Self.harness(kind)
        defer { withExtendedLifetime(h) {} }
        try await TestHosts.routes(h.host) { client in
            try await client.execute(uri: "/runner/jobs", method: .get) { response in
                #expect(response.status == .ok)
                #expect(Self.array(response)?.map { $0["state"] as? String } == ["provisioning"], "\(RouteAnswers.text(response))")
            }
            try await client.execute(uri: "/runner/jobs?status=provisioned&workspace=codertocat", method: .get) { response in
                #expect(Self.array(response)?.map { $0["job_id"] as? Int } == [1], "\(RouteAnswers.text(response))")
            }
            try await client.execute(uri: "/runner/jobs?status=completed", method: .get) { response in
                #expect(Self.array(response)?.isEmpty == true)
            }
            try await client.execute(uri: "/runner/metrics?workspace=codertocat&hours=48", method: .get) { response in
                #expect(response.status == .ok)
                #expect(Self.object(response).map { Set($0.keys) } == ["jobs", "queue"], "\(RouteAnswers.text(response))")
            }
            try await client.execute(uri: "/runner/workspaces", method: .get) { response in
                #expect(response.status == .ok)
                #expect(Self.array(response)?.map { $0["slug"] as? String } == ["codertocat"])
            }
        }
    }

    @Test("an unknown status or window 400, an unknown workspace 404, in the one error shape")
    func errors() async throws {
        let h = try await Self.harness(.sqlite)
        defer { withExtendedLifetime(h) {} }
        try await TestHosts.routes(h.host) { client in
            for uri in ["/runner/jobs?status=bogus", "/runner/metrics?hours=0", "/runner/metrics?hours=2161"] {
                try await client.execute(uri: uri, method: .get) { response in
                    RouteAnswers.expectError(response, .badRequest, "bad_request")
                }
            }
            for uri in ["/runner/jobs?workspace=nope", "/runner/metrics?workspace=nope"] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(RouteAnswers.expectError(response, .notFound, "not_found") == "no workspace 'nope'")
                }
            }
        }
    }

    @Test("a database gone mid-request is a clean 503", arguments: DriverKind.allCases)
    func databaseGone(_ kind: DriverKind) async throws {
        let h = try await Self.harness(kind)
        defer { withExtendedLifetime(h) {} }
        try await TestHosts.routes(h.host) { client in
            try await TestHosts.expectUnavailable(client, h.test, h.host, uris: ["/runner/jobs", "/runner/metrics", "/runner/workspaces"])
        }
    }
}
