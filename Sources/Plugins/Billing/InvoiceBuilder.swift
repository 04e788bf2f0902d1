import Foundation
import Host

/// What an invoice is computed from, read in one transaction.
package struct InvoiceInputs: Sendable {
    package var workspaceID: String
    package var period: BillingPeriod
    /// Charged jobs not on any invoice yet that completed before the period's end; those that
    /// completed before its start are late and become dated lines.
    package var usage: [BilledUsage]
    package var addons: [MonthlyLinesInput.Addon]
    package var slots: [MonthlyLinesInput.Slots]
    /// Billable bytes of each day of the period; nil when the workspace never reported storage.
    package var dailyStorageBytes: [Int64]?
    package var contract: String?
    /// Promotional credit granted and not yet used or revoked.
    package var promoAvailableMicros: Int64

    package init(
        workspaceID: String, period: BillingPeriod, usage: [BilledUsage] = [], addons: [MonthlyLinesInput.Addon] = [],
        slots: [MonthlyLinesInput.Slots] = [], dailyStorageBytes: [Int64]? = nil, contract: String? = nil, promoAvailableMicros: Int64 = 0
    ) {
        self.workspaceID = workspaceID
        self.period = period
        self.usage = usage
        self.addons = addons
        self.slots = slots
        self.dailyStorageBytes = dailyStorageBytes
        self.contract = contract
        self.promoAvailableMicros = promoAvailableMicros
    }
}

/// The computed lines of an invoice and what it takes.
package struct InvoiceComputation: Sendable, Equatable {
    package let lines: [InvoiceLine]
    package let totalMicros: Int64
    package let amountDueCents: Int64
    package let promoAppliedMicros: Int64
    package let monthlyCreditMicros: Int64
    /// The usage records the invoice takes (each on exactly one invoice).
    package let usageKeys: [String]
}

/// Turns the period's charges into invoice lines (docs/PRODUCT.md §13): usage per SKU and price
/// from the stored per-job decisions, late usage as dated lines, `billing.lua`'s monthly lines
/// (add-ons, slots, storage, true-up, the monthly free credit), promotional credit, then a
/// rounding line so the total is whole cents.
package enum InvoiceBuilder {
    package static func compute(_ inputs: InvoiceInputs, policies: PolicyEngine) throws -> InvoiceComputation {
        var lines = usageLines(inputs.usage, period: inputs.period)
        // Each record's amount is its job's charge after any contract discount.
        let periodUsage = inputs.usage.filter { $0.completedAt >= inputs.period.start }.reduce(Int64(0)) { $0 + $1.amountMicros }
        let invoiceUsage = inputs.usage.reduce(Int64(0)) { $0 + $1.amountMicros }
        let monthly = try policies.monthlyLines(
            MonthlyLinesInput(
                period: .init(start: inputs.period.startText, end: inputs.period.endText), addons: inputs.addons, slots: inputs.slots,
                storage: inputs.dailyStorageBytes.map { .init(dailyBytes: $0) }, contract: inputs.contract, usageMicros: periodUsage,
                creditedUsageMicros: invoiceUsage))
        for line in monthly.lines {
            guard let kind = InvoiceLine.Kind(rawValue: line.kind) else { continue }
            lines.append(
                InvoiceLine(
                    kind: kind, description: line.description, quantity: line.quantity, unitPriceMicros: line.unitPriceMicros,
                    amountMicros: line.amountMicros, policyVersion: monthly.policyVersion))
        }
        let subtotal = lines.reduce(Int64(0)) { $0 + $1.amountMicros }
        guard subtotal >= 0 else {
            throw HostError(.internal, "invoice of \(inputs.workspaceID) for \(inputs.period) would be negative (\(subtotal) micro-cents)")
        }
        let promo = min(max(0, inputs.promoAvailableMicros), subtotal)
        if promo > 0 {
            lines.append(
                InvoiceLine(
                    kind: .promoCredit, description: "Promotional credit applied", quantity: 1, unitPriceMicros: -promo, amountMicros: -promo,
                    policyVersion: monthly.policyVersion))
        }
        let due = ExactMoney.cents(roundingHalfUp: subtotal - promo)
        let rounding = due * ExactMoney.microsPerCent - (subtotal - promo)
        if rounding != 0 {
            lines.append(
                InvoiceLine(
                    kind: .rounding, description: "Rounding to the cent", quantity: 1, unitPriceMicros: rounding, amountMicros: rounding,
                    policyVersion: monthly.policyVersion))
        }
        let total = lines.reduce(Int64(0)) { $0 + $1.amountMicros }
        precondition(total == due * ExactMoney.microsPerCent, "an invoice's lines add up to whole cents")
        return InvoiceComputation(
            lines: lines, totalMicros: total, amountDueCents: due, promoAppliedMicros: promo,
            monthlyCreditMicros: -monthly.lines.filter { $0.kind == "monthly_credit" }.reduce(0) { $0 + $1.amountMicros },
            usageKeys: inputs.usage.map(\.key))
    }

    /// Per-job decision lines summed by (kind, day for late jobs, SKU, description, unit price,
    /// policy version), in a stable order: period usage first, then late usage by day.
    static func usageLines(_ usage: [BilledUsage], period: BillingPeriod) -> [InvoiceLine] {
        struct Key: Hashable {
            let kind: InvoiceLine.Kind
            let day: String?
            let sku: String?
            let description: String
            let unit: Int64
            let version: String
        }
        var sums: [Key: (quantity: Int64, amount: Int64)] = [:]
        var order: [Key] = []
        for record in usage {
            let day = record.completedAt < period.start ? BillingPeriod.day(record.completedAt) : nil
            for line in record.lines {
                let discount = line.amountMicros < 0
                let kind: InvoiceLine.Kind = discount ? .contractDiscount : (day == nil ? .usage : .lateUsage)
                // Discounts add up as one amount; priced lines by minutes at one unit price.
                let key = Key(
                    kind: kind, day: day, sku: discount ? nil : record.sku, description: line.description,
                    unit: discount ? 0 : line.unitPriceMicros, version: record.policyVersion)
                if sums[key] == nil { order.append(key) }
                let previous = sums[key] ?? (0, 0)
                sums[key] = (previous.quantity + (discount ? 1 : line.quantity), previous.amount + line.amountMicros)
            }
        }
        order.sort { a, b in
            ((a.day ?? ""), a.kind == .contractDiscount ? 1 : 0, a.sku ?? "", a.description, a.version)
                < ((b.day ?? ""), b.kind == .contractDiscount ? 1 : 0, b.sku ?? "", b.description, b.version)
        }
        return order.map { key in
            let (quantity, amount) = sums[key]!
            let description = key.day.map { "\($0): \(key.description)" } ?? key.description
            if key.kind == .contractDiscount {
                return InvoiceLine(
                    kind: .contractDiscount, description: description, quantity: 1, unitPriceMicros: amount, amountMicros: amount,
                    policyVersion: key.version)
            }
            return InvoiceLine(
                kind: key.kind, description: description, sku: key.kind == .usage ? key.sku : nil, quantity: quantity, unitPriceMicros: key.unit,
                amountMicros: amount, policyVersion: key.version)
        }
    }
}
