import BillingPlugin
import Foundation
import Testing

/// The form encoder Stripe requests are written with.
@Suite("Stripe form encoding")
struct StripeFormTests {
    @Test("nested keys are flattened Stripe's way, metadata sorted by name")
    func nestedKeys() {
        var form = StripeForm()
        form.add("amount", "4200")
        form.add("metadata", entries: ["workspace_id": "w1", "invoice": "in_1"])
        form.add("invoice_settings[default_payment_method]", "pm_1")
        #expect(
            form.encoded
                == "amount=4200&metadata%5Binvoice%5D=in_1&metadata%5Bworkspace_id%5D=w1&invoice_settings%5Bdefault_payment_method%5D=pm_1")
    }

    @Test(
        "every byte but the unreserved ones is percent-encoded, a space as +",
        arguments: [
            ("a-z.A_Z~09", "a-z.A_Z~09"), ("Octo Org", "Octo+Org"), ("a&b=c", "a%26b%3Dc"), ("1+1", "1%2B1"), ("50%", "50%25"),
            ("é", "%C3%A9"), ("東京", "%E6%9D%B1%E4%BA%AC"), ("line\nbreak", "line%0Abreak"), ("[x]", "%5Bx%5D"), ("a/b?c#d", "a%2Fb%3Fc%23d"),
            ("", ""),
        ])
    func percentEncoding(text: String, encoded: String) {
        #expect(StripeForm.percentEncoded(text) == encoded)
    }

    @Test("a value cannot add or rename a field, and decodes back to itself")
    func valuesStayValues() throws {
        var form = StripeForm()
        form.add("name", "Acme & Co=1&amount=1")
        form.add("metadata", entries: ["note]&x[": "50% off + tax"])
        #expect(form.encoded.split(separator: "&").count == 2)
        let decoded = try #require(URLComponents(string: "http://x/?" + form.encoded.replacingOccurrences(of: "+", with: "%20"))?.queryItems)
        #expect(decoded.map(\.name) == ["name", "metadata[note]&x[]"])
        #expect(decoded.map(\.value) == ["Acme & Co=1&amount=1", "50% off + tax"])
    }
}
