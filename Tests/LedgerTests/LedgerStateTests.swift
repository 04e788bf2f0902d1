import LedgerPlugin
import Testing

private func id(_ n: UInt64) -> ID128 { ID128(low: n) }

/// Accounts 1 (operator, may go negative), 2 and 3 (users that must not overdraw) on ledger 1,
/// and 9 on ledger 2.
private func ledger() -> LedgerState {
    var state = LedgerState()
    let results = state.createAccounts(
        [
            Account(id: id(1), ledger: 1, code: 1001),
            Account(id: id(2), ledger: 1, code: 2001, flags: .debitsMustNotExceedCredits),
            Account(id: id(3), ledger: 1, code: 2001, flags: .debitsMustNotExceedCredits),
            Account(id: id(9), ledger: 2, code: 2001),
        ], now: 1_000)
    precondition(results.allSatisfy { $0 == .ok })
    return state
}

private func transfer(
    _ n: UInt64, _ from: UInt64, _ to: UInt64, _ amount: UInt64, flags: Transfer.Flags = [],
    pending: UInt64 = 0, timeout: UInt32 = 0, ledger: UInt32 = 1
) -> Transfer {
    Transfer(
        id: id(n), debitAccountID: id(from), creditAccountID: id(to), amount: amount, ledger: ledger, code: 2001,
        flags: flags, pendingID: id(pending), timeout: timeout)
}

