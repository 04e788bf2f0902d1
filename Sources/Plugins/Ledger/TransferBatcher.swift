import Foundation

/// Merges concurrent callers' transfer batches into one `createTransfers` transaction, as
/// TigerBeetle batches its clients' requests: one batch in flight per store; callers that arrive
/// meanwhile wait and go together in the next one, up to `LedgerLimits.maxBatchEvents` events.
///
/// Each caller gets back exactly its own results, the ones its batch would have had alone at
/// that point of the ledger's history: requests are joined whole, in arrival order; a request
/// never ends inside a linked chain except one left open, and such a request closes the merged
/// batch, so its open chain still meets the batch's end. Balances, results and timestamps are
/// those of a serial order of the requests, as without merging.
/// Unchecked Sendable: `queue` and `draining` are touched only under `lock`.
final class TransferBatcher: @unchecked Sendable {
    typealias Apply = @Sendable ([Transfer], UInt64) async throws -> [CreateTransferResult]

    private struct Request {
        let events: [Transfer]
        let now: UInt64
        let continuation: CheckedContinuation<[CreateTransferResult], any Error>
    }

    private let lock = NSLock()
    private var queue: [Request] = []
    private var draining = false
    private let apply: Apply

    init(apply: @escaping Apply) { self.apply = apply }

    /// Requests waiting for the next batch.
    var waiting: Int { lock.withLock { queue.count } }

    func submit(_ events: [Transfer], now: UInt64) async throws -> [CreateTransferResult] {
        precondition(!events.isEmpty && events.count <= LedgerLimits.maxBatchEvents)
        return try await withCheckedThrowingContinuation { continuation in
            let start: Bool = lock.withLock {
                queue.append(Request(events: events, now: now, continuation: continuation))
                if draining { return false }
                draining = true
                return true
            }
            if start { Task { await self.drain() } }
        }
    }

    /// Runs merged batches until no request waits.
    private func drain() async {
        var lastGroupSize = 0
        while true {
            // The callers just answered usually send again at once: give them a moment to, so
            // the next batch carries them too instead of going out with the first one back.
            var yields = 0
            while yields < LedgerLimits.maxBatchGatherYields && lock.withLock({ queue.count }) < lastGroupSize {
                await Task.yield()
                yields += 1
            }
            let group = lock.withLock { () -> [Request] in
                let group = nextGroup()
                if group.isEmpty { draining = false }
                return group
            }
            guard !group.isEmpty else { return }
            lastGroupSize = group.count
            let merged = group.count == 1 ? group[0].events : group.flatMap(\.events)
            do {
                // Concurrent callers' clocks differ by the time they waited: the latest is now.
                let results = try await apply(merged, group.map(\.now).max()!)
                precondition(results.count == merged.count)
                var offset = 0
                for request in group {
                    request.continuation.resume(returning: Array(results[offset..<(offset + request.events.count)]))
                    offset += request.events.count
                }
            } catch {
                for request in group { request.continuation.resume(throwing: error) }
            }
        }
    }

    /// Takes the requests of the next merged batch off the queue (called with the lock held).
    private func nextGroup() -> [Request] {
        var taken = 0
        var events = 0
        while taken < queue.count {
            let next = queue[taken]
            if taken > 0 && events + next.events.count > LedgerLimits.maxBatchEvents { break }
            taken += 1
            events += next.events.count
            if next.events.last!.flags.contains(.linked) { break }  // an open chain ends the batch
        }
        let group = Array(queue.prefix(taken))
        queue.removeFirst(taken)
        return group
    }
}
