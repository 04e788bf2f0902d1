import Foundation
import LedgerPlugin
import SQL
import TestSupport
import Testing

/// The randomised comparison of the stored ledger with `LedgerModel`. Several clients send
/// batches at once. Each owns accounts nobody else touches, so the model predicts every result
/// code of its events exactly, whatever the interleaving; they also share a pool of accounts,
/// where results depend on the order the database chose, and that order is checked instead: the
/// stored transfers, replayed in timestamp order through a fresh model, must each be `ok` and
/// must end at the stored balances. Time moves in phases (see `LedgerModel`); between phases
/// the sweeper runs, so expiry is deterministic too.
@Suite("Ledger against a model (randomised, concurrent clients)")
struct LedgerModelTests {
    static let clients = 4
    static let phases = 6
    static let batchesPerPhase = 5

    @Test("every result code and balance matches the model; one store shared by concurrent clients", arguments: DriverKind.allCases)
    func oneStore(_ kind: DriverKind) async throws {
        let (test, db, store) = try await LedgerStoreTests.open(kind)
        defer { withExtendedLifetime(test) {} }
        try await ModelRun(seed: 0x7E41_0001).run(stores: [store], inspect: db)
        await db.close()
    }

    @Test("every result code and balance matches the model; each client on its own database pool", arguments: DriverKind.allCases)
    func independentPools(_ kind: DriverKind) async throws {
        let (test, db, store) = try await LedgerStoreTests.open(kind)
        defer { withExtendedLifetime(test) {} }
        var pools: [any Database] = []
        for _ in 0..<Self.clients { pools.append(try test.open(poolSize: 2)) }
        try await ModelRun(seed: 0x7E41_0002).run(stores: [store] + pools.map(LedgerStore.init), inspect: db)
        for pool in pools { await pool.close() }
        await db.close()
    }
}

extension LedgerModelTests {
    /// Several processes share a ledger on PostgreSQL only (one `tenki` owns a SQLite file).
    @Test("every result code and balance matches the model; each client is a separate tenki process", arguments: [DriverKind.postgres])
    func processes(_ kind: DriverKind) async throws {
        let (test, db, store) = try await LedgerStoreTests.open(kind)
        defer { withExtendedLifetime(test) {} }
        let folder = test.directory
        let counter = LockedBox(0)
        let submit: ModelRun.Submit = { batches, now in
            counter.value += 1
            let file = folder + "/batches-\(counter.value)-\(UInt64.random(in: 0...UInt64.max)).json"
            try JSONEncoder().encode(batches.map { $0.map(CreateTransfersJSON.init) }).write(to: URL(fileURLWithPath: file))
            let arguments = [
                "ledger", "create-transfers", "--file", file, "--now", String(now), "--data-dir", folder + "/data",
                "--database-url", test.url,
            ]
            let (status, output, error) = try await Self.runDetached(arguments)
            guard status == 0, let data = output.data(using: .utf8),
                let names = try? JSONDecoder().decode([[String]].self, from: data)
            else {
                throw MissingDependency(description: "tenki ledger create-transfers exited \(status): \(error) \(output)")
            }
            return try names.map {
                try $0.map { name in
                    guard let result = CreateTransferResult(rawValue: name) else { throw MissingDependency(description: "unknown result \(name)") }
                    return result
                }
            }
        }
        // The chart each process ensures on start exists already, so no process moves the ledger's clock.
        try await store.ensureChart(now: ModelRun.now(0))
        try await ModelRun(seed: 0x7E41_0003).run(setup: store, submitters: [submit], inspect: db)
        await db.close()
    }

    /// Runs `tenki` on a thread of its own: waiting for a process must not hold a pool thread.
    static func runDetached(_ arguments: [String]) async throws -> (Int32, String, String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try TenkiProcess.run(arguments) })
            }
        }
    }
}

