/// A Stripe request body: `application/x-www-form-urlencoded` fields in the order added, with
/// Stripe's nested keys flattened as it reads them (`metadata[workspace_id]=w1`,
/// `invoice_settings[default_payment_method]=pm_1`).
///
/// Guarantees: every byte of a key or value other than the unreserved `A-Z a-z 0-9 - . _ ~` is
/// percent-encoded from its UTF-8 (a space as `+`, as HTML forms do), so no value can add,
/// split or rename a field.
package struct StripeForm: Sendable {
    package private(set) var fields: [(key: String, value: String)] = []

    package init() {}

    package mutating func add(_ key: String, _ value: String) {
        fields.append((key, value))
    }

    /// `key[name]=value` for each entry, by name, so the same entries always make the same body.
    package mutating func add(_ key: String, entries: [String: String]) {
        for (name, value) in entries.sorted(by: { $0.key < $1.key }) {
            add("\(key)[\(name)]", value)
        }
    }

    /// The body, `k1=v1&k2=v2`.
    package var encoded: String {
        fields.map { StripeForm.percentEncoded($0.key) + "=" + StripeForm.percentEncoded($0.value) }.joined(separator: "&")
    }

    /// `text` with every byte but the unreserved ones percent-encoded, and a space as `+`.
    package static func percentEncoded(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: " "):
                out.append("+")
            default:
                out.append("%")
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            }
        }
        return out
    }

    private static let hexDigits: [Character] = Array("0123456789ABCDEF")
}
