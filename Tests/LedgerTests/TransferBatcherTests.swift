import TestSupport
import Testing

@testable import LedgerPlugin

private func id(_ n: UInt64) -> ID128 { ID128(low: n) }

/// Holds the first batch until the test opens it, so the others queue behind it.
/// Unchecked Sendable: its state is touched only under its lock.
private final class Gate: @unchecked Sendable {
    private let box = LockedBox<CheckedContinuation<Void, Never>?>(nil)
    private let opened = LockedBox(false)
    func wait() async {
        await withCheckedContinuation { c in
            if opened.value { c.resume() } else { box.value = c }
        }
    }
    func open() {
        opened.value = true
        box.value?.resume()
        box.value = nil
    }
}

@Suite("Transfer batcher")
struct TransferBatcherTests {
    @Test("concurrent callers share batches; each gets its own results; an open chain ends its batch")
    func merging() async throws {
        var initial = LedgerState()
        _ = initial.createAccounts(
            [Account(id: id(1), ledger: 1, code: 1), Account(id: id(2), ledger: 1, code: 1, flags: .debitsMustNotExceedCredits)],
            now: 1)
        let state = LockedBox(initial)
        let batches = LockedBox<[[Transfer]]>([])
        let gate = Gate()
        let batcher = TransferBatcher { batch, now in
            if batches.value.isEmpty { await gate.wait() }
            batches.value.append(batch)
            var s = state.value
            let results = s.createTransfers(batch, now: now)
            state.value = s
            return results
        }
        let callers = 40
        try await withThrowingTaskGroup(of: Void.self) { group in
            for c in UInt64(0)..<UInt64(callers) {
                group.addTask {
                    let t = { (n: UInt64, from: UInt64, to: UInt64, amount: UInt64, flags: Transfer.Flags) in
                        Transfer(
                            id: id(1_000 * (c + 1) + n), debitAccountID: id(from), creditAccountID: id(to), amount: amount, ledger: 1,
                            code: 1, flags: flags)
                    }
                    let sent: [Transfer]
                    let expected: [CreateTransferResult]
                    switch c % 4 {
                    case 0:  // left open: fails whole, whatever follows it in the merged batch
                        sent = [t(1, 1, 2, 5, .linked), t(2, 1, 2, 5, .linked)]
                        expected = [.linkedEventFailed, .linkedEventChainOpen]
                    case 1:  // a chain whose second member overdraws
                        sent = [t(1, 1, 2, 5, .linked), t(2, 2, 1, 1_000_000, [])]
                        expected = [.linkedEventFailed, .exceedsCredits]
                    default:
                        sent = [t(1, 1, 2, 7, [])]
                        expected = [.ok]
                    }
                    let results = try await batcher.submit(sent, now: 10)
                    #expect(results == expected)
                }
            }
            // Everyone but the first waits behind the held batch before it goes.
            while batcher.waiting < callers - 1 { await Task.yield() }
            gate.open()
            try await group.waitForAll()
        }
        let seen = batches.value
        let events = seen.map(\.count).reduce(0, +)
        #expect(events == 60)
        #expect(seen.count <= 2 + callers / 4)  // merged: at most one break per open chain
        for batch in seen {
            // Inside a merged batch, only the last request may leave a chain open.
            var openChains: [Int] = []
            for i in batch.indices where batch[i].flags.contains(.linked) {
                let lastOfRequest = i == batch.count - 1 || batch[i + 1].id.low / 1_000 != batch[i].id.low / 1_000
                if lastOfRequest { openChains.append(i) }
            }
            #expect(openChains.allSatisfy { $0 == batch.count - 1 })
        }
        #expect(state.value.accounts[id(2)]?.creditsPosted == 20 * 7)
    }
}
