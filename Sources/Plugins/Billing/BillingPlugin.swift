import Foundation
import Host
import Hummingbird
import SQL

/// Billing: for now its signed door, `POST /webhooks/stripe` (Stripe's events, verified,
/// stored durably and deduplicated by event id before the 2xx, then dispatched on the event bus
/// as `stripe.<type>`). Invoices, payments and dunning build on it.
package struct BillingPlugin: Plugin {
    package static let name = "billing"
    /// The `source` of the bus events this plugin publishes.
    package static let eventSource = "stripe"
    package static var migrations: [Migration] { StripeEventStore.migrations }

    let ingress: StripeWebhookIngress?
    let context: HostContext
    /// Stripe, when `stripe_secret_key_file` is set; nil leaves payments unconfigured.
    package let payments: (any PaymentProvider)?

    package init(context: HostContext) async throws {
        self.context = context
        ingress = try context.configuration.stripeWebhookSecretFile.map { path in
            StripeWebhookIngress(secret: Array(try BillingPlugin.secret(path).utf8), database: context.database, events: context.events)
        }
        payments = try StripeProvider.configured(context.configuration, http: context.httpClient)
        context.events.registerPayloadLoader(source: BillingPlugin.eventSource) { db, eventID in
            try StripeEventStore.body(db, eventID: eventID)
        }
    }

    /// The signing secret in `path`, trimmed; an unreadable or empty file fails the start.
    static func secret(_ path: String) throws -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw HostError(.badConfiguration, "cannot read stripe_webhook_secret_file \(path)")
        }
        let secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !secret.isEmpty else { throw HostError(.badConfiguration, "stripe_webhook_secret_file \(path) is empty") }
        return secret
    }

    package func addRoutes(to router: HostRouter) {
        let ingress = self.ingress
        let logger = context.logger
        router.post("/webhooks/stripe") { request, _ -> Response in
            guard let ingress else {
                throw HostError(.unavailable, "Stripe webhooks are not configured: set stripe_webhook_secret_file")
            }
            var request = request
            let buffer = try await request.collectBody(atMost: BillingLimits.stripeWebhookMaxBodyBytes)
            do {
                let signature = request.headers.first { $0.name.canonicalName == "stripe-signature" }?.value
                switch try await ingress.receive(signature: signature, body: Array(buffer.readableBytesView), now: Date()) {
                case .accepted(let id):
                    return JSONResponse.raw(.ok, "{\"event_id\":\(JSONScanner.quote(id)),\"status\":\"accepted\"}")
                case .duplicate(let id):
                    return JSONResponse.raw(.ok, "{\"event_id\":\(JSONScanner.quote(id)),\"status\":\"duplicate\"}")
                }
            } catch let error as HostError {
                logger.notice("stripe webhook rejected", metadata: ["code": .string(error.reason)])
                throw error
            }
        }
    }
}

/// The billing plugin's limits.
package enum BillingLimits {
    /// Largest Stripe event body taken (Stripe's events are a few KiB; a full object graph
    /// stays far below this).
    package static let stripeWebhookMaxBodyBytes = 1 << 20
    /// How far a `Stripe-Signature` timestamp may be from now (Stripe's libraries' default).
    package static let stripeSignatureToleranceSeconds: Int64 = 300
    /// Longest event id or type kept.
    package static let stripeEventFieldMaxCharacters = 255
}
