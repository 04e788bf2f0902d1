import Foundation
import Host
import LedgerPlugin

/// The ledger transfers of the billing flow (docs/PRODUCT.md §11). Every id derives from what it
/// is for (invoice, payment, usage record), so a step that runs again posts nothing new.
package enum BillingLedger {
    static func transfer(_ name: String, from debit: ID128, to credit: ID128, _ amount: Int64, _ code: ChartOfAccounts.TransferCode) -> Transfer {
        Transfer(
            id: ChartOfAccounts.derivedID("tenki-billing:\(name)"), debitAccountID: debit, creditAccountID: credit, amount: UInt64(amount),
            ledger: ChartOfAccounts.moneyLedger, code: code.rawValue)
    }

    /// An issued invoice's transfers besides the per-job usage (already posted when each job was
    /// charged): its other charges (2020 USER → REVENUE), the monthly free credit (3002
    /// MARKETING_EXPENSE → USER), the promo-covered revenue moved to marketing (2002 REVENUE →
    /// MARKETING_EXPENSE; the promo money itself reached USER when granted, 3003) and the
    /// rounding (2020, either way). After them and the payment, the invoice nets to zero on USER.
    package static func invoiceTransfers(_ invoice: Invoice) -> [Transfer] {
        guard let id = invoice.id else { return [] }
        let user = ChartOfAccounts.userMoneyAccountID(workspace: invoice.workspaceID)
        let revenue = ChartOfAccounts.operatorAccountID(.revenue)
        let marketing = ChartOfAccounts.operatorAccountID(.marketingExpense)
        var batch: [Transfer] = []
        let charges = invoice.sum([.addon, .slots, .storage, .trueUp])
        if charges > 0 { batch.append(transfer("\(id):charges", from: user, to: revenue, charges, .invoiceCharge)) }
        let monthly = -invoice.sum([.monthlyCredit])
        if monthly > 0 { batch.append(transfer("\(id):monthly-credit", from: marketing, to: user, monthly, .monthlyFreeCredit)) }
        let promo = -invoice.sum([.promoCredit])
        if promo > 0 { batch.append(transfer("\(id):promo-usage", from: revenue, to: marketing, promo, .promoCreditUsage)) }
        let rounding = invoice.sum([.rounding])
        if rounding > 0 { batch.append(transfer("\(id):rounding", from: user, to: revenue, rounding, .invoiceCharge)) }
        if rounding < 0 { batch.append(transfer("\(id):rounding", from: revenue, to: user, -rounding, .invoiceCharge)) }
        return linked(batch)
    }

    /// A payment: 1002 STRIPE_RECEIVABLE → USER for the amount, and the provider's fee, 5010
    /// STRIPE_FEE ← STRIPE_RECEIVABLE (what the provider keeps of it).
    package static func paymentTransfers(paymentID: String, workspace: String, amountMicros: Int64, feeMicros: Int64) -> [Transfer] {
        let receivable = ChartOfAccounts.operatorAccountID(.stripeReceivable)
        var batch = [
            transfer(
                "\(paymentID):payment", from: receivable, to: ChartOfAccounts.userMoneyAccountID(workspace: workspace), amountMicros, .stripePayment)
        ]
        if feeMicros > 0 {
            batch.append(transfer("\(paymentID):fee", from: ChartOfAccounts.operatorAccountID(.stripeFee), to: receivable, feeMicros, .paymentFee))
        }
        return linked(batch)
    }

    /// The opposite of a payment's 1002 (code 1003), after its refund.
    package static func paymentReversal(paymentID: String, workspace: String, amountMicros: Int64) -> Transfer {
        transfer(
            "\(paymentID):reversal", from: ChartOfAccounts.userMoneyAccountID(workspace: workspace),
            to: ChartOfAccounts.operatorAccountID(.stripeReceivable), amountMicros, .paymentReversal)
    }

    /// The opposite of a usage record's charge (2003): its money back to USER, its free minutes
    /// back to the workspace's minutes account.
    package static func usageReversal(usageKey: String, workspace: String, amountMicros: Int64, freeMinutes: Int64) -> [Transfer] {
        var batch: [Transfer] = []
        if freeMinutes > 0 {
            batch.append(
                Transfer(
                    id: ChartOfAccounts.derivedID("tenki-billing:usage-reversal:\(usageKey):minutes"),
                    debitAccountID: ChartOfAccounts.freeMinutesOperatorID(ChartOfAccounts.freeMinutesConsumedCode),
                    creditAccountID: ChartOfAccounts.userMinutesAccountID(workspace: workspace), amount: UInt64(freeMinutes),
                    ledger: ChartOfAccounts.freeMinutesLedger, code: ChartOfAccounts.TransferCode.usageReversal.rawValue))
        }
        if amountMicros > 0 {
            batch.append(
                transfer(
                    "usage-reversal:\(usageKey):money", from: ChartOfAccounts.operatorAccountID(.revenue),
                    to: ChartOfAccounts.userMoneyAccountID(workspace: workspace), amountMicros, .usageReversal))
        }
        return linked(batch)
    }

    static func linked(_ batch: [Transfer]) -> [Transfer] {
        var batch = batch
        for i in batch.indices.dropLast() { batch[i].flags.insert(.linked) }
        return batch
    }

    /// Posts `batch` (after making sure the workspace's accounts exist) unless it was posted
    /// already: a linked batch is all or nothing, so finding every id means a step runs again.
    package static func post(_ ledger: LedgerStore, workspace: String, _ batch: [Transfer]) async throws {
        guard !batch.isEmpty else { return }
        if try await ledger.lookupTransfers(batch.map(\.id)).count == batch.count { return }
        let now = UInt64(Date().timeIntervalSince1970 * 1_000_000_000)
        try await ledger.ensureWorkspace(workspace, now: now)
        let results = try await ledger.createTransfers(batch, now: now)
        guard results.allSatisfy({ $0 == .ok || $0 == .exists }) else {
            throw HostError(.internal, "the ledger refused billing transfers for \(workspace): \(results.map(\.rawValue))")
        }
    }
}
