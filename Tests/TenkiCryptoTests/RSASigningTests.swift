import Foundation
import TenkiCrypto
import TestSupport
import Testing

@Suite("RS256 signing and JWTs")
struct RSASigningTests {
    /// Verifies `signature` over `message` with the public key through the openssl command.
    static func opensslVerifies(_ signature: [UInt8], _ message: [UInt8], publicKey: String, in directory: String) throws -> Bool {
        let signaturePath = directory + "/signature-\(UUID().uuidString.prefix(6)).bin"
        try Data(signature).write(to: URL(fileURLWithPath: signaturePath))
        let (status, output) = try OpenSSLTool.run(["dgst", "-sha256", "-verify", publicKey, "-signature", signaturePath], input: message)
        return status == 0 && String(decoding: output, as: UTF8.self).contains("Verified OK")
    }

    @Test(
        "PKCS#1 and PKCS#8 keys sign exactly as openssl does, and openssl verifies with the public key",
        arguments: [TestRSAKeyPair.Format.pkcs1, .pkcs8])
    func signsLikeOpenSSL(format: TestRSAKeyPair.Format) throws {
        let directory = try TemporaryDirectory.make(prefix: "tenki-rsa")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pair = try TestRSAKeyPair.make(in: directory, format: format)
        #expect(pair.privateKeyPEM.contains(format == .pkcs1 ? "BEGIN RSA PRIVATE KEY" : "BEGIN PRIVATE KEY"))
        let key = try RSAPrivateKey(pem: pair.privateKeyPEM)
        #expect(key.bits == 2048)

        let message = Array("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxMjMifQ".utf8)
        let signature = try key.signRS256(message)
        #expect(signature.count == 256)
        // PKCS#1 v1.5 is deterministic: the openssl command must produce the same bytes.
        let reference = try OpenSSLTool.require(["dgst", "-sha256", "-sign", pair.privateKeyPath], input: message)
        #expect(signature == reference)
        #expect(try Self.opensslVerifies(signature, message, publicKey: pair.publicKeyPath, in: directory))
        // One changed byte of the message no longer verifies.
        var tampered = message
        tampered[0] ^= 1
        #expect(try !Self.opensslVerifies(signature, tampered, publicKey: pair.publicKeyPath, in: directory))
    }

    @Test("a JWT is base64url header.claims.signature with sorted keys, and its signature verifies")
    func jwtShape() throws {
        let directory = try TemporaryDirectory.make(prefix: "tenki-jwt")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pair = try TestRSAKeyPair.shared.get()
        let key = try RSAPrivateKey(pem: pair.privateKeyPEM)
        let token = try JWT.rs256(claims: ["iss": "12345", "iat": 1_700_000_000, "exp": 1_700_000_540, "note": "a \"quoted\"\nline"], key: key)
        let parts = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        #expect(parts.count == 3)
        #expect(!token.contains("=") && !token.contains("+") && !token.contains("/"))
        let header = try #require(Base64URL.decode(parts[0]))
        let claims = try #require(Base64URL.decode(parts[1]))
        #expect(String(decoding: header, as: UTF8.self) == #"{"alg":"RS256","typ":"JWT"}"#)
        #expect(String(decoding: claims, as: UTF8.self) == #"{"exp":1700000540,"iat":1700000000,"iss":"12345","note":"a \"quoted\"\nline"}"#)
        let parsed = try JSONSerialization.jsonObject(with: Data(claims)) as? [String: Any]
        #expect(parsed?["note"] as? String == "a \"quoted\"\nline")
        let signature = try #require(Base64URL.decode(parts[2]))
        #expect(try Self.opensslVerifies(signature, Array((parts[0] + "." + parts[1]).utf8), publicKey: pair.publicKeyPath, in: directory))
    }

    @Test("base64url round-trips every length and refuses padding and foreign characters")
    func base64url() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 37 + 250) }
            let text = Base64URL.encode(bytes)
            #expect(Base64URL.decode(text) == bytes)
            // Same as Foundation's base64 with the URL alphabet and no padding.
            let foundation = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            #expect(text == foundation)
        }
        #expect(Base64URL.decode("ab+c") == nil)
        #expect(Base64URL.decode("YQ==") == nil)
        #expect(Base64URL.decode("Y") == nil)
        #expect(Base64URL.decode("YR") == nil, "non-zero leftover bits are a second encoding of 'a'")
        #expect(Base64URL.decode("YQ") == Array("a".utf8))
    }

    @Test("a bad key is a clear error, never a prompt or a crash")
    func badKeys() throws {
        let directory = try TemporaryDirectory.make(prefix: "tenki-badkey")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func failure(_ pem: String) -> CryptoError? {
            do {
                _ = try RSAPrivateKey(pem: pem)
                return nil
            } catch {
                return error as? CryptoError
            }
        }
        #expect(failure("")?.kind == .badKey)
        #expect(failure("not a key at all")?.message.contains("not PEM") == true)
        let corrupt = failure("-----BEGIN RSA PRIVATE KEY-----\nAAAAbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n")
        #expect(corrupt?.kind == .badKey)
        #expect(corrupt?.description.contains("cannot read the PEM private key") == true)

        // A valid PEM of the wrong kind: an EC key, and an RSA key that is too short.
        let ecPath = directory + "/ec.pem"
        try OpenSSLTool.require(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ecPath])
        let ec = failure(try String(contentsOfFile: ecPath, encoding: .utf8))
        #expect(ec?.kind == .unsupportedKey && ec?.message.contains("not an RSA key") == true)
        let shortPath = directory + "/short.pem"
        try OpenSSLTool.require(["genrsa", "-traditional", "-out", shortPath, "1024"])
        let short = failure(try String(contentsOfFile: shortPath, encoding: .utf8))
        #expect(short?.kind == .unsupportedKey && short?.message.contains("1024 bits") == true)

        // An encrypted key is refused without asking for a passphrase.
        let encryptedPath = directory + "/encrypted.pem"
        try OpenSSLTool.require([
            "pkey", "-in", try TestRSAKeyPair.shared.get().privateKeyPath, "-aes256", "-passout", "pass:secret",
            "-out", encryptedPath,
        ])
        let encrypted = failure(try String(contentsOfFile: encryptedPath, encoding: .utf8))
        #expect(encrypted?.kind == .badKey && encrypted?.message.contains("encrypted") == true)
    }
}
