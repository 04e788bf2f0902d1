import LedgerPlugin

/// A second, deliberately plain statement of TigerBeetle's transfer rules, written apart from
/// `LedgerState` (it shares only the value types) so the randomised test compares two
/// implementations, not one with itself. It covers what the test generates: posted and pending
/// transfers, post and void (full, partial, too much), expiry, duplicates, wrong ledgers, missing
/// accounts, the two balance limits and linked chains.
///
/// Time is counted in phases: a phase is `phaseSeconds` long and every batch of phase k is
/// applied at its start, so a pending transfer with timeout T made in phase k has expired by
/// phase j exactly when (j − k) × phaseSeconds > T (timeouts are never multiples of a phase).
struct LedgerModel {
    static let phaseSeconds: UInt64 = 1_000

    struct Balances: Equatable, CustomStringConvertible {
        var debitsPending: UInt64 = 0, debitsPosted: UInt64 = 0, creditsPending: UInt64 = 0, creditsPosted: UInt64 = 0
        var description: String { "dp \(debitsPending) dP \(debitsPosted) cp \(creditsPending) cP \(creditsPosted)" }
    }

    struct ModelAccount {
        let ledger: UInt32
        let flags: Account.Flags
        var balances = Balances()
    }

    enum Status { case pending, posted, voided, expired }

    private(set) var accounts: [ID128: ModelAccount] = [:]
    private(set) var transfers: [ID128: Transfer] = [:]
    private var status: [ID128: Status] = [:]
    private var madeInPhase: [ID128: Int] = [:]

    mutating func addAccount(_ a: Account) { accounts[a.id] = ModelAccount(ledger: a.ledger, flags: a.flags) }

    func balances(_ id: ID128) -> Balances? { accounts[id]?.balances }

    /// Releases pending transfers whose timeout has passed by the start of `phase`.
    mutating func expire(phase: Int) {
        for (id, s) in status where s == .pending {
            let p = transfers[id]!
            guard p.timeout != 0, UInt64(phase - madeInPhase[id]!) * Self.phaseSeconds > UInt64(p.timeout) else { continue }
            accounts[p.debitAccountID]!.balances.debitsPending -= p.amount
            accounts[p.creditAccountID]!.balances.creditsPending -= p.amount
            status[id] = .expired
        }
    }

    /// One batch: chains are contiguous runs of linked events; a failing member fails the rest.
    mutating func submit(_ batch: [Transfer], phase: Int) -> [CreateTransferResult] {
        var results: [CreateTransferResult] = []
        var i = 0
        while i < batch.count {
            guard batch[i].flags.contains(.linked) else {
                results.append(apply(batch[i], phase: phase))
                i += 1
                continue
            }
            var end = i
            while end < batch.count - 1 && batch[end].flags.contains(.linked) { end += 1 }
            let open = batch[end].flags.contains(.linked)
            var trial = self
            var chain: [CreateTransferResult] = []
            var broken = false
            for k in i...end {
                if open && k == end {
                    chain.append(.linkedEventChainOpen)
                } else if broken {
                    chain.append(.linkedEventFailed)
                } else {
                    let r = trial.apply(batch[k], phase: phase)
                    chain.append(r)
                    broken = r != .ok
                }
            }
            if broken || open {
                chain = chain.map { $0 == .ok ? .linkedEventFailed : $0 }
            } else {
                self = trial
            }
            results += chain
            i = end + 1
        }
        return results
    }

