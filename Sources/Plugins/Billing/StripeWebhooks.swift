import Foundation
import Host
import SQL
import TenkiCrypto

/// `POST /webhooks/stripe` after the body is read: the `Stripe-Signature` check (v1 HMAC and the
/// timestamp tolerance, 401), the body is one JSON object with an event `id` and `type` (400),
/// then the event and its inbox event are committed in one transaction before the answer. An
/// event id already stored answers `duplicate` and changes nothing (Stripe retries, and may
/// send an event more than once).
struct StripeWebhookIngress: Sendable {
    let secret: [UInt8]
    let database: any Database
    let events: EventBus

    enum Outcome: Equatable {
        case accepted(eventID: String)
        case duplicate(eventID: String)
    }

    func receive(signature: String?, body: [UInt8], now: Date) async throws -> Outcome {
        let verdict = StripeSignature.verify(
            secret: secret, payload: body, header: signature, now: Int64(now.timeIntervalSince1970),
            toleranceSeconds: BillingLimits.stripeSignatureToleranceSeconds)
        switch verdict {
        case .valid: break
        case .missing: throw HostError(.unauthorized, "Stripe-Signature is missing", reason: "signature_missing")
        case .malformed: throw HostError(.unauthorized, "Stripe-Signature must be t=<unix>,v1=<hex>", reason: "signature_malformed")
        case .mismatch: throw HostError(.unauthorized, "Stripe-Signature does not match the body", reason: "signature_mismatch")
        case .timestampOutsideTolerance:
            throw HostError(
                .unauthorized, "Stripe-Signature's timestamp is more than \(BillingLimits.stripeSignatureToleranceSeconds) s from now",
                reason: "timestamp_outside_tolerance")
        }
        let event = try StripeEventSummary(body)
        let stored = StripeEventStore.Incoming(
            eventID: event.id, type: event.type, body: body, bodySHA256: Hex.encode(Digest.sha256(body)),
            receivedAtMs: Timestamp.ms(now))
        guard try await database.transaction({ try StripeEventStore.insert($0, stored) }) else { return .duplicate(eventID: event.id) }
        events.remember(payload: body, source: BillingPlugin.eventSource, sourceID: event.id)
        events.ring()
        return .accepted(eventID: event.id)
    }
}

/// What the ingress reads of an event: its `id` and `type`; scanning also proves the body is
/// one strict JSON object.
struct StripeEventSummary {
    let id: String
    let type: String

    init(_ body: [UInt8]) throws {
        let fields = try body.withUnsafeBytes { raw -> (id: String?, type: String?) in
            let members: [JSONScanner.Member]
            do {
                members = try JSONScanner.objectMembers(raw)
            } catch {
                throw HostError(.badRequest, "body is not a JSON object: \(error)", reason: "malformed_json")
            }
            func string(_ name: String) -> String? {
                JSONScanner.member(name, in: members, bytes: raw).flatMap { JSONScanner.string(at: $0.value, in: raw) }
            }
            return (string("id"), string("type"))
        }
        let limit = BillingLimits.stripeEventFieldMaxCharacters
        guard let id = fields.id, !id.isEmpty, id.count <= limit, let type = fields.type, !type.isEmpty, type.count <= limit else {
            throw HostError(.badRequest, "a Stripe event has a string id and type", reason: "malformed_event")
        }
        self.id = id
        self.type = type
    }
}

/// The billing plugin's table of Stripe events. Bodies are kept once, here; inbox events point
/// at them by event id.
enum StripeEventStore {
    static let migrations: [Migration] = [
        Migration(
            1, "stripe events",
            sql: """
                CREATE TABLE billing_stripe_events (
                    event_id TEXT PRIMARY KEY,
                    type TEXT NOT NULL,
                    body BLOB NOT NULL,
                    body_sha256 TEXT NOT NULL,
                    received_at_ms BIGINT NOT NULL
                );
                """)
    ]

    struct Incoming {
        let eventID: String
        let type: String
        let body: [UInt8]
        let bodySHA256: String
        let receivedAtMs: Int64
    }

    /// Stores a new event and its inbox event (`stripe.<type>`) in one transaction; false, and
    /// nothing changed, when the event id is already stored.
    static func insert(_ db: any SQLConnection, _ event: Incoming) throws -> Bool {
        let inserted = try db.execute(
            """
            INSERT INTO billing_stripe_events (event_id, type, body, body_sha256, received_at_ms)
            VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING
            """,
            [.text(event.eventID), .text(event.type), .blob(event.body), .text(event.bodySHA256), .integer(event.receivedAtMs)])
        guard inserted == 1 else { return false }
        try EventInbox.publish(
            in: db, topic: "stripe.\(event.type)", source: BillingPlugin.eventSource, sourceID: event.eventID, payload: nil,
            now: Date(timeIntervalSince1970: Double(event.receivedAtMs) / 1000))
        return true
    }

    static func body(_ db: any SQLConnection, eventID: String) throws -> [UInt8]? {
        try db.queryOne("SELECT body FROM billing_stripe_events WHERE event_id = $1", [.text(eventID)]).map { try $0.bytes("body") }
    }
}
