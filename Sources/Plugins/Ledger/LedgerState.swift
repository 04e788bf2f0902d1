/// The ledger's rules as a pure value, with TigerBeetle's semantics: batches of accounts and
/// transfers go in, one result per event comes out, and the balances move only for events that
/// succeed. Linked chains are all-or-nothing; the same id with the same fields is `exists` and
/// changes nothing; amounts never wrap (an overflow is a result code). The storage around it
/// loads the accounts and transfers a batch touches, applies the batch here, and writes back.
package struct LedgerState: Sendable {
    package enum PendingStatus: String, Sendable { case pending, posted, voided, expired }

    package private(set) var accounts: [ID128: Account] = [:]
    package private(set) var transfers: [ID128: Transfer] = [:]
    package private(set) var pendingStatus: [ID128: PendingStatus] = [:]
    /// The last timestamp assigned (nanoseconds); every new one is strictly greater.
    package private(set) var lastTimestamp: UInt64 = 0
    /// The balances after each change of an account with the `history` flag, in the order
    /// applied (append-only; a failed linked chain takes its rows back with it).
    package private(set) var balanceHistory: [AccountBalance] = []

    package init(accounts: [Account] = [], transfers: [Transfer] = [], pendingStatus: [ID128: PendingStatus] = [:], lastTimestamp: UInt64 = 0) {
        for account in accounts { self.accounts[account.id] = account }
        for transfer in transfers { self.transfers[transfer.id] = transfer }
        self.pendingStatus = pendingStatus
        self.lastTimestamp = lastTimestamp
    }

    private mutating func nextTimestamp(_ now: UInt64) -> UInt64 {
        lastTimestamp = Swift.max(lastTimestamp + 1, now)
        return lastTimestamp
    }

    // MARK: batches with linked chains

    /// Runs `apply` over a batch with TigerBeetle's linked-chain rules.
    private mutating func runBatch<Event, Result: Equatable>(
        _ batch: [Event], linked: (Event) -> Bool, ok: Result, linkedFailed: Result, chainOpen: Result,
        apply: (inout LedgerState, Event) -> Result
    ) -> [Result] {
        precondition(batch.count <= LedgerLimits.maxBatchEvents, "batch larger than \(LedgerLimits.maxBatchEvents)")
        var results = [Result](repeating: ok, count: batch.count)
        var chainStart: Int?
        var chainSnapshot: LedgerState?
        var chainFailed = false
        for (index, event) in batch.enumerated() {
            let isLinked = linked(event)
            if chainStart == nil && isLinked {
                chainStart = index
                chainSnapshot = self
                chainFailed = false
            }
            // As TigerBeetle's: an open chain's last event says so even when the chain already broke.
            if isLinked && index == batch.count - 1 {
                results[index] = chainOpen
                chainFailed = true
            } else if chainFailed {
                results[index] = linkedFailed
            } else {
                let result = apply(&self, event)
                results[index] = result
                if result != ok && chainStart != nil { chainFailed = true }
            }
            // A chain ends at its first event without the linked flag (or the batch's end).
            if let start = chainStart, !isLinked || index == batch.count - 1 {
                if chainFailed {
                    self = chainSnapshot!
                    for i in start...index where results[i] == ok { results[i] = linkedFailed }
                }
                chainStart = nil
                chainSnapshot = nil
                chainFailed = false
            }
        }
        return results
    }

    // MARK: accounts

    package mutating func createAccounts(_ batch: [Account], now: UInt64) -> [CreateAccountResult] {
        runBatch(
            batch, linked: { $0.flags.contains(.linked) }, ok: .ok, linkedFailed: .linkedEventFailed,
            chainOpen: .linkedEventChainOpen
        ) { state, account in state.createAccount(account, now: now) }
    }

    private mutating func createAccount(_ a: Account, now: UInt64) -> CreateAccountResult {
        if a.timestamp != 0 { return .timestampMustBeZero }
        if !a.flags.isSubset(of: Account.Flags.known) { return .reservedFlag }
        if a.id.isZero { return .idMustNotBeZero }
        if a.id == .max { return .idMustNotBeIntMax }
        if a.flags.contains(.debitsMustNotExceedCredits) && a.flags.contains(.creditsMustNotExceedDebits) {
            return .flagsAreMutuallyExclusive
        }
        if a.debitsPending != 0 { return .debitsPendingMustBeZero }
        if a.debitsPosted != 0 { return .debitsPostedMustBeZero }
        if a.creditsPending != 0 { return .creditsPendingMustBeZero }
        if a.creditsPosted != 0 { return .creditsPostedMustBeZero }
        if a.ledger == 0 { return .ledgerMustNotBeZero }
        if a.code == 0 { return .codeMustNotBeZero }
        if let e = accounts[a.id] {
            if e.flags.subtracting(.linked) != a.flags.subtracting(.linked) { return .existsWithDifferentFlags }
            if e.userData128 != a.userData128 { return .existsWithDifferentUserData128 }
            if e.userData64 != a.userData64 { return .existsWithDifferentUserData64 }
            if e.userData32 != a.userData32 { return .existsWithDifferentUserData32 }
            if e.ledger != a.ledger { return .existsWithDifferentLedger }
            if e.code != a.code { return .existsWithDifferentCode }
            return .exists
        }
        var created = a
        created.timestamp = nextTimestamp(now)
        accounts[a.id] = created
        return .ok
    }

    // MARK: transfers

    package mutating func createTransfers(_ batch: [Transfer], now: UInt64) -> [CreateTransferResult] {
        transfers.reserveCapacity(transfers.count + batch.count)
        return runBatch(
            batch, linked: { $0.flags.contains(.linked) }, ok: .ok, linkedFailed: .linkedEventFailed,
            chainOpen: .linkedEventChainOpen
        ) { state, transfer in state.createTransfer(transfer, now: now) }
    }

    private mutating func createTransfer(_ t: Transfer, now: UInt64) -> CreateTransferResult {
        if t.timestamp != 0 { return .timestampMustBeZero }
        if !t.flags.isSubset(of: Transfer.Flags.known) { return .reservedFlag }
        if t.id.isZero { return .idMustNotBeZero }
        if t.id == .max { return .idMustNotBeIntMax }
        let postOrVoid = t.flags.intersection([.postPendingTransfer, .voidPendingTransfer])
        if t.flags.contains(.postPendingTransfer) && t.flags.contains(.voidPendingTransfer) { return .flagsAreMutuallyExclusive }
        if t.flags.contains(.pending) && !postOrVoid.isEmpty { return .flagsAreMutuallyExclusive }
        if !t.flags.intersection([.balancingDebit, .balancingCredit]).isEmpty && !postOrVoid.isEmpty { return .flagsAreMutuallyExclusive }
        if !postOrVoid.isEmpty { return postOrVoidPending(t, now: now) }

        if t.debitAccountID.isZero { return .debitAccountIDMustNotBeZero }
        if t.debitAccountID == .max { return .debitAccountIDMustNotBeIntMax }
        if t.creditAccountID.isZero { return .creditAccountIDMustNotBeZero }
        if t.creditAccountID == .max { return .creditAccountIDMustNotBeIntMax }
        if t.creditAccountID == t.debitAccountID { return .accountsMustBeDifferent }
        if !t.pendingID.isZero { return .pendingIDMustBeZero }
        if !t.flags.contains(.pending) && t.timeout != 0 { return .timeoutReservedForPendingTransfer }
        if t.ledger == 0 { return .ledgerMustNotBeZero }
        if t.code == 0 { return .codeMustNotBeZero }
        guard var dr = accounts[t.debitAccountID] else { return .debitAccountNotFound }
        guard var cr = accounts[t.creditAccountID] else { return .creditAccountNotFound }
        if dr.ledger != cr.ledger { return .accountsMustHaveTheSameLedger }
        if t.ledger != dr.ledger { return .transferMustHaveTheSameLedgerAsAccounts }
        if let e = transfers[t.id] { return existing(t, e) }
        if dr.flags.contains(.closed) { return .debitAccountAlreadyClosed }
        if cr.flags.contains(.closed) { return .creditAccountAlreadyClosed }

        var amount = t.amount
        if t.flags.contains(.balancingDebit) {
            let available = dr.creditsPosted.subtractingSaturating(dr.debitsPosted).subtractingSaturating(dr.debitsPending)
            amount = Swift.min(amount, available)
        }
        if t.flags.contains(.balancingCredit) {
            let available = cr.debitsPosted.subtractingSaturating(cr.creditsPosted).subtractingSaturating(cr.creditsPending)
            amount = Swift.min(amount, available)
        }

        let pending = t.flags.contains(.pending)
        if pending {
            if dr.debitsPending.addingReportingOverflow(amount).overflow { return .overflowsDebitsPending }
            if cr.creditsPending.addingReportingOverflow(amount).overflow { return .overflowsCreditsPending }
        } else {
            if dr.debitsPosted.addingReportingOverflow(amount).overflow { return .overflowsDebitsPosted }
            if cr.creditsPosted.addingReportingOverflow(amount).overflow { return .overflowsCreditsPosted }
        }
        guard let drTotal = sum(dr.debitsPending, dr.debitsPosted, amount) else { return .overflowsDebits }
        guard let crTotal = sum(cr.creditsPending, cr.creditsPosted, amount) else { return .overflowsCredits }
        if pending && t.timeout != 0 && now.addingReportingOverflow(UInt64(t.timeout) * 1_000_000_000).overflow { return .overflowsTimeout }
        if dr.flags.contains(.debitsMustNotExceedCredits) && drTotal > dr.creditsPosted { return .exceedsCredits }
        if cr.flags.contains(.creditsMustNotExceedDebits) && crTotal > cr.debitsPosted { return .exceedsDebits }

        if pending {
            dr.debitsPending += amount
            cr.creditsPending += amount
        } else {
            dr.debitsPosted += amount
            cr.creditsPosted += amount
        }
        accounts[dr.id] = dr
        accounts[cr.id] = cr
        var stored = t
        stored.amount = amount
        stored.timestamp = nextTimestamp(now)
        transfers[t.id] = stored
        if pending { pendingStatus[t.id] = .pending }
        recordHistory(dr, cr, transferID: t.id, code: t.code, timestamp: stored.timestamp)
        return .ok
    }

    private func sum(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> UInt64? {
        let (ab, o1) = a.addingReportingOverflow(b)
        let (abc, o2) = ab.addingReportingOverflow(c)
        return o1 || o2 ? nil : abc
    }

    private func existing(_ t: Transfer, _ e: Transfer) -> CreateTransferResult {
        if e.flags.subtracting(.linked) != t.flags.subtracting(.linked) { return .existsWithDifferentFlags }
        if !t.flags.contains(.postPendingTransfer) && !t.flags.contains(.voidPendingTransfer) {
            if e.debitAccountID != t.debitAccountID { return .existsWithDifferentDebitAccountID }
            if e.creditAccountID != t.creditAccountID { return .existsWithDifferentCreditAccountID }
        }
        let balancing = !t.flags.intersection([.balancingDebit, .balancingCredit]).isEmpty
        if !balancing && t.amount != 0 && e.amount != t.amount { return .existsWithDifferentAmount }
        if balancing && t.amount < e.amount { return .existsWithDifferentAmount }
        if e.pendingID != t.pendingID { return .existsWithDifferentPendingID }
        if e.userData128 != t.userData128 { return .existsWithDifferentUserData128 }
        if e.userData64 != t.userData64 { return .existsWithDifferentUserData64 }
        if e.userData32 != t.userData32 { return .existsWithDifferentUserData32 }
        if e.timeout != t.timeout { return .existsWithDifferentTimeout }
        if t.code != 0 && e.code != t.code { return .existsWithDifferentCode }
        if t.ledger != 0 && e.ledger != t.ledger { return .existsWithDifferentLedger }
        return .exists
    }

    /// Posts (up to the pending amount; 0 posts all of it) or voids a pending transfer.
    private mutating func postOrVoidPending(_ t: Transfer, now: UInt64) -> CreateTransferResult {
        let post = t.flags.contains(.postPendingTransfer)
        if t.pendingID.isZero { return .pendingIDMustNotBeZero }
        if t.pendingID == .max { return .pendingIDMustNotBeIntMax }
        if t.pendingID == t.id { return .pendingIDMustBeDifferent }
        if t.timeout != 0 { return .timeoutReservedForPendingTransfer }
        guard let p = transfers[t.pendingID] else { return .pendingTransferNotFound }
        if !p.flags.contains(.pending) { return .pendingTransferNotPending }
        if !t.debitAccountID.isZero && t.debitAccountID != p.debitAccountID { return .pendingTransferHasDifferentDebitAccountID }
        if !t.creditAccountID.isZero && t.creditAccountID != p.creditAccountID { return .pendingTransferHasDifferentCreditAccountID }
        if t.ledger != 0 && t.ledger != p.ledger { return .pendingTransferHasDifferentLedger }
        if t.code != 0 && t.code != p.code { return .pendingTransferHasDifferentCode }
        let amount = t.amount == 0 ? p.amount : t.amount
        if post && amount > p.amount { return .exceedsPendingTransferAmount }
        if !post && amount != p.amount { return .pendingTransferHasDifferentAmount }
        if let e = transfers[t.id] { return existing(t, e) }
        switch pendingStatus[p.id] ?? .pending {
        case .posted: return .pendingTransferAlreadyPosted
        case .voided: return .pendingTransferAlreadyVoided
        case .expired: return .pendingTransferExpired
        case .pending: break
        }
        if p.timeout != 0 && now >= p.timestamp &+ UInt64(p.timeout) * 1_000_000_000 { return .pendingTransferExpired }
        guard var dr = accounts[p.debitAccountID], var cr = accounts[p.creditAccountID] else { return .pendingTransferNotFound }
        if post {
            if dr.debitsPosted.addingReportingOverflow(amount).overflow { return .overflowsDebitsPosted }
            if cr.creditsPosted.addingReportingOverflow(amount).overflow { return .overflowsCreditsPosted }
        }
        dr.debitsPending -= p.amount
        cr.creditsPending -= p.amount
        if post {
            dr.debitsPosted += amount
            cr.creditsPosted += amount
        }
        accounts[dr.id] = dr
        accounts[cr.id] = cr
        var stored = t
        stored.debitAccountID = p.debitAccountID
        stored.creditAccountID = p.creditAccountID
        stored.ledger = p.ledger
        stored.code = p.code
        stored.amount = post ? amount : p.amount
        stored.timestamp = nextTimestamp(now)
        transfers[t.id] = stored
        pendingStatus[p.id] = post ? .posted : .voided
        recordHistory(dr, cr, transferID: t.id, code: p.code, timestamp: stored.timestamp)
        return .ok
    }

    // MARK: expiry and invariants

    /// Appends the balances of the accounts a transfer moved, for those with the `history` flag.
    private mutating func recordHistory(_ dr: Account, _ cr: Account, transferID: ID128, code: UInt16, timestamp: UInt64) {
        if dr.flags.contains(.history) {
            balanceHistory.append(AccountBalance(dr, timestamp: timestamp, transferID: transferID, code: code, debited: true))
        }
        if cr.flags.contains(.history) {
            balanceHistory.append(AccountBalance(cr, timestamp: timestamp, transferID: transferID, code: code, debited: false))
        }
    }

    /// Releases every pending transfer whose timeout has passed; returns their ids. Nobody needs
    /// to call post or void for the funds to come back. Each expiry takes a timestamp of its own
    /// (as TigerBeetle's), so balance history shows when the funds came back.
    package mutating func expirePending(now: UInt64) -> [ID128] {
        var expired: [ID128] = []
        for id in pendingStatus.keys.sorted() where pendingStatus[id] == .pending {
            guard let p = transfers[id], p.timeout != 0, now >= p.timestamp &+ UInt64(p.timeout) * 1_000_000_000 else { continue }
            if var dr = accounts[p.debitAccountID], var cr = accounts[p.creditAccountID] {
                dr.debitsPending -= p.amount
                cr.creditsPending -= p.amount
                accounts[dr.id] = dr
                accounts[cr.id] = cr
                if dr.flags.contains(.history) || cr.flags.contains(.history) {
                    recordHistory(dr, cr, transferID: id, code: p.code, timestamp: nextTimestamp(now))
                }
            }
            pendingStatus[id] = .expired
            expired.append(id)
        }
        return expired
    }

    /// What is wrong with the whole state, if anything: every ledger's posted and pending debits
    /// equal its credits, and no account's balance breaks its own flags.
    package func invariantViolations() -> [LedgerInvariantViolation] {
        Self.violations(of: accounts.values, before: [:])
    }

    /// What is wrong with a batch's effect, checked over the accounts it touched (`before`: those
    /// accounts as loaded; an account missing there was created by the batch, from zero). Per
    /// ledger, the posted and pending debits must have moved by exactly as much as the credits;
    /// every account that changed must still satisfy its flags.
    package func batchViolations(before: [ID128: Account]) -> [LedgerInvariantViolation] {
        Self.violations(of: accounts.values.filter { before[$0.id] != $0 }, before: before)
    }

    private static func violations(of changed: some Sequence<Account>, before: [ID128: Account]) -> [LedgerInvariantViolation] {
        var byLedger: [UInt32: LedgerInvariantViolation.Movement] = [:]
        var problems: [LedgerInvariantViolation] = []
        for account in changed {
            let old = before[account.id]
            var sums = byLedger[account.ledger] ?? LedgerInvariantViolation.Movement()
            sums.debitsPosted += Int128(account.debitsPosted) - Int128(old?.debitsPosted ?? 0)
            sums.creditsPosted += Int128(account.creditsPosted) - Int128(old?.creditsPosted ?? 0)
            sums.debitsPending += Int128(account.debitsPending) - Int128(old?.debitsPending ?? 0)
            sums.creditsPending += Int128(account.creditsPending) - Int128(old?.creditsPending ?? 0)
            byLedger[account.ledger] = sums
            if account.flags.contains(.debitsMustNotExceedCredits),
                UInt128(account.debitsPosted) + UInt128(account.debitsPending) > UInt128(account.creditsPosted)
            {
                problems.append(.debitsExceedCredits(account: account.id))
            }
            if account.flags.contains(.creditsMustNotExceedDebits),
                UInt128(account.creditsPosted) + UInt128(account.creditsPending) > UInt128(account.debitsPosted)
            {
                problems.append(.creditsExceedDebits(account: account.id))
            }
        }
        for (ledger, sums) in byLedger.sorted(by: { $0.key < $1.key }) where !sums.isBalanced {
            problems.append(.unbalanced(ledger: ledger, sums))
        }
        return problems
    }
}

/// A broken rule of double entry. Never expected: the store stops rather than commit one.
package enum LedgerInvariantViolation: Equatable, Sendable, CustomStringConvertible {
    /// How far a ledger's debits and credits moved (or stand, for a whole state).
    package struct Movement: Equatable, Sendable {
        package init(debitsPosted: Int128 = 0, creditsPosted: Int128 = 0, debitsPending: Int128 = 0, creditsPending: Int128 = 0) {
            self.debitsPosted = debitsPosted
            self.creditsPosted = creditsPosted
            self.debitsPending = debitsPending
            self.creditsPending = creditsPending
        }

        package var debitsPosted: Int128 = 0
        package var creditsPosted: Int128 = 0
        package var debitsPending: Int128 = 0
        package var creditsPending: Int128 = 0
        var isBalanced: Bool { debitsPosted == creditsPosted && debitsPending == creditsPending }
    }

    case unbalanced(ledger: UInt32, Movement)
    case debitsExceedCredits(account: ID128)
    case creditsExceedDebits(account: ID128)

    package var description: String {
        switch self {
        case .unbalanced(let ledger, let m):
            return "ledger \(ledger): posted debits \(m.debitsPosted) vs credits \(m.creditsPosted), "
                + "pending debits \(m.debitsPending) vs credits \(m.creditsPending)"
        case .debitsExceedCredits(let account): return "account \(account): debits exceed credits"
        case .creditsExceedDebits(let account): return "account \(account): credits exceed debits"
        }
    }
}

extension UInt64 {
    func subtractingSaturating(_ other: UInt64) -> UInt64 { self > other ? self - other : 0 }
}