    mutating func apply(_ t: Transfer, phase: Int) -> CreateTransferResult {
        if t.flags.contains(.postPendingTransfer) || t.flags.contains(.voidPendingTransfer) { return resolve(t, phase: phase) }
        if t.debitAccountID == t.creditAccountID { return .accountsMustBeDifferent }
        guard let dr = accounts[t.debitAccountID] else { return .debitAccountNotFound }
        guard let cr = accounts[t.creditAccountID] else { return .creditAccountNotFound }
        if dr.ledger != cr.ledger { return .accountsMustHaveTheSameLedger }
        if t.ledger != dr.ledger { return .transferMustHaveTheSameLedgerAsAccounts }
        if let e = transfers[t.id] { return compare(t, existing: e) }
        let pending = t.flags.contains(.pending)
        let d = dr.balances
        let c = cr.balances
        if dr.flags.contains(.debitsMustNotExceedCredits) && d.debitsPending + d.debitsPosted + t.amount > d.creditsPosted { return .exceedsCredits }
        if cr.flags.contains(.creditsMustNotExceedDebits) && c.creditsPending + c.creditsPosted + t.amount > c.debitsPosted { return .exceedsDebits }
        if pending {
            accounts[t.debitAccountID]!.balances.debitsPending += t.amount
            accounts[t.creditAccountID]!.balances.creditsPending += t.amount
            status[t.id] = .pending
            madeInPhase[t.id] = phase
        } else {
            accounts[t.debitAccountID]!.balances.debitsPosted += t.amount
            accounts[t.creditAccountID]!.balances.creditsPosted += t.amount
        }
        transfers[t.id] = t
        return .ok
    }

    /// Post or void.
    private mutating func resolve(_ t: Transfer, phase: Int) -> CreateTransferResult {
        let post = t.flags.contains(.postPendingTransfer)
        guard let p = transfers[t.pendingID] else { return .pendingTransferNotFound }
        if !p.flags.contains(.pending) { return .pendingTransferNotPending }
        if !t.debitAccountID.isZero && t.debitAccountID != p.debitAccountID { return .pendingTransferHasDifferentDebitAccountID }
        if !t.creditAccountID.isZero && t.creditAccountID != p.creditAccountID { return .pendingTransferHasDifferentCreditAccountID }
        if t.ledger != 0 && t.ledger != p.ledger { return .pendingTransferHasDifferentLedger }
        if t.code != 0 && t.code != p.code { return .pendingTransferHasDifferentCode }
        let amount = t.amount == 0 ? p.amount : t.amount
        if post && amount > p.amount { return .exceedsPendingTransferAmount }
        if !post && amount != p.amount { return .pendingTransferHasDifferentAmount }
        if let e = transfers[t.id] { return compare(t, existing: e) }
        switch status[p.id]! {
        case .posted: return .pendingTransferAlreadyPosted
        case .voided: return .pendingTransferAlreadyVoided
        case .expired: return .pendingTransferExpired
        case .pending: break
        }
        accounts[p.debitAccountID]!.balances.debitsPending -= p.amount
        accounts[p.creditAccountID]!.balances.creditsPending -= p.amount
        if post {
            accounts[p.debitAccountID]!.balances.debitsPosted += amount
            accounts[p.creditAccountID]!.balances.creditsPosted += amount
        }
        var stored = t
        stored.debitAccountID = p.debitAccountID
        stored.creditAccountID = p.creditAccountID
        stored.ledger = p.ledger
        stored.code = p.code
        stored.amount = amount
        transfers[t.id] = stored
        status[p.id] = post ? .posted : .voided
        return .ok
    }

    /// The same id again: the first field that differs, in TigerBeetle's order.
    private func compare(_ t: Transfer, existing e: Transfer) -> CreateTransferResult {
        let resolving = t.flags.contains(.postPendingTransfer) || t.flags.contains(.voidPendingTransfer)
        if t.flags.subtracting(.linked) != e.flags.subtracting(.linked) { return .existsWithDifferentFlags }
        if !resolving && t.debitAccountID != e.debitAccountID { return .existsWithDifferentDebitAccountID }
        if !resolving && t.creditAccountID != e.creditAccountID { return .existsWithDifferentCreditAccountID }
        if t.amount != 0 && t.amount != e.amount { return .existsWithDifferentAmount }
        if t.pendingID != e.pendingID { return .existsWithDifferentPendingID }
        if t.userData128 != e.userData128 { return .existsWithDifferentUserData128 }
        if t.userData64 != e.userData64 { return .existsWithDifferentUserData64 }
        if t.userData32 != e.userData32 { return .existsWithDifferentUserData32 }
        if t.timeout != e.timeout { return .existsWithDifferentTimeout }
        if t.code != 0 && t.code != e.code { return .existsWithDifferentCode }
        if t.ledger != 0 && t.ledger != e.ledger { return .existsWithDifferentLedger }
        return .exists
    }
}

/// SplitMix64: a small seeded generator, so a failing run can be repeated.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
