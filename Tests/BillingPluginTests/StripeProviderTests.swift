import BillingPlugin
import Foundation
import HTTPClient
import Host
import PluginTestSupport
import TestSupport
import Testing

/// `StripeProvider` against a real localstripe (one per test process, shared: every test makes
/// its own customer). Cards are localstripe's test ids or raw test numbers; see
/// `LocalStripe` for what localstripe does differently from Stripe.
@Suite("Stripe provider against localstripe")
struct StripeProviderTests {
    static let http = HTTPClient()

    static func provider(secretKey: String = LocalStripe.secretKey) async throws -> StripeProvider {
        StripeProvider(apiURL: try await LocalStripe.shared.url(), secretKey: secretKey, http: http)
    }

    static func newCustomer(_ provider: StripeProvider, workspaceID: String = "ws-\(UUID().uuidString)") async throws -> String {
        try await provider.createCustomer(workspaceID: workspaceID, name: "Octo Org", idempotencyKey: "customer-\(workspaceID)")
    }

    /// A payment method reference: a localstripe test id, or `raw:<number>` for a card made from a raw number.
    static func reference(_ card: String) async throws -> String {
        guard card.hasPrefix("raw:") else { return card }
        return try await LocalStripe.shared.cardPaymentMethod(number: String(card.dropFirst(4)))
    }

    static func charge(
        _ provider: StripeProvider, customer: String, paymentMethod: String, amountCents: Int64 = 4200
    ) async throws
        -> PaymentOutcome
    {
        try await provider.charge(
            PaymentRequest(
                customerID: customer, paymentMethodID: paymentMethod, amountCents: amountCents, idempotencyKey: UUID().uuidString,
                metadata: ["invoice_period": "2024-05", "workspace_id": "ws & co"]))
    }

    @Test("a customer is created with its name and the workspace id in its metadata")
    func createsCustomer() async throws {
        let provider = try await Self.provider()
        let workspaceID = "ws-\(UUID().uuidString)"
        let id = try await Self.newCustomer(provider, workspaceID: workspaceID)
        #expect(id.hasPrefix("cus_"))
        let customer = try await LocalStripe.shared.get("/v1/customers/\(id)")
        #expect(customer["name"] as? String == "Octo Org")
        #expect((customer["metadata"] as? [String: Any])?["workspace_id"] as? String == workspaceID)
    }

    @Test("pm_card_visa attaches and becomes the customer's default payment method")
    func attachesDefaultCard() async throws {
        let provider = try await Self.provider()
        let customer = try await Self.newCustomer(provider)
        let card = try await provider.attachPaymentMethod(customerID: customer, paymentMethod: "pm_card_visa")
        #expect(card.id.hasPrefix("pm_") && card.id != "pm_card_visa", "localstripe makes a new pm_ object for a test id")
        #expect(card.brand == "visa" && card.last4 == "4242")
        let saved = try await LocalStripe.shared.get("/v1/customers/\(customer)")
        #expect((saved["invoice_settings"] as? [String: Any])?["default_payment_method"] as? String == card.id)
        let method = try await LocalStripe.shared.get("/v1/payment_methods/\(card.id)")
        #expect(method["customer"] as? String == customer)
    }

    @Test("a charge of 4200 cents succeeds with its PaymentIntent and charge ids")
    func chargeSucceeds() async throws {
        let provider = try await Self.provider()
        let customer = try await Self.newCustomer(provider)
        let card = try await provider.attachPaymentMethod(customerID: customer, paymentMethod: "pm_card_visa")
        let outcome = try await Self.charge(provider, customer: customer, paymentMethod: card.id)
        guard case .succeeded(let intentID, let chargeID) = outcome else {
            Issue.record("expected a success, got \(outcome)")
            return
        }
        #expect(intentID.hasPrefix("pi_") && chargeID.hasPrefix("ch_"))
        let intent = try await LocalStripe.shared.get("/v1/payment_intents/\(intentID)")
        #expect(intent["amount"] as? Int == 4200 && intent["currency"] as? String == "usd" && intent["customer"] as? String == customer)
        #expect(intent["status"] as? String == "succeeded")
        #expect(intent["metadata"] as? [String: String] == ["invoice_period": "2024-05", "workspace_id": "ws & co"])
    }

    @Test(
        "a card that saves but fails at charge is a declined outcome, not an error",
        arguments: ["raw:4000000000000341", "pm_card_chargeCustomerFail"])
    func chargeDeclined(card: String) async throws {
        let provider = try await Self.provider()
        let customer = try await Self.newCustomer(provider)
        let saved = try await provider.attachPaymentMethod(customerID: customer, paymentMethod: try await Self.reference(card))
        #expect(saved.last4 == "0341")
        let outcome = try await Self.charge(provider, customer: customer, paymentMethod: saved.id)
        guard case .declined(_, let code, let message) = outcome else {
            Issue.record("expected a decline, got \(outcome)")
            return
        }
        #expect(code == "card_declined")
        #expect(message == "Your card was declined.")
    }

