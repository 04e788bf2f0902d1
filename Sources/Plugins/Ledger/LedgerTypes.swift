import Host

/// A 128-bit identifier, as TigerBeetle's: two 64-bit halves, compared as one unsigned number.
package struct ID128: Hashable, Comparable, Sendable, CustomStringConvertible {
    package let high: UInt64
    package let low: UInt64

    package init(high: UInt64 = 0, low: UInt64) {
        self.high = high
        self.low = low
    }

    package static let zero = ID128(low: 0)
    package static let max = ID128(high: .max, low: .max)

    package var isZero: Bool { high == 0 && low == 0 }

    package static func < (a: ID128, b: ID128) -> Bool { (a.high, a.low) < (b.high, b.low) }

    /// 32 lowercase hex digits (how it is stored and shown).
    package var description: String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: 32) { buffer in
            for i in 0..<16 {
                buffer[i] = digits[Int((high >> (60 - 4 * UInt64(i))) & 0xf)]
                buffer[16 + i] = digits[Int((low >> (60 - 4 * UInt64(i))) & 0xf)]
            }
            return 32
        }
    }

    package init?(hex: String) {
        guard hex.count == 32, let high = UInt64(hex.prefix(16), radix: 16), let low = UInt64(hex.suffix(16), radix: 16) else { return nil }
        self.init(high: high, low: low)
    }
}

/// An account, with TigerBeetle's fields and balances. Amounts are unsigned 64-bit here
/// (micro-cents on the money ledger, whole minutes on the free-minutes ledger).
package struct Account: Hashable, Sendable {
    package struct Flags: OptionSet, Hashable, Sendable {
        package let rawValue: UInt16
        package init(rawValue: UInt16) { self.rawValue = rawValue }
        package static let linked = Flags(rawValue: 1 << 0)
        package static let debitsMustNotExceedCredits = Flags(rawValue: 1 << 1)
        package static let creditsMustNotExceedDebits = Flags(rawValue: 1 << 2)
        package static let history = Flags(rawValue: 1 << 3)
        package static let closed = Flags(rawValue: 1 << 5)
        static let known: Flags = [.linked, .debitsMustNotExceedCredits, .creditsMustNotExceedDebits, .history, .closed]
    }

    package var id: ID128
    package var debitsPending: UInt64 = 0
    package var debitsPosted: UInt64 = 0
    package var creditsPending: UInt64 = 0
    package var creditsPosted: UInt64 = 0
    package var userData128: ID128 = .zero
    package var userData64: UInt64 = 0
    package var userData32: UInt32 = 0
    package var ledger: UInt32
    package var code: UInt16
    package var flags: Flags = []
    /// Assigned by the ledger when created.
    package var timestamp: UInt64 = 0

    package init(
        id: ID128, ledger: UInt32, code: UInt16, flags: Flags = [], userData128: ID128 = .zero,
        userData64: UInt64 = 0, userData32: UInt32 = 0
    ) {
        self.id = id
        self.ledger = ledger
        self.code = code
        self.flags = flags
        self.userData128 = userData128
        self.userData64 = userData64
        self.userData32 = userData32
    }
}

