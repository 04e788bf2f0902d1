/// Where the host's money comes from: a payment provider keeps customers and their saved cards,
/// charges a saved card off-session and refunds a charge. Stripe is the one provider
/// (`StripeProvider`); tests run it against localstripe.
///
/// Guarantees of every implementation: amounts are integer cents in the provider's smallest
/// currency unit, never floating point; card numbers never pass through the host (only the
/// provider's references, brand and last four digits); the secret key is never logged. Failures
/// are `HostError`s: `.badConfiguration` when the provider refuses the host's credentials,
/// `.rejected` (reason: the provider's error code, e.g. `card_declined`) when it refuses the
/// request, `.unavailable` when it cannot be reached or fails on its side (retry with the same
/// idempotency key).
package protocol PaymentProvider: Sendable {
    /// A new customer for the workspace (its id kept in the customer's metadata); returns the customer id.
    func createCustomer(workspaceID: String, name: String, idempotencyKey: String) async throws -> String

    /// Attaches a payment method reference (a `pm_...` id or a test id such as `pm_card_visa`) to
    /// the customer and makes it the customer's default for invoices. A card the provider
    /// declines at this point throws `.rejected` with reason `card_declined`.
    func attachPaymentMethod(customerID: String, paymentMethod: String) async throws -> PaymentMethodInfo

    /// Charges the saved card, off-session (no customer present). A decline is an outcome, not an error.
    func charge(_ request: PaymentRequest) async throws -> PaymentOutcome

    /// Refunds `amountCents` of a succeeded payment; returns the refund id. Why it is refunded goes in `metadata`.
    func refund(paymentIntentID: String, amountCents: Int64, idempotencyKey: String, metadata: [String: String]) async throws -> String
}

/// A saved card as the provider describes it: its id, and brand and last four digits when given.
package struct PaymentMethodInfo: Sendable, Equatable {
    package let id: String
    package let brand: String?
    package let last4: String?

    package init(id: String, brand: String?, last4: String?) {
        self.id = id
        self.brand = brand
        self.last4 = last4
    }
}

/// One off-session charge of a saved card.
package struct PaymentRequest: Sendable, Equatable {
    package let customerID: String
    package let paymentMethodID: String
    /// In the currency's smallest unit (cents for `usd`); always positive.
    package let amountCents: Int64
    /// ISO 4217, lower case, as Stripe writes it (`usd`).
    package let currency: String
    /// The same key makes a retried request (after a timeout, say) charge at most once.
    package let idempotencyKey: String
    package let metadata: [String: String]

    package init(
        customerID: String, paymentMethodID: String, amountCents: Int64, currency: String = "usd", idempotencyKey: String,
        metadata: [String: String] = [:]
    ) {
        precondition(amountCents > 0, "a charge moves a positive amount")
        precondition(!idempotencyKey.isEmpty, "a charge always carries an idempotency key")
        self.customerID = customerID
        self.paymentMethodID = paymentMethodID
        self.amountCents = amountCents
        self.currency = currency
        self.idempotencyKey = idempotencyKey
        self.metadata = metadata
    }
}

/// What a charge came to.
package enum PaymentOutcome: Sendable, Equatable {
    /// The money moved: the PaymentIntent and its charge.
    case succeeded(paymentIntentID: String, chargeID: String)
    /// The card was declined or needs the customer (`code`: `card_declined`, `authentication_required`,
    /// `requires_payment_method`, `requires_action`, ...). The PaymentIntent id is nil when the provider did not say.
    case declined(paymentIntentID: String?, code: String, message: String)
}