/// The JSON `tenki ledger create-transfers` reads (TigerBeetle's field names).
struct CreateTransfersJSON: Encodable {
    let t: Transfer
    init(_ t: Transfer) { self.t = t }
    enum CodingKeys: String, CodingKey {
        case id, amount, timeout, ledger, code, flags, debitAccountID = "debit_account_id", creditAccountID = "credit_account_id"
        case pendingID = "pending_id"
    }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(t.id.description, forKey: .id)
        try c.encode(t.debitAccountID.description, forKey: .debitAccountID)
        try c.encode(t.creditAccountID.description, forKey: .creditAccountID)
        try c.encode(t.amount, forKey: .amount)
        try c.encode(t.pendingID.description, forKey: .pendingID)
        try c.encode(t.timeout, forKey: .timeout)
        try c.encode(t.ledger, forKey: .ledger)
        try c.encode(t.code, forKey: .code)
        try c.encode(t.flags.rawValue, forKey: .flags)
    }
}

/// One randomised run.
struct ModelRun {
    let seed: UInt64
    static let start: UInt64 = 1_000_000_000_000  // ns; phase k applies at start + k × phase
    static var phase: UInt64 { LedgerModel.phaseSeconds * 1_000_000_000 }
    static let shared: [Account] =
        [Account(id: ID128(high: 3, low: 1), ledger: 1, code: 1)]
        + (2...4).map { Account(id: ID128(high: 3, low: UInt64($0)), ledger: 1, code: 2, flags: .debitsMustNotExceedCredits) }

    static func now(_ phase: Int) -> UInt64 { start + UInt64(phase) * Self.phase }

    /// Sends a client's batches for one phase at the phase's moment; one result array per batch.
    typealias Submit = @Sendable ([[Transfer]], UInt64) async throws -> [[CreateTransferResult]]

    static func submitter(_ store: LedgerStore) -> Submit {
        { batches, now in
            var results: [[CreateTransferResult]] = []
            for batch in batches { results.append(try await store.createTransfers(batch, now: now)) }
            return results
        }
    }

    func run(stores: [LedgerStore], inspect db: any Database) async throws {
        try await run(setup: stores[0], submitters: stores.map(Self.submitter), inspect: db)
    }

    /// `setup` creates the accounts and runs the sweeper; clients send through `submitters` in turn.
    func run(setup: LedgerStore, submitters: [Submit], inspect db: any Database) async throws {
        let stores = [setup]
        let clients = (0..<LedgerModelTests.clients).map { ModelClient(number: $0, seed: seed &+ UInt64($0)) }
        let everyAccount = Self.shared + clients.flatMap(\.accounts)
        #expect(try await stores[0].createAccounts(everyAccount, now: Self.now(0)).allSatisfy { $0 == .ok })
        // The shared accounts start with money to spend.
        let funding = Self.shared.dropFirst().enumerated().map { n, a in
            Transfer(
                id: ID128(high: 4, low: UInt64(n + 1)), debitAccountID: Self.shared[0].id, creditAccountID: a.id, amount: 2_000, ledger: 1, code: 1)
        }
        #expect(try await stores[0].createTransfers(funding, now: Self.now(0)) == [.ok, .ok, .ok])

        for phase in 0..<LedgerModelTests.phases {
            // Between phases: the sweeper releases what expired by the new phase's start.
            while try await !stores[0].expirePending(now: Self.now(phase)).isEmpty {}
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (n, client) in clients.enumerated() {
                    let submit = submitters[n % submitters.count]
                    group.addTask { try await client.play(phase: phase) { try await submit($0, Self.now(phase)) } }
                }
                try await group.waitForAll()
            }
        }
        while try await !stores[0].expirePending(now: Self.now(LedgerModelTests.phases)).isEmpty {}

