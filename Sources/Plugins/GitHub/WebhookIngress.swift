import Foundation
import Host
import SQL
import TenkiCrypto

/// `POST /webhooks/github`: checks a delivery and stores it durably before answering.
///
/// Order of checks: size (413), signature (401), required headers (400), JSON (400), the size
/// of the headers kept with the delivery (431); a failed check throws a `HostError` whose reason names it (`signature_mismatch`). Only a committed
/// delivery gets a 2xx; a redelivery of a stored id gets 200 and changes nothing.
struct WebhookIngress: Sendable {
    let secret: [UInt8]
    let database: any Database
    let events: EventBus
    let maxBodyBytes: Int

    enum Outcome: Equatable {
        case accepted(deliveryID: String)
        case duplicate(deliveryID: String)
    }

    /// The headers GitHub sends that are worth keeping with a delivery.
    static let keptHeaders = [
        "x-github-event", "x-github-delivery", "x-github-hook-id", "x-github-hook-installation-target-id",
        "x-github-hook-installation-target-type", "x-hub-signature-256", "user-agent", "content-type",
    ]

    func receive(headers: [String: String], body: [UInt8], now: Date) async throws -> Outcome {
        guard body.count <= maxBodyBytes else {
            throw HostError(.payloadTooLarge, "body exceeds \(maxBodyBytes) bytes")
        }
        switch WebhookSignature.verifyGitHub(secret: secret, body: body, header: headers["x-hub-signature-256"]) {
        case .valid: break
        case .missing:
            throw HostError(.unauthorized, "X-Hub-Signature-256 is missing", reason: "signature_missing")
        case .malformed:
            throw HostError(.unauthorized, "X-Hub-Signature-256 must be sha256=<64 hex digits>", reason: "signature_malformed")
        case .mismatch:
            throw HostError(.unauthorized, "X-Hub-Signature-256 does not match the body", reason: "signature_mismatch")
        }
        guard let event = headers["x-github-event"], !event.isEmpty, event.count <= 100 else {
            throw HostError(.badRequest, "X-GitHub-Event is missing", reason: "event_missing")
        }
        guard let deliveryID = headers["x-github-delivery"], !deliveryID.isEmpty, deliveryID.count <= 200 else {
            throw HostError(.badRequest, "X-GitHub-Delivery is missing", reason: "delivery_missing")
        }
        let summary: PayloadSummary
        do {
            summary = try PayloadSummary(body)
        } catch {
            throw HostError(.badRequest, "body is not a JSON object: \(error)", reason: "malformed_json")
        }
        var headersJSON = "{"
        for name in WebhookIngress.keptHeaders {
            guard let value = headers[name] else { continue }
            if headersJSON.count > 1 { headersJSON += "," }
            headersJSON += JSONScanner.quote(name) + ":" + JSONScanner.quote(value)
        }
        headersJSON += "}"
        guard headersJSON.utf8.count <= HostLimits.webhookMaxStoredHeaderBytes else {
            throw HostError(.headersTooLarge, "the kept headers exceed \(HostLimits.webhookMaxStoredHeaderBytes) bytes")
        }
        let incoming = DeliveryStore.Incoming(
            deliveryID: deliveryID, event: event, action: summary.action, hookID: headers["x-github-hook-id"],
            installationID: summary.installationID, repository: summary.repository, headersJSON: headersJSON,
            body: body, bodySHA256: Hex.encode(Digest.sha256(body)), receivedAtMs: Timestamp.ms(now))
        let inserted = try await database.transaction { try DeliveryStore.insert($0, incoming) }
        if inserted {
            events.remember(payload: body, source: GitHubPlugin.eventSource, sourceID: deliveryID)
            events.ring()
            return .accepted(deliveryID: deliveryID)
        }
        return .duplicate(deliveryID: deliveryID)
    }
}

/// The few top-level fields read at ingress; scanning also proves the body is one valid JSON
/// object (strict RFC 8259, UTF-8), without building a tree of it.
struct PayloadSummary {
    let action: String?
    let installationID: Int64?
    let repository: String?

    init(_ body: [UInt8]) throws {
        (action, installationID, repository) = try body.withUnsafeBytes { bytes in
            let members = try JSONScanner.objectMembers(bytes)
            let action = JSONScanner.member("action", in: members, bytes: bytes).flatMap { JSONScanner.string(at: $0.value, in: bytes) }
            var installationID: Int64?
            if let installation = JSONScanner.member("installation", in: members, bytes: bytes),
                let fields = try JSONScanner.members(of: installation.value, in: bytes),
                let id = JSONScanner.member("id", in: fields, bytes: bytes)
            {
                installationID = JSONScanner.integer(at: id.value, in: bytes)
            }
            var repository: String?
            if let repo = JSONScanner.member("repository", in: members, bytes: bytes),
                let fields = try JSONScanner.members(of: repo.value, in: bytes),
                let name = JSONScanner.member("full_name", in: fields, bytes: bytes)
            {
                repository = JSONScanner.string(at: name.value, in: bytes)
            }
            return (action, installationID, repository)
        }
    }
}