@Suite("Ledger rules (TigerBeetle semantics)")
struct LedgerStateTests {
    @Test("account creation results")
    func accountResults() {
        var state = ledger()
        let results = state.createAccounts(
            [
                Account(id: id(0), ledger: 1, code: 1),
                Account(id: .max, ledger: 1, code: 1),
                Account(id: id(20), ledger: 0, code: 1),
                Account(id: id(21), ledger: 1, code: 0),
                Account(id: id(22), ledger: 1, code: 1, flags: [.debitsMustNotExceedCredits, .creditsMustNotExceedDebits]),
                Account(id: id(1), ledger: 1, code: 1001),
                Account(id: id(1), ledger: 1, code: 7),
                Account(id: id(1), ledger: 3, code: 1001),
                Account(id: id(2), ledger: 1, code: 2001),
            ], now: 2_000)
        #expect(
            results == [
                .idMustNotBeZero, .idMustNotBeIntMax, .ledgerMustNotBeZero, .codeMustNotBeZero,
                .flagsAreMutuallyExclusive, .exists, .existsWithDifferentCode, .existsWithDifferentLedger,
                .existsWithDifferentFlags,
            ])
    }

    @Test("a posted transfer moves balances; the same id again is exists and changes nothing")
    func postedAndIdempotent() {
        var state = ledger()
        #expect(state.createTransfers([transfer(100, 1, 2, 500)], now: 2_000) == [.ok])
        #expect(state.accounts[id(1)]?.debitsPosted == 500)
        #expect(state.accounts[id(2)]?.creditsPosted == 500)
        #expect(state.createTransfers([transfer(100, 1, 2, 500)], now: 3_000) == [.exists])
        #expect(state.createTransfers([transfer(100, 1, 2, 501)], now: 3_000) == [.existsWithDifferentAmount])
        #expect(state.createTransfers([transfer(100, 1, 3, 500)], now: 3_000) == [.existsWithDifferentCreditAccountID])
        #expect(state.accounts[id(2)]?.creditsPosted == 500)
        #expect(state.invariantViolations().isEmpty)
    }

    @Test(
        "transfer validation results",
        arguments: [
            (transfer(0, 1, 2, 1), CreateTransferResult.idMustNotBeZero),
            (transfer(101, 1, 1, 1), .accountsMustBeDifferent),
            (transfer(102, 0, 2, 1), .debitAccountIDMustNotBeZero),
            (transfer(103, 1, 77, 1), .creditAccountNotFound),
            (transfer(104, 77, 2, 1), .debitAccountNotFound),
            (transfer(105, 1, 9, 1), .accountsMustHaveTheSameLedger),
            (transfer(106, 1, 2, 1, ledger: 2), .transferMustHaveTheSameLedgerAsAccounts),
            (transfer(107, 2, 1, 1), .exceedsCredits),
            (transfer(108, 1, 2, 1, timeout: 5), .timeoutReservedForPendingTransfer),
            (transfer(109, 1, 2, 1, pending: 5), .pendingIDMustBeZero),
            (transfer(110, 1, 2, 1, flags: [.pending, .postPendingTransfer]), .flagsAreMutuallyExclusive),
            (transfer(111, 1, 2, 1, flags: .postPendingTransfer, pending: 999), .pendingTransferNotFound),
            (transfer(112, 1, 2, 1, flags: Transfer.Flags(rawValue: 1 << 9)), .reservedFlag),
        ])
    func transferResults(_ t: Transfer, _ expected: CreateTransferResult) {
        var state = ledger()
        #expect(state.createTransfers([t], now: 2_000) == [expected])
        #expect(state.accounts[id(1)]?.debitsPosted == 0)
    }

    @Test("overflows are result codes, never wraps")
    func overflows() {
        var state = ledger()
        #expect(state.createTransfers([transfer(1, 1, 2, UInt64.max)], now: 2_000) == [.ok])
        #expect(state.createTransfers([transfer(2, 1, 3, 1)], now: 2_001) == [.overflowsDebitsPosted])
        #expect(state.createTransfers([transfer(3, 3, 2, 0)], now: 2_002) == [.ok])
        #expect(state.accounts[id(1)]?.debitsPosted == UInt64.max)
        #expect(state.invariantViolations().isEmpty)
    }

    @Test("a linked chain is all or nothing; an open chain fails")
    func linkedChains() {
        var state = ledger()
        let results = state.createTransfers(
            [
                transfer(1, 1, 2, 100, flags: .linked),
                transfer(2, 2, 3, 60, flags: .linked),
                transfer(3, 3, 2, 999),  // exceeds 3's credits: the whole chain fails
                transfer(4, 1, 3, 10),  // independent, succeeds
                transfer(5, 1, 2, 5, flags: .linked),  // chain left open at the end of the batch
            ], now: 2_000)
        #expect(results == [.linkedEventFailed, .linkedEventFailed, .exceedsCredits, .ok, .linkedEventChainOpen])
        #expect(state.transfers[id(1)] == nil && state.transfers[id(2)] == nil)
        #expect(state.accounts[id(2)]?.creditsPosted == 0)
        #expect(state.accounts[id(3)]?.creditsPosted == 10)
        let chain = state.createTransfers([transfer(6, 1, 2, 100, flags: .linked), transfer(7, 2, 3, 60)], now: 3_000)
        #expect(chain == [.ok, .ok])
        #expect(state.accounts[id(2)]?.creditsPosted == 100 && state.accounts[id(2)]?.debitsPosted == 60)
        // An open chain's last event says so even after an earlier member failed (TigerBeetle's order).
        let broken = state.createTransfers(
            [
                transfer(8, 3, 2, 999, flags: .linked), transfer(9, 1, 2, 5, flags: .linked),
                transfer(10, 1, 2, 5, flags: .linked),
            ], now: 4_000)
        #expect(broken == [.exceedsCredits, .linkedEventFailed, .linkedEventChainOpen])
    }

    @Test("two-phase: pending, post up to the amount, void, expiry releases funds")
    func twoPhase() {
        var state = ledger()
        let second: UInt64 = 1_000_000_000
        #expect(state.createTransfers([transfer(1, 1, 2, 100)], now: 1 * second) == [.ok])
        #expect(state.createTransfers([transfer(10, 2, 3, 80, flags: .pending, timeout: 60)], now: 2 * second) == [.ok])
        #expect(state.accounts[id(2)]?.debitsPending == 80)
        // Pending funds count against the balance.
        #expect(state.createTransfers([transfer(11, 2, 3, 30)], now: 3 * second) == [.exceedsCredits])
        #expect(
            state.createTransfers([transfer(12, 0, 0, 81, flags: .postPendingTransfer, pending: 10)], now: 4 * second)
                == [.exceedsPendingTransferAmount])
        #expect(state.createTransfers([transfer(13, 0, 0, 50, flags: .postPendingTransfer, pending: 10)], now: 5 * second) == [.ok])
        #expect(state.accounts[id(2)]?.debitsPending == 0 && state.accounts[id(2)]?.debitsPosted == 50)
        #expect(state.accounts[id(3)]?.creditsPosted == 50)
        #expect(
            state.createTransfers([transfer(14, 0, 0, 0, flags: .voidPendingTransfer, pending: 10)], now: 6 * second)
                == [.pendingTransferAlreadyPosted])
        // Void.
        #expect(state.createTransfers([transfer(20, 2, 3, 40, flags: .pending)], now: 7 * second) == [.ok])
        #expect(state.createTransfers([transfer(21, 0, 0, 0, flags: .voidPendingTransfer, pending: 20)], now: 8 * second) == [.ok])
        #expect(state.accounts[id(2)]?.debitsPending == 0)
        // Expiry without anybody calling.
        #expect(state.createTransfers([transfer(30, 2, 3, 40, flags: .pending, timeout: 10)], now: 9 * second) == [.ok])
        #expect(state.expirePending(now: 15 * second).isEmpty)
        #expect(state.expirePending(now: 19 * second) == [id(30)])
        #expect(state.accounts[id(2)]?.debitsPending == 0)
        #expect(
            state.createTransfers([transfer(31, 0, 0, 0, flags: .postPendingTransfer, pending: 30)], now: 20 * second)
                == [.pendingTransferExpired])
        #expect(state.invariantViolations().isEmpty)
    }

    @Test("balancing transfers take what is there")
    func balancing() {
        var state = ledger()
        #expect(state.createTransfers([transfer(1, 1, 2, 70)], now: 2_000) == [.ok])
        #expect(state.createTransfers([transfer(2, 2, 3, 1_000, flags: .balancingDebit)], now: 2_001) == [.ok])
        #expect(state.transfers[id(2)]?.amount == 70)
        #expect(state.accounts[id(2)]?.debitsPosted == 70)
        #expect(state.invariantViolations().isEmpty)
    }

    @Test("random batches keep every invariant and resubmitting a batch changes nothing")
    func randomized() {
        var state = ledger()
        var generator = SystemRandomNumberGenerator()
        var nextID: UInt64 = 1_000
        let second: UInt64 = 1_000_000_000
        var now: UInt64 = 10 * second
        for _ in 0..<300 {
            var batch: [Transfer] = []
            for _ in 0..<Int.random(in: 1...12, using: &generator) {
                nextID += 1
                let from = UInt64.random(in: 1...3, using: &generator)
                var to = UInt64.random(in: 1...3, using: &generator)
                if Bool.random(using: &generator) && to == from { to = from % 3 + 1 }
                var flags: Transfer.Flags = []
                if Int.random(in: 0..<4, using: &generator) == 0 { flags.insert(.linked) }
                if Int.random(in: 0..<5, using: &generator) == 0 { flags.insert(.pending) }
                batch.append(
                    transfer(
                        nextID, from, to, UInt64.random(in: 0...500, using: &generator), flags: flags,
                        timeout: flags.contains(.pending) ? UInt32.random(in: 0...30, using: &generator) : 0))
            }
            now += UInt64.random(in: 1...5, using: &generator) * second
            let results = state.createTransfers(batch, now: now)
            #expect(results.count == batch.count)
            _ = state.expirePending(now: now)
            // Resubmitting what succeeded (chains stay whole: a chain succeeds or fails as one)
            // moves nothing: each event is `exists` (in a chain, as in TigerBeetle, the first
            // `exists` fails the chain and the rest report `linked_event_failed`).
            let succeeded = zip(batch, results).filter { $0.1 == .ok }.map(\.0)
            let before = state.accounts
            let again = state.createTransfers(succeeded, now: now + 1)
            #expect(state.accounts == before)
            #expect(again.allSatisfy { $0 == .exists || $0 == .linkedEventFailed })
            #expect(state.invariantViolations().isEmpty)
        }
    }

    @Test("a batch's effect is checked over the accounts it touched: a balanced batch passes, a one-sided change is caught")
    func batchInvariant() {
        // The store loads only what a batch touches: accounts 1 and 2, already holding 700.
        var a1 = Account(id: id(1), ledger: 1, code: 1001)
        a1.debitsPosted = 700
        var a2 = Account(id: id(2), ledger: 1, code: 2001, flags: .debitsMustNotExceedCredits)
        a2.creditsPosted = 700
        var loaded = LedgerState(accounts: [a1, a2], lastTimestamp: 5_000)
        let before = loaded.accounts
        // Over just these two accounts the whole-state check could not hold for a wider ledger,
        // but the batch's movement must: 200 posted, 50 pending, both sides.
        #expect(loaded.createTransfers([transfer(100, 2, 1, 200), transfer(101, 1, 2, 50, flags: .pending)], now: 6_000) == [.ok, .ok])
        #expect(loaded.batchViolations(before: before).isEmpty)

        // A change to one side only (a bug the store must never commit) is caught, per ledger.
        var broken = a2
        broken.creditsPosted += 10
        let oneSided = LedgerState(accounts: [a1, broken])
        #expect(
            oneSided.batchViolations(before: before) == [
                .unbalanced(ledger: 1, LedgerInvariantViolation.Movement(creditsPosted: 10))
            ])
        // So is an account that ends up breaking its own flags, even when the ledger balances.
        var overdrawn = a2
        overdrawn.debitsPosted = 800
        var payee = a1
        payee.creditsPosted = 800
        #expect(LedgerState(accounts: [payee, overdrawn]).batchViolations(before: before) == [.debitsExceedCredits(account: id(2))])
        // Accounts the batch created start from zero.
        var created = Account(id: id(7), ledger: 2, code: 2001)
        created.debitsPending = 5
        #expect(
            LedgerState(accounts: [a1, a2, created]).batchViolations(before: before) == [
                .unbalanced(ledger: 2, LedgerInvariantViolation.Movement(debitsPending: 5))
            ])
    }
}