/// A transfer, with TigerBeetle's fields and flags.
package struct Transfer: Hashable, Sendable {
    package struct Flags: OptionSet, Hashable, Sendable {
        package let rawValue: UInt16
        package init(rawValue: UInt16) { self.rawValue = rawValue }
        package static let linked = Flags(rawValue: 1 << 0)
        package static let pending = Flags(rawValue: 1 << 1)
        package static let postPendingTransfer = Flags(rawValue: 1 << 2)
        package static let voidPendingTransfer = Flags(rawValue: 1 << 3)
        package static let balancingDebit = Flags(rawValue: 1 << 4)
        package static let balancingCredit = Flags(rawValue: 1 << 5)
        static let known: Flags = [.linked, .pending, .postPendingTransfer, .voidPendingTransfer, .balancingDebit, .balancingCredit]
    }

    package var id: ID128
    package var debitAccountID: ID128
    package var creditAccountID: ID128
    package var amount: UInt64
    package var pendingID: ID128 = .zero
    package var userData128: ID128 = .zero
    package var userData64: UInt64 = 0
    package var userData32: UInt32 = 0
    /// Seconds after which a pending transfer is voided by the ledger.
    package var timeout: UInt32 = 0
    package var ledger: UInt32
    package var code: UInt16
    package var flags: Flags = []
    package var timestamp: UInt64 = 0

    package init(
        id: ID128, debitAccountID: ID128, creditAccountID: ID128, amount: UInt64, ledger: UInt32, code: UInt16,
        flags: Flags = [], pendingID: ID128 = .zero, timeout: UInt32 = 0, userData128: ID128 = .zero,
        userData64: UInt64 = 0, userData32: UInt32 = 0
    ) {
        self.id = id
        self.debitAccountID = debitAccountID
        self.creditAccountID = creditAccountID
        self.amount = amount
        self.ledger = ledger
        self.code = code
        self.flags = flags
        self.pendingID = pendingID
        self.timeout = timeout
        self.userData128 = userData128
        self.userData64 = userData64
        self.userData32 = userData32
    }
}

/// The outcome of one account in a `createAccounts` batch (TigerBeetle's names).
package enum CreateAccountResult: String, Sendable, Equatable {
    case ok
    case linkedEventFailed = "linked_event_failed"
    case linkedEventChainOpen = "linked_event_chain_open"
    case timestampMustBeZero = "timestamp_must_be_zero"
    case reservedFlag = "reserved_flag"
    case idMustNotBeZero = "id_must_not_be_zero"
    case idMustNotBeIntMax = "id_must_not_be_int_max"
    case flagsAreMutuallyExclusive = "flags_are_mutually_exclusive"
    case debitsPendingMustBeZero = "debits_pending_must_be_zero"
    case debitsPostedMustBeZero = "debits_posted_must_be_zero"
    case creditsPendingMustBeZero = "credits_pending_must_be_zero"
    case creditsPostedMustBeZero = "credits_posted_must_be_zero"
    case ledgerMustNotBeZero = "ledger_must_not_be_zero"
    case codeMustNotBeZero = "code_must_not_be_zero"
    case existsWithDifferentFlags = "exists_with_different_flags"
    case existsWithDifferentUserData128 = "exists_with_different_user_data_128"
    case existsWithDifferentUserData64 = "exists_with_different_user_data_64"
    case existsWithDifferentUserData32 = "exists_with_different_user_data_32"
    case existsWithDifferentLedger = "exists_with_different_ledger"
    case existsWithDifferentCode = "exists_with_different_code"
    case exists
}

