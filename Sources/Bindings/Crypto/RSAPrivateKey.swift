import CCrypto

/// A failure of a cryptographic operation, with OpenSSL's own reason when it gave one.
package struct CryptoError: Error, CustomStringConvertible, Sendable {
    package enum Kind: String, Sendable {
        /// The text is not a readable PEM private key (wrong armour, corrupt, encrypted).
        case badKey = "bad_key"
        /// A readable key of a kind or size we refuse (not RSA, shorter than 2048 bits).
        case unsupportedKey = "unsupported_key"
        case signingFailed = "signing_failed"
    }

    package let kind: Kind
    package let message: String

    package var description: String { "\(kind.rawValue): \(message)" }

    /// Drains OpenSSL's error queue for this thread into one line, e.g. "... (DECODER routines::unsupported)".
    static func make(_ kind: Kind, _ message: String) -> CryptoError {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            reasons.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return CryptoError(kind: kind, message: reasons.isEmpty ? message : message + " (" + reasons.joined(separator: "; ") + ")")
    }
}

/// An RSA private key read from PEM, signing with RS256 (RSASSA-PKCS1-v1_5 over SHA-256).
///
/// Accepts PKCS#1 (`BEGIN RSA PRIVATE KEY`, what GitHub hands out for an App) and PKCS#8
/// (`BEGIN PRIVATE KEY`). Refuses encrypted keys without prompting, keys of other algorithms
/// and keys shorter than `minimumBits`. Signing is safe from any number of threads at once:
/// each signature has its own OpenSSL context and the key itself is only read.
/// Unchecked Sendable: the `EVP_PKEY` behind `key` is never changed after init, and OpenSSL lets
/// threads share a key for reading; each signature makes its own context.
package final class RSAPrivateKey: @unchecked Sendable {
    /// Shortest modulus accepted; GitHub's App keys are 2048 bits.
    package static let minimumBits = 2048
    /// Longest PEM text read, far above an 8192-bit key's ~6.5 KB.
    package static let maximumPEMBytes = 64 * 1024

    private let key: OpaquePointer
    /// The modulus size in bits.
    package let bits: Int

    package init(pem: String) throws {
        let bytes = Array(pem.utf8)
        guard !bytes.isEmpty else { throw CryptoError(kind: .badKey, message: "the private key PEM is empty") }
        guard bytes.count <= RSAPrivateKey.maximumPEMBytes else {
            throw CryptoError(kind: .badKey, message: "the private key PEM is \(bytes.count) bytes, more than \(RSAPrivateKey.maximumPEMBytes)")
        }
        guard pem.contains("-----BEGIN") else {
            throw CryptoError(kind: .badKey, message: "not PEM: expected '-----BEGIN RSA PRIVATE KEY-----' or '-----BEGIN PRIVATE KEY-----'")
        }
        if pem.contains("ENCRYPTED") {
            throw CryptoError(kind: .badKey, message: "the private key is encrypted; give an unencrypted PEM")
        }
        ERR_clear_error()
        let parsed: OpaquePointer? = bytes.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else { return nil }
            defer { BIO_free(bio) }
            // A callback that supplies no passphrase: an encrypted key fails instead of reading the terminal.
            return PEM_read_bio_PrivateKey(bio, nil, { _, _, _, _ in 0 }, nil)
        }
        guard let parsed else { throw CryptoError.make(.badKey, "cannot read the PEM private key") }
        guard EVP_PKEY_get_base_id(parsed) == NID_rsaEncryption else {
            EVP_PKEY_free(parsed)
            throw CryptoError(kind: .unsupportedKey, message: "the private key is not an RSA key")
        }
        let bits = Int(EVP_PKEY_get_bits(parsed))
        guard bits >= RSAPrivateKey.minimumBits else {
            EVP_PKEY_free(parsed)
            throw CryptoError(kind: .unsupportedKey, message: "the RSA key has \(bits) bits; at least \(RSAPrivateKey.minimumBits) are required")
        }
        self.key = parsed
        self.bits = bits
    }

    deinit { EVP_PKEY_free(key) }

    /// The RS256 signature of `message`: RSASSA-PKCS1-v1_5 with SHA-256, `bits / 8` bytes.
    package func signRS256(_ message: [UInt8]) throws -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else { throw CryptoError.make(.signingFailed, "EVP_MD_CTX_new failed") }
        defer { EVP_MD_CTX_free(context) }
        ERR_clear_error()
        // RSA keys sign with PKCS#1 v1.5 padding unless told otherwise.
        guard EVP_DigestSignInit(context, nil, EVP_sha256(), nil, key) == 1 else {
            throw CryptoError.make(.signingFailed, "EVP_DigestSignInit failed")
        }
        var length = 0
        let sizeOK = message.withUnsafeBufferPointer { EVP_DigestSign(context, nil, &length, $0.baseAddress, $0.count) }
        guard sizeOK == 1, length > 0 else { throw CryptoError.make(.signingFailed, "EVP_DigestSign (size) failed") }
        var signature = [UInt8](repeating: 0, count: length)
        let signed = message.withUnsafeBufferPointer { EVP_DigestSign(context, &signature, &length, $0.baseAddress, $0.count) }
        guard signed == 1 else { throw CryptoError.make(.signingFailed, "EVP_DigestSign failed") }
        return Array(signature.prefix(length))
    }
}