    @Test("a card declined when saved is rejected with card_declined", arguments: ["raw:4000000000000002", "pm_card_visa_chargeDeclined"])
    func attachDeclined(card: String) async throws {
        let provider = try await Self.provider()
        let customer = try await Self.newCustomer(provider)
        let reference = try await Self.reference(card)
        let error = await #expect(throws: HostError.self) {
            try await provider.attachPaymentMethod(customerID: customer, paymentMethod: reference)
        }
        #expect(error?.code == .rejected && error?.reason == "card_declined")
        let saved = try await LocalStripe.shared.get("/v1/customers/\(customer)")
        #expect((saved["invoice_settings"] as? [String: Any])?["default_payment_method"] is NSNull, "no default after a decline")
    }

    @Test("a refund of a succeeded charge returns its re_ id and keeps the reason in metadata")
    func refunds() async throws {
        let provider = try await Self.provider()
        let customer = try await Self.newCustomer(provider)
        let card = try await provider.attachPaymentMethod(customerID: customer, paymentMethod: "pm_card_visa")
        guard case .succeeded(let intentID, let chargeID) = try await Self.charge(provider, customer: customer, paymentMethod: card.id) else {
            Issue.record("the charge to refund did not succeed")
            return
        }
        let refundID = try await provider.refund(
            paymentIntentID: intentID, amountCents: 1000, idempotencyKey: UUID().uuidString, metadata: ["reason": "overbilled"])
        #expect(refundID.hasPrefix("re_"))
        let refunds = try await LocalStripe.shared.get("/v1/refunds?payment_intent=\(intentID)")
        let refund = (refunds["data"] as? [[String: Any]])?.first { $0["id"] as? String == refundID }
        #expect(refund?["amount"] as? Int == 1000 && refund?["charge"] as? String == chargeID)
        #expect(refund?["metadata"] as? [String: String] == ["reason": "overbilled"])
    }

    @Test("a request Stripe refuses is rejected with Stripe's message")
    func refusedRequest() async throws {
        let provider = try await Self.provider()
        let error = await #expect(throws: HostError.self) {
            try await provider.attachPaymentMethod(customerID: "cus_doesnotexist", paymentMethod: "pm_card_visa")
        }
        #expect(error?.code == .rejected && error?.message == "Stripe: Not Found")
    }

    @Test("a secret key Stripe refuses is a configuration error that does not show the key")
    func wrongSecretKey() async throws {
        let wrongKey = "rk_test_not_a_secret_key"
        let provider = try await Self.provider(secretKey: wrongKey)
        let error = await #expect(throws: HostError.self) { try await Self.newCustomer(provider) }
        #expect(error?.code == .badConfiguration && error?.message == "Stripe rejected the secret key")
        #expect(!"\(provider)".contains(wrongKey) && !String(reflecting: provider).contains(wrongKey))
    }

    @Test("a Stripe that cannot be reached is unavailable")
    func unreachable() async throws {
        let provider = StripeProvider(apiURL: "http://127.0.0.1:\(TenkiProcess.freePort())", secretKey: "sk_test_closed_port", http: Self.http)
        let error = await #expect(throws: HostError.self) {
            try await Self.charge(provider, customer: "cus_1", paymentMethod: "pm_1")
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("sk_test_closed_port") == false)
    }

    @Test("the host builds the provider from stripe_secret_key_file, and refuses an empty one")
    func configured() throws {
        var configuration = HostConfiguration()
        #expect(try StripeProvider.configured(configuration, http: Self.http) == nil)
        let directory = try TemporaryDirectory.make(prefix: "tenki-stripe-key")
        configuration.stripeSecretKeyFile = directory + "/key"
        configuration.stripeAPIURL = "http://127.0.0.1:9"
        try "sk_test_from_file\n".write(toFile: directory + "/key", atomically: true, encoding: .utf8)
        #expect(try StripeProvider.configured(configuration, http: Self.http)?.apiURL == "http://127.0.0.1:9")
        try "\n".write(toFile: directory + "/key", atomically: true, encoding: .utf8)
        let empty = #expect(throws: HostError.self) { try StripeProvider.configured(configuration, http: Self.http) }
        #expect(empty?.code == .badConfiguration && empty?.message.contains("stripe_secret_key_file") == true)
        configuration.stripeSecretKeyFile = directory + "/missing"
        #expect(throws: HostError.self) { try StripeProvider.configured(configuration, http: Self.http) }
    }
}