/// The outcome of one transfer in a `createTransfers` batch (TigerBeetle's names).
package enum CreateTransferResult: String, Sendable, Equatable {
    case ok
    case linkedEventFailed = "linked_event_failed"
    case linkedEventChainOpen = "linked_event_chain_open"
    case timestampMustBeZero = "timestamp_must_be_zero"
    case reservedFlag = "reserved_flag"
    case idMustNotBeZero = "id_must_not_be_zero"
    case idMustNotBeIntMax = "id_must_not_be_int_max"
    case flagsAreMutuallyExclusive = "flags_are_mutually_exclusive"
    case debitAccountIDMustNotBeZero = "debit_account_id_must_not_be_zero"
    case debitAccountIDMustNotBeIntMax = "debit_account_id_must_not_be_int_max"
    case creditAccountIDMustNotBeZero = "credit_account_id_must_not_be_zero"
    case creditAccountIDMustNotBeIntMax = "credit_account_id_must_not_be_int_max"
    case accountsMustBeDifferent = "accounts_must_be_different"
    case pendingIDMustBeZero = "pending_id_must_be_zero"
    case pendingIDMustNotBeZero = "pending_id_must_not_be_zero"
    case pendingIDMustNotBeIntMax = "pending_id_must_not_be_int_max"
    case pendingIDMustBeDifferent = "pending_id_must_be_different"
    case timeoutReservedForPendingTransfer = "timeout_reserved_for_pending_transfer"
    case ledgerMustNotBeZero = "ledger_must_not_be_zero"
    case codeMustNotBeZero = "code_must_not_be_zero"
    case debitAccountNotFound = "debit_account_not_found"
    case creditAccountNotFound = "credit_account_not_found"
    case accountsMustHaveTheSameLedger = "accounts_must_have_the_same_ledger"
    case transferMustHaveTheSameLedgerAsAccounts = "transfer_must_have_the_same_ledger_as_accounts"
    case pendingTransferNotFound = "pending_transfer_not_found"
    case pendingTransferNotPending = "pending_transfer_not_pending"
    case pendingTransferHasDifferentDebitAccountID = "pending_transfer_has_different_debit_account_id"
    case pendingTransferHasDifferentCreditAccountID = "pending_transfer_has_different_credit_account_id"
    case pendingTransferHasDifferentLedger = "pending_transfer_has_different_ledger"
    case pendingTransferHasDifferentCode = "pending_transfer_has_different_code"
    case exceedsPendingTransferAmount = "exceeds_pending_transfer_amount"
    case pendingTransferHasDifferentAmount = "pending_transfer_has_different_amount"
    case pendingTransferAlreadyPosted = "pending_transfer_already_posted"
    case pendingTransferAlreadyVoided = "pending_transfer_already_voided"
    case pendingTransferExpired = "pending_transfer_expired"
    case existsWithDifferentFlags = "exists_with_different_flags"
    case existsWithDifferentDebitAccountID = "exists_with_different_debit_account_id"
    case existsWithDifferentCreditAccountID = "exists_with_different_credit_account_id"
    case existsWithDifferentAmount = "exists_with_different_amount"
    case existsWithDifferentPendingID = "exists_with_different_pending_id"
    case existsWithDifferentUserData128 = "exists_with_different_user_data_128"
    case existsWithDifferentUserData64 = "exists_with_different_user_data_64"
    case existsWithDifferentUserData32 = "exists_with_different_user_data_32"
    case existsWithDifferentTimeout = "exists_with_different_timeout"
    case existsWithDifferentCode = "exists_with_different_code"
    case existsWithDifferentLedger = "exists_with_different_ledger"
    case exists
    case overflowsDebitsPending = "overflows_debits_pending"
    case overflowsCreditsPending = "overflows_credits_pending"
    case overflowsDebitsPosted = "overflows_debits_posted"
    case overflowsCreditsPosted = "overflows_credits_posted"
    case overflowsDebits = "overflows_debits"
    case overflowsCredits = "overflows_credits"
    case overflowsTimeout = "overflows_timeout"
    case exceedsCredits = "exceeds_credits"
    case exceedsDebits = "exceeds_debits"
    case debitAccountAlreadyClosed = "debit_account_already_closed"
    case creditAccountAlreadyClosed = "credit_account_already_closed"
}

/// Limits of the ledger.
package enum LedgerLimits {
    /// Pending transfers the expiry sweep releases in one transaction.
    package static let expirySweepMaxTransfers = 1_000
    /// Pause between two expiry sweeps.
    package static let expirySweepIntervalNanoseconds: UInt64 = 1_000_000_000
    /// Results a query returns when it names no limit.
    package static let defaultQueryResults = 1_000

    /// The relations between the limits; checked once when a store is made.
    package static func assertRelations() {
        precondition(defaultQueryResults <= maxQueryResults, "the default page is a page")
        precondition(HostLimits.listMaxRows <= maxQueryResults, "a listing can be answered by one query")
        precondition(expirySweepMaxTransfers <= maxBatchEvents, "a sweep changes no more than a batch may")
    }
    /// Events per `createAccounts` / `createTransfers` batch (TigerBeetle's current limit).
    package static let maxBatchEvents = 8_189
    /// Rows one query returns (transfers or balance-history rows of an account).
    package static let maxQueryResults = 8_189
    /// Times the transfer batcher yields, waiting for the callers of the last batch to send again
    /// before it starts the next one (it starts sooner once as many wait as went last time).
    package static let maxBatchGatherYields = 8
    /// Accounts a store keeps in memory between batches (see `LedgerAccountCache`).
    package static let maxCachedAccounts = 100_000
}

