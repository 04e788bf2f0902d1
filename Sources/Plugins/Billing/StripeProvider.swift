import Foundation
import HTTPClient
import Host

/// Stripe as the payment provider, over the host's libcurl client: form-encoded requests to
/// `apiURL` (Stripe, or localstripe in tests) with `Authorization: Bearer sk_...`, JSON answers.
///
/// Guarantees: charges, customers and refunds carry the caller's `Idempotency-Key`, so a retry
/// after `.unavailable` moves money at most once (on Stripe; localstripe ignores the header);
/// amounts go out and come back as integers; the secret key is sent only in the
/// `Authorization` header and appears in no message, log or description.
package struct StripeProvider: PaymentProvider, CustomStringConvertible {
    package static let defaultAPIURL = "https://api.stripe.com"
    /// The API version every request asks for, so the answers' shape does not follow the
    /// account's default version.
    package static let apiVersion = "2024-06-20"

    package let apiURL: String
    private let secretKey: String
    private let http: HTTPClient

    /// `apiURL` without a trailing slash.
    package init(apiURL: String = StripeProvider.defaultAPIURL, secretKey: String, http: HTTPClient) {
        precondition(!secretKey.isEmpty, "a Stripe secret key")
        self.apiURL = apiURL
        self.secretKey = secretKey
        self.http = http
    }

    /// The provider of the host's configuration, or nil when `stripe_secret_key_file` is unset.
    /// An unreadable or empty key file fails the start.
    package static func configured(_ configuration: HostConfiguration, http: HTTPClient) throws -> StripeProvider? {
        guard let path = configuration.stripeSecretKeyFile else { return nil }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw HostError(.badConfiguration, "cannot read stripe_secret_key_file \(path)")
        }
        let key = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !key.isEmpty else { throw HostError(.badConfiguration, "stripe_secret_key_file \(path) is empty") }
        return StripeProvider(apiURL: configuration.stripeAPIURL, secretKey: key, http: http)
    }

    package var description: String { "StripeProvider(\(apiURL))" }

    // MARK: PaymentProvider

    package func createCustomer(workspaceID: String, name: String, idempotencyKey: String) async throws -> String {
        var form = StripeForm()
        form.add("name", name)
        form.add("metadata", entries: ["workspace_id": workspaceID])
        let customer = try Self.success(await post("/v1/customers", form, idempotencyKey: idempotencyKey))
        return try Self.string(customer, "id")
    }

    package func attachPaymentMethod(customerID: String, paymentMethod: String) async throws -> PaymentMethodInfo {
        var attach = StripeForm()
        attach.add("customer", customerID)
        let path = "/v1/payment_methods/\(StripeForm.percentEncoded(paymentMethod))/attach"
        let method = try Self.success(await post(path, attach, idempotencyKey: nil))
        let id = try Self.string(method, "id")
        var update = StripeForm()
        update.add("invoice_settings[default_payment_method]", id)
        _ = try Self.success(await post("/v1/customers/\(StripeForm.percentEncoded(customerID))", update, idempotencyKey: nil))
        let card = method["card"] as? [String: Any]
        return PaymentMethodInfo(id: id, brand: card?["brand"] as? String, last4: card?["last4"] as? String)
    }

    package func charge(_ request: PaymentRequest) async throws -> PaymentOutcome {
        var form = StripeForm()
        form.add("amount", String(request.amountCents))
        form.add("currency", request.currency)
        form.add("customer", request.customerID)
        form.add("payment_method", request.paymentMethodID)
        form.add("confirm", "true")
        form.add("off_session", "true")
        form.add("metadata", entries: request.metadata)
        let answer = try await post("/v1/payment_intents", form, idempotencyKey: request.idempotencyKey)
        if answer.status == 402 {
            // A decline: Stripe names the PaymentIntent in the error, localstripe does not.
            let error = answer.object["error"] as? [String: Any]
            let intent = error?["payment_intent"] as? [String: Any]
            return .declined(
                paymentIntentID: intent?["id"] as? String, code: error?["code"] as? String ?? "card_declined",
                message: error?["message"] as? String ?? "the card was declined")
        }
        return try Self.outcome(Self.success(answer))
    }

    package func refund(paymentIntentID: String, amountCents: Int64, idempotencyKey: String, metadata: [String: String]) async throws -> String {
        precondition(amountCents > 0, "a refund moves a positive amount")
        var form = StripeForm()
        form.add("payment_intent", paymentIntentID)
        form.add("amount", String(amountCents))
        form.add("metadata", entries: metadata)
        let refund = try Self.success(await post("/v1/refunds", form, idempotencyKey: idempotencyKey))
        return try Self.string(refund, "id")
    }

    // MARK: answers

    /// What a confirmed PaymentIntent came to. `latest_charge` is an id on Stripe and a whole
    /// charge object on localstripe; both are taken.
    static func outcome(_ intent: [String: Any]) throws -> PaymentOutcome {
        let id = try string(intent, "id")
        let status = intent["status"] as? String ?? ""
        switch status {
        case "succeeded":
            let latest = intent["latest_charge"]
            guard let chargeID = latest as? String ?? (latest as? [String: Any])?["id"] as? String else {
                throw unexpected("PaymentIntent \(id) succeeded without a charge")
            }
            return .succeeded(paymentIntentID: id, chargeID: chargeID)
        case "requires_payment_method", "requires_action":
            let error = intent["last_payment_error"] as? [String: Any]
            return .declined(
                paymentIntentID: id, code: error?["code"] as? String ?? status,
                message: error?["message"] as? String ?? "the payment needs the customer (\(status))")
        default:
            // `processing` and the like: not settled either way; the same idempotency key asks again.
            throw HostError(.unavailable, "Stripe PaymentIntent \(id) is '\(status)'", reason: "payment_not_settled")
        }
    }

    /// The answer's object when its status is 2xx; otherwise the error it stands for:
    /// 401/403 a key Stripe refuses, any other 4xx a refused request (reason: Stripe's error
    /// code), anything else Stripe failing.
    static func success(_ answer: StripeAnswer) throws -> [String: Any] {
        if (200..<300).contains(answer.status) { return answer.object }
        let error = answer.object["error"] as? [String: Any]
        let message = error?["message"] as? String ?? "HTTP \(answer.status)"
        switch answer.status {
        case 401, 403: throw HostError(.badConfiguration, "Stripe rejected the secret key")
        case 400..<500: throw HostError(.rejected, "Stripe: \(message)", reason: error?["code"] as? String)
        default: throw HostError(.unavailable, "Stripe answered HTTP \(answer.status): \(message)")
        }
    }

    static func string(_ object: [String: Any], _ key: String) throws -> String {
        guard let value = object[key] as? String, !value.isEmpty else { throw unexpected("no '\(key)' in Stripe's answer") }
        return value
    }

    static func unexpected(_ message: String) -> HostError {
        HostError(.unavailable, message, reason: "stripe_unexpected_answer")
    }

    // MARK: HTTP

    /// One answer: its status and its JSON object (empty when the body is not one).
    struct StripeAnswer {
        let status: Int
        let object: [String: Any]
    }

    private func post(_ path: String, _ form: StripeForm, idempotencyKey: String?) async throws -> StripeAnswer {
        var headers: [(name: String, value: String)] = [
            ("Authorization", "Bearer " + secretKey), ("Content-Type", "application/x-www-form-urlencoded"),
            ("Accept", "application/json"), ("Stripe-Version", Self.apiVersion),
        ]
        if let idempotencyKey { headers.append(("Idempotency-Key", idempotencyKey)) }
        let request = OutboundRequest(
            method: "POST", url: apiURL + path, headers: headers, body: Array(form.encoded.utf8),
            timeoutMilliseconds: StripeLimits.requestTimeoutMilliseconds, connectTimeoutMilliseconds: StripeLimits.connectTimeoutMilliseconds)
        let response: OutboundResponse
        do {
            response = try await http.send(request)
        } catch let error as HTTPClientError {
            let code: HostError.Code = error.kind == .invalidRequest ? .badConfiguration : .unavailable
            throw HostError(code, "Stripe unreachable: \(error.description)")
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
        if (200..<300).contains(response.status) && object == nil {
            throw Self.unexpected("Stripe answered \(path) with HTTP \(response.status) and no JSON object")
        }
        return StripeAnswer(status: response.status, object: object ?? [:])
    }
}

/// Limits of the Stripe client, with their units in their names.
package enum StripeLimits {
    /// Whole-request timeout of one Stripe call (Stripe's own libraries wait up to 80 s; a
    /// charge that times out is retried with its idempotency key, not waited for longer).
    package static let requestTimeoutMilliseconds = 30_000
    package static let connectTimeoutMilliseconds = 5_000
}
