/// Verification of webhook signatures made with HMAC-SHA256 over the raw body.
package enum WebhookSignature {
    /// The outcome of a check.
    package enum Verdict: Equatable, Sendable {
        case valid
        case missing
        case malformed
        case mismatch
    }

    /// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
    package static func verifyGitHub(secret: [UInt8], body: UnsafeRawBufferPointer, header: String?) -> Verdict {
        guard let header, !header.isEmpty else { return .missing }
        guard header.hasPrefix("sha256="), let given = Hex.decode(header.dropFirst("sha256=".count)), given.count == 32 else {
            return .malformed
        }
        let expected = Digest.hmacSHA256(key: secret, message: body)
        return Digest.constantTimeEqual(expected, given) ? .valid : .mismatch
    }

    package static func verifyGitHub(secret: [UInt8], body: [UInt8], header: String?) -> Verdict {
        body.withUnsafeBytes { verifyGitHub(secret: secret, body: $0, header: header) }
    }

    /// The header GitHub would send for `body`.
    package static func gitHubHeader(secret: [UInt8], body: [UInt8]) -> String {
        "sha256=" + Hex.encode(Digest.hmacSHA256(key: secret, message: body))
    }
}

/// Verification of Stripe's `Stripe-Signature` header, which also bounds the delivery's age.
package enum StripeSignature {
    /// The outcome of a check: GitHub's outcomes, and a timestamp outside the tolerance.
    package enum Verdict: Equatable, Sendable {
        case valid
        case missing
        case malformed
        case mismatch
        case timestampOutsideTolerance
    }

    /// The header Stripe would send for `payload` signed at `timestamp` (Unix seconds).
    package static func header(secret: [UInt8], payload: [UInt8], timestamp: Int64) -> String {
        "t=\(timestamp),v1=" + Hex.encode(Digest.hmacSHA256(key: secret, message: Array("\(timestamp).".utf8) + payload))
    }

    /// Stripe: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.payload")>[,v1=...]`.
    /// Only `v1` counts; the timestamp must be within `toleranceSeconds` of `now`.
    package static func verify(
        secret: [UInt8], payload: [UInt8], header: String?, now: Int64,
        toleranceSeconds: Int64 = 300
    ) -> Verdict {
        guard let header, !header.isEmpty else { return .missing }
        var timestamp: Int64?
        var signatures: [[UInt8]] = []
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { continue }
            if pair[0] == "t" { timestamp = Int64(pair[1]) }
            if pair[0] == "v1", let bytes = Hex.decode(pair[1]) { signatures.append(bytes) }
        }
        guard let timestamp, !signatures.isEmpty else { return .malformed }
        let expected = Digest.hmacSHA256(key: secret, message: Array("\(timestamp).".utf8) + payload)
        // Compare against every v1 signature so the time does not reveal which one matched.
        var matched = false
        for signature in signatures where Digest.constantTimeEqual(expected, signature) { matched = true }
        guard matched else { return .mismatch }
        guard abs(now - timestamp) <= toleranceSeconds else { return .timestampOutsideTolerance }
        return .valid
    }
}