/// An account's balances right after one change, kept for accounts with the `history` flag
/// (TigerBeetle's `AccountBalance`, with what caused the change).
package struct AccountBalance: Hashable, Sendable {
    package var accountID: ID128
    package var debitsPending: UInt64
    package var debitsPosted: UInt64
    package var creditsPending: UInt64
    package var creditsPosted: UInt64
    /// The timestamp of the transfer that moved the balances (or of the pending transfer's expiry).
    package var timestamp: UInt64
    /// That transfer (for an expiry: the pending transfer that expired).
    package var transferID: ID128
    /// That transfer's code.
    package var code: UInt16
    /// Whether the account was that transfer's debit account.
    package var debited: Bool

    package init(
        accountID: ID128, debitsPending: UInt64, debitsPosted: UInt64, creditsPending: UInt64, creditsPosted: UInt64,
        timestamp: UInt64, transferID: ID128, code: UInt16, debited: Bool
    ) {
        self.accountID = accountID
        self.debitsPending = debitsPending
        self.debitsPosted = debitsPosted
        self.creditsPending = creditsPending
        self.creditsPosted = creditsPosted
        self.timestamp = timestamp
        self.transferID = transferID
        self.code = code
        self.debited = debited
    }

    init(_ account: Account, timestamp: UInt64, transferID: ID128, code: UInt16, debited: Bool) {
        self.init(
            accountID: account.id, debitsPending: account.debitsPending, debitsPosted: account.debitsPosted,
            creditsPending: account.creditsPending, creditsPosted: account.creditsPosted, timestamp: timestamp,
            transferID: transferID, code: code, debited: debited)
    }
}

/// Which of an account's transfers (or balance-history rows) a query returns: TigerBeetle's
/// `AccountFilter` without the account. Timestamps are inclusive bounds (0 = unbounded); a
/// page continues from the last timestamp seen with `continuing(after:)`.
package struct TransferFilter: Hashable, Sendable {
    package struct Flags: OptionSet, Hashable, Sendable {
        package let rawValue: UInt32
        package init(rawValue: UInt32) { self.rawValue = rawValue }
        /// Transfers where the account is debited.
        package static let debits = Flags(rawValue: 1 << 0)
        /// Transfers where the account is credited.
        package static let credits = Flags(rawValue: 1 << 1)
        /// Newest first.
        package static let reversed = Flags(rawValue: 1 << 2)
    }

    /// Only transfers with this code (0 = any).
    package var code: UInt16
    package var timestampMin: UInt64
    package var timestampMax: UInt64
    /// At most this many (capped at `LedgerLimits.maxQueryResults`).
    package var limit: Int
    package var flags: Flags

    package init(
        code: UInt16 = 0, timestampMin: UInt64 = 0, timestampMax: UInt64 = 0, limit: Int = LedgerLimits.maxQueryResults,
        flags: Flags = [.debits, .credits]
    ) {
        self.code = code
        self.timestampMin = timestampMin
        self.timestampMax = timestampMax
        self.limit = limit
        self.flags = flags
    }

    /// The next page after one whose last row had `cursor` as its timestamp (older for `reversed`).
    package func continuing(after cursor: UInt64) -> TransferFilter {
        var next = self
        if flags.contains(.reversed) {
            next.timestampMax = cursor <= 1 ? 1 : min(timestampMax == 0 ? .max : timestampMax, cursor - 1)
            if cursor <= 1 { next.limit = 0 }
        } else {
            next.timestampMin = max(timestampMin, cursor &+ 1)
        }
        return next
    }

    /// An empty answer without asking the database (TigerBeetle: an invalid filter finds nothing).
    var findsNothing: Bool {
        limit <= 0 || flags.intersection([.debits, .credits]).isEmpty
            || (timestampMax != 0 && timestampMin > timestampMax) || timestampMin > UInt64(Int64.max)
    }

    /// Bounds as stored (signed 64-bit).
    var storedRange: (min: Int64, max: Int64) {
        (Int64(min(timestampMin, UInt64(Int64.max))), timestampMax == 0 ? Int64.max : Int64(min(timestampMax, UInt64(Int64.max))))
    }
}