        // Owned accounts: exact results and balances.
        let mismatches = clients.flatMap(\.mismatches)
        #expect(mismatches.isEmpty, "seed \(seed): \(mismatches.count) results differ from the model, first: \(mismatches.prefix(5))")
        let stored = try await stores[0].lookupAccounts(everyAccount.map(\.id))
        var balances: [ID128: LedgerModel.Balances] = [:]
        for a in stored {
            balances[a.id] = LedgerModel.Balances(
                debitsPending: a.debitsPending, debitsPosted: a.debitsPosted,
                creditsPending: a.creditsPending, creditsPosted: a.creditsPosted)
        }
        for client in clients {
            client.model.expire(phase: LedgerModelTests.phases)
            for a in client.accounts { #expect(balances[a.id] == client.model.balances(a.id), "seed \(seed): account \(a.id)") }
        }

        // Everything, shared pool included: replay what was stored, in timestamp order.
        let transfers = try await db.query("SELECT * FROM ledger_transfers ORDER BY timestamp").map { row -> Transfer in
            var t = Transfer(
                id: ID128(hex: try row.string("id"))!, debitAccountID: ID128(hex: try row.string("debit_account_id"))!,
                creditAccountID: ID128(hex: try row.string("credit_account_id"))!, amount: UInt64(try row.int("amount")),
                ledger: UInt32(try row.int("ledger")), code: UInt16(try row.int("code")),
                flags: Transfer.Flags(rawValue: UInt16(try row.int("flags"))), pendingID: ID128(hex: try row.string("pending_id")) ?? .zero,
                timeout: UInt32(try row.int("timeout")))
            t.timestamp = UInt64(try row.int("timestamp"))
            return t
        }
        var replay = LedgerModel()
        for a in everyAccount { replay.addAccount(a) }
        var replayFailures: [String] = []
        for t in transfers {
            let phase = Int((t.timestamp - Self.start) / Self.phase)
            replay.expire(phase: phase)
            var sent = t
            sent.timestamp = 0
            sent.flags.remove(.linked)
            let result = replay.apply(sent, phase: phase)
            if result != .ok { replayFailures.append("\(t.id): \(result)") }
        }
        replay.expire(phase: LedgerModelTests.phases)
        #expect(replayFailures.isEmpty, "seed \(seed): stored transfers that a serial replay refuses: \(replayFailures.prefix(5))")
        for a in everyAccount { #expect(balances[a.id] == replay.balances(a.id), "seed \(seed): replayed account \(a.id)") }

        // Shared events: ok exactly when stored, with the fields sent.
        let byID = Dictionary(uniqueKeysWithValues: transfers.map { ($0.id, $0) })
        let sharedOK = clients.flatMap(\.sharedResults).filter { $0.1 == .ok }.map(\.0)
        #expect(Set(sharedOK.map(\.id)).count == sharedOK.count)
        let storedShared = transfers.filter { $0.id.high == 5 }
        #expect(Set(storedShared.map(\.id)) == Set(sharedOK.map(\.id)), "seed \(seed): shared transfers stored ≠ answered ok")
        for t in sharedOK where !t.flags.contains(.postPendingTransfer) && !t.flags.contains(.voidPendingTransfer) {
            #expect(byID[t.id].map { ($0.debitAccountID, $0.creditAccountID, $0.amount) == (t.debitAccountID, t.creditAccountID, t.amount) } == true)
        }

        // The run exercised what it is meant to (a generator that drifted would pass vacuously).
        let seen = Set(clients.flatMap(\.seen))
        let wanted: [CreateTransferResult] = [
            .ok, .exists, .existsWithDifferentAmount, .existsWithDifferentCode, .exceedsCredits, .exceedsDebits,
            .linkedEventFailed, .linkedEventChainOpen, .accountsMustHaveTheSameLedger,
            .transferMustHaveTheSameLedgerAsAccounts, .debitAccountNotFound, .creditAccountNotFound,
            .accountsMustBeDifferent, .pendingTransferNotFound, .pendingTransferNotPending,
            .pendingTransferAlreadyPosted, .pendingTransferAlreadyVoided, .pendingTransferExpired,
            .exceedsPendingTransferAmount, .pendingTransferHasDifferentAmount,
        ]
        #expect(wanted.filter { !seen.contains($0) }.isEmpty, "seed \(seed): never produced \(wanted.filter { !seen.contains($0) })")
        #expect(clients.map(\.sent).reduce(0, +) >= 2_000)
        #expect(sharedOK.count > 50 && clients.flatMap(\.sharedResults).contains { $0.1 == .exceedsCredits })
    }
}

/// One client of a run: its accounts, its model of them, what it sent and what came back.
/// Used by one task at a time (phases are sequential).
/// Unchecked Sendable: used by one task at a time (the phases run one after another).
final class ModelClient: @unchecked Sendable {
    let number: Int
    var random: SeededRandom
    var model = LedgerModel()
    let accounts: [Account]
    private(set) var mismatches: [String] = []
    private(set) var sharedResults: [(Transfer, CreateTransferResult)] = []
    private(set) var seen: Set<CreateTransferResult> = []
    private(set) var sent = 0

