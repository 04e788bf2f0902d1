import Foundation
import TenkiCrypto
import TestSupport
import Testing

@Suite("Webhook signatures")
struct SignatureTests {
    struct Vectors: Decodable {
        struct GitHub: Decodable {
            struct Vector: Decodable { let secret, payload, signature, header_value, expected: String }
            let vectors: [Vector]
        }
        struct Stripe: Decodable {
            struct Vector: Decodable {
                let name, secret, payload, header, expected: String
                let verify_at, tolerance_seconds: Int64
            }
            let vectors: [Vector]
        }
        let github: GitHub
        let stripe: Stripe
    }

    static func vectors() throws -> Vectors {
        let path = Fixtures.directory + "/signatures.json"
        guard let data = FileManager.default.contents(atPath: path) else { throw MissingDependency(description: "cannot read \(path)") }
        return try JSONDecoder().decode(Vectors.self, from: data)
    }

    @Test("GitHub's documented test vector verifies")
    func gitHubDocumentedVector() throws {
        let vectors = try Self.vectors().github.vectors
        #expect(!vectors.isEmpty)
        for vector in vectors {
            let body = Array(vector.payload.utf8)
            let secret = Array(vector.secret.utf8)
            #expect(Hex.encode(Digest.hmacSHA256(key: secret, message: body)) == vector.signature)
            #expect(WebhookSignature.gitHubHeader(secret: secret, body: body) == vector.header_value)
            #expect(WebhookSignature.verifyGitHub(secret: secret, body: body, header: vector.header_value) == .valid)
            // One flipped byte in the body, the signature or the secret fails.
            #expect(WebhookSignature.verifyGitHub(secret: secret, body: body + [0x20], header: vector.header_value) == .mismatch)
            var flipped = vector.header_value
            flipped.removeLast()
            flipped.append(vector.header_value.last == "0" ? "1" : "0")
            #expect(WebhookSignature.verifyGitHub(secret: secret, body: body, header: flipped) == .mismatch)
            #expect(WebhookSignature.verifyGitHub(secret: secret + [1], body: body, header: vector.header_value) == .mismatch)
            #expect(WebhookSignature.verifyGitHub(secret: secret, body: body, header: nil) == .missing)
            #expect(WebhookSignature.verifyGitHub(secret: secret, body: body, header: "sha1=abc") == .malformed)
            #expect(WebhookSignature.verifyGitHub(secret: secret, body: body, header: "sha256=zz") == .malformed)
        }
    }

    @Test("Stripe's vectors: valid, tampered payload, expired timestamp")
    func stripeVectors() throws {
        let vectors = try Self.vectors().stripe.vectors
        #expect(vectors.count >= 3)
        for vector in vectors {
            let result = StripeSignature.verify(
                secret: Array(vector.secret.utf8), payload: Array(vector.payload.utf8), header: vector.header,
                now: vector.verify_at, toleranceSeconds: vector.tolerance_seconds)
            switch vector.expected {
            case "valid": #expect(result == .valid, "\(vector.name)")
            case "invalid_signature": #expect(result == .mismatch, "\(vector.name)")
            case "timestamp_outside_tolerance": #expect(result == .timestampOutsideTolerance, "\(vector.name)")
            default: Issue.record("unknown expectation \(vector.expected) in \(vector.name)")
            }
        }
    }

    @Test("hex decoding is strict and constant-time comparison compares")
    func hexAndCompare() {
        #expect(Hex.decode("00ff10") == [0, 255, 16])
        #expect(Hex.decode("0") == nil)
        #expect(Hex.decode("0g") == nil)
        #expect(Digest.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!Digest.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!Digest.constantTimeEqual([1, 2], [1, 2, 3]))
        #expect(Hex.encode(Digest.sha256(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
