import Foundation
import Host
import SQL
import TenkiCrypto

/// The ledgers and accounts of docs/PRODUCT.md §11. Operator accounts exist once per ledger;
/// each workspace has a USER account on the money ledger and one on the free-minutes ledger.
/// Account ids are derived from (ledger, code, owner), so every process finds the same ones.
package enum ChartOfAccounts {
    /// Money, in micro-cents (1 USD = 100,000,000).
    package static let moneyLedger: UInt32 = 1
    /// Free minutes, normalised to 2 vCPU, in whole minutes.
    package static let freeMinutesLedger: UInt32 = 2

    package enum AccountCode: UInt16, CaseIterable, Sendable {
        case tenkiReceivable = 1001
        case stripeReceivable = 1010
        case user = 2001
        case revenue = 4001
        case stripeFee = 5010
        case marketingExpense = 5020
    }

    /// Transfer codes.
    package enum TransferCode: UInt16, CaseIterable, Sendable {
        case bankWithdrawal = 1001
        case stripePayment = 1002
        /// A payment refunded or charged back: the opposite of its 1002.
        case paymentReversal = 1003
        case runnerCharge = 2001
        case promoCreditUsage = 2002
        case usageReversal = 2003
        case computeCharge = 2010
        /// An invoice's charges besides usage (add-ons, slots, storage, true-up) and its rounding.
        case invoiceCharge = 2020
        /// The payment provider's fee on a payment (STRIPE_FEE ← STRIPE_RECEIVABLE).
        case paymentFee = 5010
        case signupCredit = 3001
        case monthlyFreeCredit = 3002
        case promoCredit = 3003
        case promoCreditReversal = 3004
    }

    /// Operator accounts on the free-minutes ledger: where grants come from and consumption goes.
    package static let freeMinutesGrantsCode: UInt16 = 3001
    package static let freeMinutesConsumedCode: UInt16 = 3002

    package static func accountID(ledger: UInt32, code: UInt16, owner: String) -> ID128 {
        derivedID("tenki-account:\(ledger):\(code):\(owner)")
    }

    /// A stable id named by `text` (the first 128 bits of its SHA-256): how callers give their
    /// accounts and transfers ids every process derives alike, so a retry is `exists`.
    package static func derivedID(_ text: String) -> ID128 {
        let digest = Digest.sha256(Array(text.utf8))
        var high: UInt64 = 0
        var low: UInt64 = 0
        for i in 0..<8 { high = high << 8 | UInt64(digest[i]) }
        for i in 8..<16 { low = low << 8 | UInt64(digest[i]) }
        return ID128(high: high, low: low)
    }

    static let operatorOwner = "operator"

    /// The operator accounts, created on first start (creating them again is `exists`).
    package static var operatorAccounts: [Account] {
        let money = [AccountCode.tenkiReceivable, .stripeReceivable, .revenue, .stripeFee, .marketingExpense].map {
            Account(id: accountID(ledger: moneyLedger, code: $0.rawValue, owner: operatorOwner), ledger: moneyLedger, code: $0.rawValue)
        }
        let minutes = [freeMinutesGrantsCode, freeMinutesConsumedCode].map {
            Account(id: accountID(ledger: freeMinutesLedger, code: $0, owner: operatorOwner), ledger: freeMinutesLedger, code: $0)
        }
        return money + minutes
    }

    package static func operatorAccountID(_ code: AccountCode) -> ID128 {
        accountID(ledger: moneyLedger, code: code.rawValue, owner: operatorOwner)
    }

    package static func freeMinutesOperatorID(_ code: UInt16) -> ID128 {
        accountID(ledger: freeMinutesLedger, code: code, owner: operatorOwner)
    }

    /// A workspace's USER account on the money ledger (it may go negative: it owes).
    package static func userMoneyAccountID(workspace: String) -> ID128 {
        accountID(ledger: moneyLedger, code: AccountCode.user.rawValue, owner: "workspace:" + workspace)
    }

    /// A workspace's free-minutes account (it may never go below zero).
    package static func userMinutesAccountID(workspace: String) -> ID128 {
        accountID(ledger: freeMinutesLedger, code: AccountCode.user.rawValue, owner: "workspace:" + workspace)
    }

    package static func workspaceAccounts(_ workspace: String) -> [Account] {
        // Both keep balance history, so a balance as of any past moment has an exact answer.
        [
            Account(id: userMoneyAccountID(workspace: workspace), ledger: moneyLedger, code: AccountCode.user.rawValue, flags: .history),
            Account(
                id: userMinutesAccountID(workspace: workspace), ledger: freeMinutesLedger, code: AccountCode.user.rawValue,
                flags: [.debitsMustNotExceedCredits, .history]),
        ]
    }
}

/// A workspace's balances as `tenki ledger balance` prints them.
package struct WorkspaceBalance: Sendable, Codable, Equatable {
    package let workspace: String
    /// credits_posted − debits_posted of the USER money account; negative means it owes.
    package let balanceMicros: Int64
    /// credits_pending − debits_pending of the same account.
    package let pendingMicros: Int64
    /// Free minutes left (posted, less any held by pending transfers).
    package let freeMinutesRemaining: Int64
    /// The moment these balances are of (nanoseconds), when asked for a past one.
    package let asOf: UInt64?

    package init(workspace: String, balanceMicros: Int64, pendingMicros: Int64, freeMinutesRemaining: Int64, asOf: UInt64? = nil) {
        self.workspace = workspace
        self.asOf = asOf
        self.balanceMicros = balanceMicros
        self.pendingMicros = pendingMicros
        self.freeMinutesRemaining = freeMinutesRemaining
    }

    enum CodingKeys: String, CodingKey {
        case workspace, balanceMicros = "balance_micros", pendingMicros = "pending_micros", freeMinutesRemaining = "free_minutes_remaining"
        case asOf = "as_of"
    }
}

extension LedgerStore {
    /// Creates the operator accounts (idempotent).
    package func ensureChart(now: UInt64) async throws {
        let results = try await createAccounts(ChartOfAccounts.operatorAccounts, now: now)
        guard results.allSatisfy({ $0 == .ok || $0 == .exists }) else {
            throw HostError(.internal, "chart of accounts could not be created: \(results)")
        }
    }

    /// Creates a workspace's accounts if missing (idempotent).
    package func ensureWorkspace(_ workspace: String, now: UInt64) async throws {
        let results = try await createAccounts(ChartOfAccounts.workspaceAccounts(workspace), now: now)
        guard results.allSatisfy({ $0 == .ok || $0 == .exists }) else {
            throw HostError(.internal, "accounts of workspace \(workspace) could not be created: \(results)")
        }
    }

    /// Every account, by ledger and code (operator view).
    package func allAccounts(limit: Int = HostLimits.listMaxRows) async throws -> [Account] {
        let ids = try await database.read { db in
            try db.query("SELECT id FROM ledger_accounts ORDER BY ledger, code, id LIMIT $1", [.integer(Int64(limit))])
                .compactMap { ID128(hex: try $0.string("id")) }
        }
        return try await lookupAccounts(ids)
    }
}
