import Foundation

/// The accounts a store's last batches loaded or changed, as stored at one generation of the
/// ledger, so the next batch reads only the accounts it has not seen.
///
/// Every transaction that changes an account also writes a fresh random `generation` into
/// `ledger_meta`, the row each batch locks and reads first. A batch that reads back the
/// generation the cache was filled at knows that nothing changed an account since: no other
/// store, no other process, no rolled-back transaction. Any other generation empties the cache.
/// So the cache is checked, never trusted, and is right with any number of writers.
/// Unchecked Sendable: `generation` and `accounts` are touched only under `lock`.
final class LedgerAccountCache: @unchecked Sendable {
    private let lock = NSLock()
    private var generation: Int64 = 0
    private var accounts: [ID128: Account] = [:]

    /// A generation for a transaction that changes accounts (never 0, the stored default).
    static func newGeneration() -> Int64 { Int64.random(in: 1...Int64.max) }

    /// The accounts among `ids` cached at `current`, the generation just read from the
    /// database; none (and the cache emptied) when the cache is of another generation.
    func accounts(_ ids: Set<ID128>, current: Int64) -> [ID128: Account] {
        lock.withLock {
            guard current != 0, current == generation else {
                accounts.removeAll(keepingCapacity: true)
                generation = 0
                return [:]
            }
            var found: [ID128: Account] = [:]
            found.reserveCapacity(ids.count)
            for id in ids { if let account = accounts[id] { found[id] = account } }
            return found
        }
    }

    /// Records `accounts` as stored at `generation` by a transaction that read `previous`:
    /// added to the cache when it was at `previous`, in place of it otherwise.
    func store(_ accounts: [ID128: Account], generation: Int64, previous: Int64) {
        lock.withLock {
            if self.generation != previous || previous == 0 || self.accounts.count + accounts.count > LedgerLimits.maxCachedAccounts {
                self.accounts.removeAll(keepingCapacity: true)
            }
            self.accounts.merge(accounts) { _, new in new }
            self.generation = generation
        }
    }
}