    private var counter: UInt64 = 0
    private var earlier: [Transfer] = []  // owned events sent, for duplicates
    private var pendings: [Transfer] = []  // owned pending transfers sent
    private var sharedPendings: [Transfer] = []  // shared pending transfers stored

    init(number: Int, seed: UInt64) {
        self.number = number
        random = SeededRandom(seed: seed)
        func account(_ k: UInt64, ledger: UInt32 = 1, flags: Account.Flags = []) -> Account {
            Account(id: ID128(high: 1, low: UInt64(number) * 100 + k), ledger: ledger, code: 10, flags: flags)
        }
        // 1 may go anywhere, 2 and 3 must not overdraw, 4 must not be credited past its debits, 5 is on ledger 2.
        accounts = [
            account(1), account(2, flags: .debitsMustNotExceedCredits), account(3, flags: .debitsMustNotExceedCredits),
            account(4, flags: .creditsMustNotExceedDebits), account(5, ledger: 2),
        ]
        for a in accounts { model.addAccount(a) }
    }

    private func owned(_ k: Int) -> ID128 { k == 9 ? ID128(high: 1, low: UInt64(number) * 100 + 9) : accounts[k - 1].id }
    private func nextID(high: UInt64) -> ID128 {
        counter += 1
        return ID128(high: high, low: UInt64(number) << 40 | counter)
    }
    private func roll(_ n: Int) -> Int { Int.random(in: 0..<n, using: &random) }
    private func amount(_ range: ClosedRange<UInt64>) -> UInt64 { UInt64.random(in: range, using: &random) }

    private func plain(
        _ from: ID128, _ to: ID128, _ amount: UInt64, ledger: UInt32 = 1, flags: Transfer.Flags = [], timeout: UInt32 = 0,
        high: UInt64 = 2
    ) -> Transfer {
        Transfer(
            id: nextID(high: high), debitAccountID: from, creditAccountID: to, amount: amount, ledger: ledger, code: 20, flags: flags,
            timeout: timeout)
    }

    private func resolve(_ p: Transfer, post: Bool, amount: UInt64, high: UInt64 = 2) -> Transfer {
        Transfer(
            id: nextID(high: high), debitAccountID: .zero, creditAccountID: .zero, amount: amount, ledger: 0, code: 0,
            flags: post ? .postPendingTransfer : .voidPendingTransfer, pendingID: p.id)
    }

    /// An event on this client's own accounts; some must fail, and the model says how.
    private func ownedEvent() -> Transfer {
        let r = roll(100)
        let pair: () -> (ID128, ID128) = {
            let a = 1 + self.roll(4)
            var b = 1 + self.roll(4)
            if a == b { b = b % 4 + 1 }
            return (self.owned(a), self.owned(b))
        }
        var t: Transfer
        switch r {
        case 0..<28:
            let (a, b) = pair()
            t = plain(a, b, amount(1...500))
        case 28..<38:
            let (a, b) = pair()
            t = plain(a, b, amount(1...300), flags: .pending, timeout: [0, 500, 1_500][roll(3)])
            pendings.append(t)
        case 38..<48 where !pendings.isEmpty:
            let p = pendings[roll(pendings.count)]
            t = resolve(p, post: true, amount: [0, max(1, p.amount / 2), p.amount, p.amount + 1][roll(4)])
        case 48..<54 where !pendings.isEmpty:
            let p = pendings[roll(pendings.count)]
            t = resolve(p, post: false, amount: [0, p.amount, p.amount + 1][roll(3)])
        case 54..<57:
            t = resolve(plain(owned(1), owned(2), 1), post: roll(2) == 0, amount: 0)  // names a transfer never sent
        case 57..<61:
            t = roll(2) == 0 ? plain(owned(1), owned(5), amount(1...9)) : plain(owned(1), owned(2), amount(1...9), ledger: 2)
        case 61..<64:
            t = roll(2) == 0 ? plain(owned(1), owned(9), 5) : plain(owned(9), owned(1), 5)
        case 64..<66:
            t = plain(owned(2), owned(2), 5)
        case 66..<80 where !earlier.isEmpty:
            t = earlier[roll(earlier.count)]
            switch roll(10) {
            case 0..<6: break
            case 6..<8: t.amount += 1
            case 8: t.code += 1
            default: t.creditAccountID = owned(3) == t.creditAccountID ? owned(2) : owned(3)
            }
            return t
        case 80..<84 where !earlier.isEmpty:
            let other = earlier[roll(earlier.count)]
            t = resolve(other, post: true, amount: 0)
        default:
            // Funding keeps the limited accounts able to move money.
            t = roll(3) == 0 ? plain(owned(4), owned(1), amount(100...2_000)) : plain(owned(1), owned(2 + roll(2)), amount(500...3_000))
        }
        if !t.flags.contains(.postPendingTransfer) && !t.flags.contains(.voidPendingTransfer) { earlier.append(t) }
        return t
    }

