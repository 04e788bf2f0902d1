import Foundation
import Host

/// One line of an invoice. Amounts are integer micro-cents; `sku` is only on usage lines; every
/// line names the policy version that priced it.
package struct InvoiceLine: Sendable, Codable, Equatable {
    package enum Kind: String, Sendable, Codable, CaseIterable {
        case usage, addon, slots, storage
        case contractDiscount = "contract_discount"
        case trueUp = "true_up"
        case promoCredit = "promo_credit"
        case monthlyCredit = "monthly_credit"
        case lateUsage = "late_usage"
        case rounding
    }

    package let kind: Kind
    package let description: String
    package let sku: String?
    package let quantity: Int64
    package let unitPriceMicros: Int64
    package let amountMicros: Int64
    package let policyVersion: String

    package init(
        kind: Kind, description: String, sku: String? = nil, quantity: Int64, unitPriceMicros: Int64, amountMicros: Int64,
        policyVersion: String
    ) {
        self.kind = kind
        self.description = description
        self.sku = sku
        self.quantity = quantity
        self.unitPriceMicros = unitPriceMicros
        self.amountMicros = amountMicros
        self.policyVersion = policyVersion
    }

    enum CodingKeys: String, CodingKey {
        case kind, description, sku, quantity, unitPriceMicros = "unit_price_micros", amountMicros = "amount_micros"
        case policyVersion = "policy_version"
    }
}

/// A workspace's invoice for one period. `draft → issued → paid | void | uncollectible`; once
/// issued its lines never change (docs/PRODUCT.md §13).
package struct Invoice: Sendable, Codable, Equatable {
    package enum Status: String, Sendable, Codable {
        /// Not stored: what the invoice would be now.
        case preview
        case draft, issued, paid, void, uncollectible
    }

    /// nil for a preview.
    package let id: String?
    /// `TNK-2026-000123`, given when issued.
    package let number: String?
    package let workspaceID: String
    package let period: String
    package let status: Status
    package let lines: [InvoiceLine]
    /// The sum of the lines, rounding included: always whole cents.
    package let totalMicros: Int64
    package let amountDueCents: Int64
    package let issuedAt: String?
    package let paidAt: String?

    enum CodingKeys: String, CodingKey {
        case id, number, workspaceID = "workspace_id", period, status, lines, totalMicros = "total_micros"
        case amountDueCents = "amount_due_cents", issuedAt = "issued_at", paidAt = "paid_at"
    }

    package init(
        id: String?, number: String?, workspaceID: String, period: String, status: Status, lines: [InvoiceLine], totalMicros: Int64,
        amountDueCents: Int64, issuedAt: String? = nil, paidAt: String? = nil
    ) {
        self.id = id
        self.number = number
        self.workspaceID = workspaceID
        self.period = period
        self.status = status
        self.lines = lines
        self.totalMicros = totalMicros
        self.amountDueCents = amountDueCents
        self.issuedAt = issuedAt
        self.paidAt = paidAt
    }

    /// Every key is written, `null` included, so readers see one shape.
    package func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(number, forKey: .number)
        try c.encode(workspaceID, forKey: .workspaceID)
        try c.encode(period, forKey: .period)
        try c.encode(status, forKey: .status)
        try c.encode(lines, forKey: .lines)
        try c.encode(totalMicros, forKey: .totalMicros)
        try c.encode(amountDueCents, forKey: .amountDueCents)
        try c.encode(issuedAt, forKey: .issuedAt)
        try c.encode(paidAt, forKey: .paidAt)
    }

    /// The amount of the lines of these kinds.
    package func sum(_ kinds: Set<InvoiceLine.Kind>) -> Int64 {
        lines.filter { kinds.contains($0.kind) }.reduce(0) { $0 + $1.amountMicros }
    }

    /// The lines as CSV (RFC 4180), amounts in micro-cents and in dollars.
    package var csv: String {
        var out = "invoice,period,kind,description,sku,quantity,unit_price_micros,amount_micros,amount_usd,policy_version\r\n"
        for line in lines {
            let fields = [
                number ?? id ?? "preview", period, line.kind.rawValue, line.description, line.sku ?? "", String(line.quantity),
                String(line.unitPriceMicros), String(line.amountMicros), ExactMoney.decimal(line.amountMicros), line.policyVersion,
            ]
            out += fields.map(Invoice.csvField).joined(separator: ",") + "\r\n"
        }
        return out
    }

    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// One charged job as billing reads it: the stored pricing decision's lines.
package struct BilledUsage: Sendable, Equatable {
    package let key: String
    package let sku: String?
    /// Unix seconds of the job's completion.
    package let completedAt: Int64
    package let amountMicros: Int64
    package let policyVersion: String
    package let lines: [Line]

    /// The decision's lines as `pricing.lua` returned them.
    package typealias Line = JobPrice.Line

    package init(key: String, sku: String?, completedAt: Int64, amountMicros: Int64, policyVersion: String, lines: [Line]) {
        self.key = key
        self.sku = sku
        self.completedAt = completedAt
        self.amountMicros = amountMicros
        self.policyVersion = policyVersion
        self.lines = lines
    }
}
