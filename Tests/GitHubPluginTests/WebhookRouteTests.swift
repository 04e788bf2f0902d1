import Foundation
import GitHubPlugin
import Host
import Hummingbird
import HummingbirdTesting
import TenkiCrypto
import TestSupport
import Testing

/// `POST /webhooks/github` in-process: each check's status and the one error shape.
@Suite("Webhook route")
struct WebhookRouteTests {
    static let secret = "s"
    static let maxBodyBytes = 64 * 1024

    static func openHost(_ test: TestDatabase) async throws -> TenkiHost {
        try await TestHosts.open(test, plugins: [GitHubPlugin.self]) {
            $0.githubWebhookSecret = secret
            $0.webhookMaxBodyBytes = maxBodyBytes
        }
    }

    static func job() throws -> [UInt8] { try Fixtures.github().first { $0.event == "workflow_job" }!.body }

    static func post(
        _ client: some TestClientProtocol, body: [UInt8], delivery: String = UUID().uuidString, event: String? = "workflow_job",
        signature: String? = nil, _ check: @escaping (TestResponse) async throws -> Void
    ) async throws {
        var headers: HTTPFields = [.contentType: "application/json"]
        headers[HTTPFields.Element.Name("X-GitHub-Delivery")!] = delivery
        if let event { headers[HTTPFields.Element.Name("X-GitHub-Event")!] = event }
        headers[HTTPFields.Element.Name("X-Hub-Signature-256")!] = signature ?? WebhookSignature.gitHubHeader(secret: Array(secret.utf8), body: body)
        try await client.execute(uri: "/webhooks/github", method: .post, headers: headers, body: ByteBuffer(bytes: body), testCallback: check)
    }

    @Test("accepted, duplicate, and each refusal in the one error shape", arguments: DriverKind.allCases)
    func answers(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let host = try await Self.openHost(test)
        let job = try Self.job()
        try await TestHosts.routes(host) { client in
            try await Self.post(client, body: job, delivery: "d-1") { response in
                #expect(response.status == .accepted)
                #expect(RouteAnswers.text(response) == #"{"delivery_id":"d-1","status":"accepted"}"#)
            }
            try await Self.post(client, body: job, delivery: "d-1") { response in
                #expect(response.status == .ok)
                #expect(RouteAnswers.text(response) == #"{"delivery_id":"d-1","status":"duplicate"}"#)
            }
            try await Self.post(client, body: job, signature: "sha256=" + String(repeating: "0", count: 64)) { response in
                RouteAnswers.expectError(response, .unauthorized, "signature_mismatch")
            }
            try await Self.post(client, body: job, signature: "md5=1") { response in
                RouteAnswers.expectError(response, .unauthorized, "signature_malformed")
            }
            try await Self.post(client, body: job, event: nil) { response in
                RouteAnswers.expectError(response, .badRequest, "event_missing")
            }
            try await Self.post(client, body: Array("{\"action\": ".utf8)) { response in
                RouteAnswers.expectError(response, .badRequest, "malformed_json")
            }
        }
    }

    @Test("a body over the limit is a 413 naming the limit, and nothing is stored")
    func oversize() async throws {
        let test = try TestDatabase.make(.sqlite)
        let host = try await Self.openHost(test)
        let body = Array("{\"pad\":\"\(String(repeating: "x", count: Self.maxBodyBytes))\"}".utf8)
        try await TestHosts.routes(host) { client in
            try await Self.post(client, body: body) { response in
                let message = RouteAnswers.expectError(response, .contentTooLarge, "payload_too_large")
                #expect(message.contains("\(Self.maxBodyBytes)"))
            }
            #expect(try await GitHubDeliveries.stats(host).deliveries == 0)
            // The in-process entry point answers as the route does.
            #expect(try await try #require(host.plugin(GitHubPlugin.self)).receive(headers: [:], body: body) == 413)
        }
    }

    @Test("a delivery that cannot be stored is a 503, not acknowledged", arguments: DriverKind.allCases)
    func databaseGone(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let host = try await Self.openHost(test)
        let job = try Self.job()
        try await TestHosts.routes(host) { client in
            try await test.takeAway(from: host.database)
            try await Self.post(client, body: job) { response in
                #expect(RouteAnswers.expectError(response, .serviceUnavailable, "unavailable") == "database unavailable")
            }
        }
    }
}