    /// An event on the shared accounts (whose results depend on the other clients).
    private func sharedEvent() -> Transfer {
        let ids = ModelRun.shared.map(\.id)
        let a = roll(4)
        var b = roll(4)
        if a == b { b = (b + 1) % 4 }
        switch roll(10) {
        case 0..<6: return plain(ids[a], ids[b], amount(1...400), high: 5)
        case 6..<8: return plain(ids[a], ids[b], amount(1...200), flags: .pending, timeout: [0, 500][roll(2)], high: 5)
        default:
            guard !sharedPendings.isEmpty else { return plain(ids[0], ids[b == 0 ? 1 : b], amount(1...400), high: 5) }
            return resolve(sharedPendings[roll(sharedPendings.count)], post: roll(2) == 0, amount: 0, high: 5)
        }
    }

    /// A batch of units (one event, or a linked chain), each on owned or on shared accounts only;
    /// the last unit may leave its chain open.
    private func batch() -> (events: [Transfer], owned: [Int]) {
        var events: [Transfer] = []
        var ownedIndexes: [Int] = []
        let units = 10 + roll(20)
        for u in 0..<units {
            let shared = roll(4) == 0
            let open = u == units - 1 && roll(4) == 0
            let length = open || roll(5) == 0 ? 2 + roll(3) : 1
            var unit = (0..<length).map { _ in shared ? sharedEvent() : ownedEvent() }
            for i in unit.indices { unit[i].flags.remove(.linked) }
            for i in 0..<(length - 1) { unit[i].flags.insert(.linked) }
            if open { unit[length - 1].flags.insert(.linked) }
            if !shared { ownedIndexes += events.count..<(events.count + length) }
            events += unit
        }
        return (events, ownedIndexes)
    }

    /// One phase: this client's batches, generated up front, sent one after another by `submit`.
    func play(phase: Int, submit: ([[Transfer]]) async throws -> [[CreateTransferResult]]) async throws {
        model.expire(phase: phase)
        let batches = (0..<LedgerModelTests.batchesPerPhase).map { _ in batch() }
        let answers = try await submit(batches.map(\.events))
        for ((events, ownedIndexes), results) in zip(batches, answers) {
            precondition(results.count == events.count)
            sent += events.count
            let expected = model.submit(ownedIndexes.map { events[$0] }, phase: phase)
            for (k, i) in ownedIndexes.enumerated() {
                seen.insert(results[i])
                if results[i] != expected[k] {
                    mismatches.append(
                        "client \(number) phase \(phase) event \(i) \(events[i].id) flags \(events[i].flags.rawValue): got \(results[i]), model "
                            + "\(expected[k])"
                    )
                }
            }
            let owned = Set(ownedIndexes)
            for i in events.indices where !owned.contains(i) {
                sharedResults.append((events[i], results[i]))
                if results[i] == .ok && events[i].flags.contains(.pending) { sharedPendings.append(events[i]) }
            }
        }
    }
}
