/// Base64url without padding (RFC 4648 §5), as JSON Web Tokens use it.
package enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    package static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= bytes.count {
            let n = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            index += 3
        }
        switch bytes.count - index {
        case 1:
            let n = UInt32(bytes[index]) << 16
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)]]
        case 2:
            let n = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)]]
        default:
            break
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Strict decoding: nil for characters outside the alphabet, `=` padding, or an impossible length.
    package static func decode(_ text: String) -> [UInt8]? {
        func value(_ c: UInt8) -> UInt32? {
            switch c {
            case 65...90: return UInt32(c - 65)
            case 97...122: return UInt32(c - 71)
            case 48...57: return UInt32(c + 4)
            case 45: return 62  // -
            case 95: return 63  // _
            default: return nil
            }
        }
        let input = Array(text.utf8)
        guard input.count % 4 != 1 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(input.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bitCount = 0
        for c in input {
            guard let v = value(c) else { return nil }
            accumulator = accumulator << 6 | v
            bitCount += 6
            if bitCount >= 8 {
                bitCount -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bitCount)))
            }
        }
        // Leftover bits must be zero, so every text has one encoding.
        guard accumulator & ((1 << UInt32(bitCount)) - 1) == 0 else { return nil }
        return out
    }
}

/// JSON Web Tokens signed with RS256 (RFC 7519 with RFC 7518 §3.3).
package enum JWT {
    /// A header or claim value. Enough for registered claims and GitHub's App JWT.
    package enum Value: Sendable, Equatable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
        case string(String)
        case integer(Int64)
        case bool(Bool)

        package init(stringLiteral value: String) { self = .string(value) }
        package init(integerLiteral value: Int64) { self = .integer(value) }
        package init(booleanLiteral value: Bool) { self = .bool(value) }

        var json: String {
            switch self {
            case .string(let text): return JWT.quote(text)
            case .integer(let number): return String(number)
            case .bool(let flag): return flag ? "true" : "false"
            }
        }
    }

    /// `header.claims.signature`, each part base64url. The header always carries `"alg":"RS256"`
    /// and `"typ":"JWT"` (given values for those two are replaced); keys are written sorted, so
    /// the same input always gives the same token.
    package static func rs256(header: [String: Value] = [:], claims: [String: Value], key: RSAPrivateKey) throws -> String {
        var header = header
        header["alg"] = "RS256"
        header["typ"] = "JWT"
        let signingInput = Base64URL.encode(Array(object(header).utf8)) + "." + Base64URL.encode(Array(object(claims).utf8))
        let signature = try key.signRS256(Array(signingInput.utf8))
        return signingInput + "." + Base64URL.encode(signature)
    }

    static func object(_ fields: [String: Value]) -> String {
        "{" + fields.keys.sorted().map { quote($0) + ":" + fields[$0]!.json }.joined(separator: ",") + "}"
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped.
    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
