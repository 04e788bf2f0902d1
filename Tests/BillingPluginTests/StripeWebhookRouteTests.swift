import BillingPlugin
import Foundation
import Host
import Hummingbird
import HummingbirdTesting
import SQL
import TenkiCrypto
import TestSupport
import Testing

/// `POST /webhooks/stripe` in-process: signed events stored once and dispatched, every refusal
/// in the one error shape with nothing stored.
@Suite("Stripe webhook route")
struct StripeWebhookRouteTests {
    static let secret = "whsec_test_\(UUID().uuidString.prefix(8))"

    static func openHost(_ test: TestDatabase, configured: Bool = true) async throws -> TenkiHost {
        let path = test.directory + "/stripe-webhook-secret"
        try (secret + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return try await TestHosts.open(test, plugins: BillingHarness.plugins) {
            if configured { $0.stripeWebhookSecretFile = path }
        }
    }

    static func event(_ id: String, type: String = "payment_intent.succeeded") -> [UInt8] {
        Array(#"{"id":"\#(id)","object":"event","type":"\#(type)","data":{"object":{"id":"pi_1","amount":1250}}}"#.utf8)
    }

    static func post(
        _ client: some TestClientProtocol, body: [UInt8], signature: String?, _ check: @escaping (TestResponse) async throws -> Void
    ) async throws {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let signature { headers[HTTPFields.Element.Name("Stripe-Signature")!] = signature }
        try await client.execute(uri: "/webhooks/stripe", method: .post, headers: headers, body: ByteBuffer(bytes: body), testCallback: check)
    }

    static func signed(_ body: [UInt8], at time: Date = Date(), secret: String = secret) -> String {
        StripeSignature.header(secret: Array(secret.utf8), payload: body, timestamp: Int64(time.timeIntervalSince1970))
    }

    static func stored(_ host: TenkiHost) async throws -> [String] {
        try await host.database.query("SELECT event_id FROM billing_stripe_events ORDER BY event_id").map { try $0.string("event_id") }
    }

    static func inbox(_ host: TenkiHost) async throws -> [String] {
        try await host.database.query("SELECT topic FROM event_inbox WHERE source = 'stripe' ORDER BY id").map { try $0.string("topic") }
    }

    @Test("a signed event is stored with its inbox event before the 200; the same event again changes nothing", arguments: DriverKind.allCases)
    func acceptedOnce(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        defer { withExtendedLifetime(test) {} }
        let host = try await Self.openHost(test)
        let body = Self.event("evt_1")
        try await TestHosts.routes(host) { client in
            try await Self.post(client, body: body, signature: Self.signed(body)) { response in
                #expect(response.status == .ok)
                #expect(RouteAnswers.text(response) == #"{"event_id":"evt_1","status":"accepted"}"#)
            }
            // Stripe retries, and may deliver an event twice: acknowledged, not stored again.
            try await Self.post(client, body: body, signature: Self.signed(body)) { response in
                #expect(response.status == .ok)
                #expect(RouteAnswers.text(response) == #"{"event_id":"evt_1","status":"duplicate"}"#)
            }
            #expect(try await Self.stored(host) == ["evt_1"])
            #expect(try await Self.inbox(host) == ["stripe.payment_intent.succeeded"])
            let kept = try await host.database.query("SELECT body FROM billing_stripe_events").first?.bytes("body")
            #expect(kept == body)
        }
    }

    @Test("forged, stale, unsigned, malformed and oversize deliveries are refused and nothing is stored", arguments: DriverKind.allCases)
    func refusals(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        defer { withExtendedLifetime(test) {} }
        let host = try await Self.openHost(test)
        let body = Self.event("evt_2")
        try await TestHosts.routes(host) { client in
            try await Self.post(client, body: body, signature: Self.signed(body, secret: "whsec_wrong")) { response in
                RouteAnswers.expectError(response, .unauthorized, "signature_mismatch")
            }
            // A body changed after signing.
            try await Self.post(client, body: Self.event("evt_3"), signature: Self.signed(body)) { response in
                RouteAnswers.expectError(response, .unauthorized, "signature_mismatch")
            }
            // A replay of a genuine delivery ten minutes later.
            try await Self.post(client, body: body, signature: Self.signed(body, at: Date().addingTimeInterval(-600))) { response in
                RouteAnswers.expectError(response, .unauthorized, "timestamp_outside_tolerance")
            }
            try await Self.post(client, body: body, signature: nil) { response in
                RouteAnswers.expectError(response, .unauthorized, "signature_missing")
            }
            try await Self.post(client, body: body, signature: "v1=abc") { response in
                RouteAnswers.expectError(response, .unauthorized, "signature_malformed")
            }
            let notJSON = Array("{\"id\":".utf8)
            try await Self.post(client, body: notJSON, signature: Self.signed(notJSON)) { response in
                RouteAnswers.expectError(response, .badRequest, "malformed_json")
            }
            let noType = Array(#"{"id":"evt_4"}"#.utf8)
            try await Self.post(client, body: noType, signature: Self.signed(noType)) { response in
                RouteAnswers.expectError(response, .badRequest, "malformed_event")
            }
            let big =
                Array(#"{"id":"evt_5","type":"x","pad":""#.utf8) + [UInt8](repeating: 0x61, count: BillingLimits.stripeWebhookMaxBodyBytes)
                + Array(#""}"#.utf8)
            try await Self.post(client, body: big, signature: Self.signed(big)) { response in
                RouteAnswers.expectError(response, .contentTooLarge, "payload_too_large")
            }
            #expect(try await Self.stored(host).isEmpty)
            #expect(try await Self.inbox(host).isEmpty)
        }
    }

    @Test("without a signing secret the route answers 503 and says which key to set")
    func unconfigured() async throws {
        let test = try TestDatabase.make(.sqlite)
        defer { withExtendedLifetime(test) {} }
        let host = try await Self.openHost(test, configured: false)
        let body = Self.event("evt_6")
        try await TestHosts.routes(host) { client in
            try await Self.post(client, body: body, signature: Self.signed(body)) { response in
                let message = RouteAnswers.expectError(response, .serviceUnavailable, "unavailable")
                #expect(message.contains("stripe_webhook_secret_file"))
            }
        }
    }
}
