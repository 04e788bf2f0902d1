import Foundation
import Logging
import SQL
import ServiceLifecycle

/// Loads an event's payload when its producer stored it elsewhere (e.g. a webhook body kept
/// once in the GitHub plugin's own table).
package typealias EventPayloadLoader = @Sendable (any SQLConnection, _ sourceID: String) throws -> [UInt8]?

/// Delivers inbox events to subscribers. Producers write events with `EventInbox.publish` in
/// their own transaction and then `ring()`; the dispatcher (a `Service`) claims and handles them.
/// A crash between storing and handling loses nothing: unhandled events stay in the inbox and
/// are taken again after a restart (or by another replica when the lease runs out).
/// Unchecked Sendable: `subscriptions` and `loaders` are touched only under `lock`.
package final class EventBus: @unchecked Sendable {
    package let database: any Database
    let logger: Logger
    let configuration: HostConfiguration
    let owner = Hex8.random()
    private let lock = NSLock()
    private var subscriptions: [EventSubscription] = []
    private var loaders: [String: EventPayloadLoader] = [:]
    let doorbell = Doorbell()
    let now: @Sendable () -> Date
    /// Payloads a producer in this process just committed, so the dispatcher need not read
    /// them back (a miss, e.g. after a restart or on another replica, reads them as usual).
    let recentPayloads = RecentPayloads(maxBytes: HostLimits.inboxRecentPayloadBytes)

    package init(
        database: any Database, configuration: HostConfiguration, logger: Logger,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.database = database
        self.configuration = configuration
        self.logger = logger
        self.now = now
    }

    /// Adds a subscriber. Names must be unique: progress is recorded per name.
    package func subscribe(_ subscription: EventSubscription) {
        lock.withLock {
            precondition(!subscriptions.contains { $0.name == subscription.name }, "duplicate subscriber \(subscription.name)")
            subscriptions.append(subscription)
        }
    }

    package func registerPayloadLoader(source: String, _ loader: @escaping EventPayloadLoader) {
        lock.withLock { loaders[source] = loader }
    }

    /// Wakes the dispatcher after a commit that published events.
    package func ring() { doorbell.ring() }

    /// Keeps a payload just committed under (source, sourceID) for the dispatcher: call it after
    /// the commit, with exactly the bytes the loader would read.
    package func remember(payload: [UInt8], source: String, sourceID: String) {
        recentPayloads.put(source + "\u{0}" + sourceID, payload)
    }

    var currentSubscriptions: [EventSubscription] { lock.withLock { subscriptions } }
    func loader(for source: String) -> EventPayloadLoader? { lock.withLock { loaders[source] } }

    package func records(ids: [Int64]) async throws -> [Int64: EventRecord] {
        try await database.read { try EventInbox.records($0, ids: ids) }
    }

    /// The latest event of each of a producer's ids (a redelivery makes a newer one).
    package func latestRecords(source: String, sourceIDs: [String]) async throws -> [String: EventRecord] {
        try await database.read { try EventInbox.latestRecords($0, source: source, sourceIDs: sourceIDs) }
    }

    /// The service that claims and handles events until graceful shutdown.
    package func dispatcher() -> EventDispatcher { EventDispatcher(bus: self) }
}

/// Claims batches of events and hands each to every matching subscriber, a bounded number of
/// events at a time. Stops taking new work on graceful shutdown and finishes what it holds.
package struct EventDispatcher: Service {
    let bus: EventBus

    package func run() async throws {
        let config = bus.configuration
        let stopping = StopFlag()
        if bus.database.dialect == .sqlite {
            // One `tenki serve` owns a SQLite file (see ServeLock): leases left by a killed
            // process are ours to take back at once.
            try await bus.database.transaction { try EventInbox.releaseAllLeases($0) }
        }
        bus.logger.info("event dispatcher started", metadata: ["owner": .string(bus.owner)])
        await withGracefulShutdownHandler {
            while !stopping.isSet && !Task.isCancelled {
                let handled: Int
                do {
                    handled = try await dispatchOnce()
                } catch {
                    bus.logger.error("event dispatch failed", metadata: ["error": .string("\(error)")])
                    handled = 0
                }
                if handled == 0 && !stopping.isSet {
                    await bus.doorbell.wait(timeoutMilliseconds: config.inboxPollIntervalMilliseconds)
                }
            }
        } onGracefulShutdown: {
            stopping.set()
            bus.doorbell.ring()
        }
        bus.logger.info("event dispatcher stopped")
    }

    /// Handles claimable events until none is left, `width` at a time, claiming the next batch
    /// as soon as the previous one has all started (not when it has all finished), so a slow
    /// event never holds back the ones behind it. Returns how many were handled.
    @discardableResult
    package func dispatchOnce() async throws -> Int {
        let config = bus.configuration
        let owner = bus.owner
        let claim: @Sendable () async throws -> [EventInbox.Claimed] = {
            let nowMs = Timestamp.ms(bus.now())
            return try await bus.database.transaction { db in
                try EventInbox.claim(
                    db, owner: owner, nowMs: nowMs, leaseMs: Int64(config.inboxLeaseSeconds) * 1000,
                    limit: HostLimits.inboxClaimBatchEvents)
            }
        }
        var waiting = try await claim()
        guard !waiting.isEmpty else { return 0 }
        let width = min(config.inboxConcurrency, HostLimits.inboxMaxConcurrentEvents)
        var handled = 0
        var claimError: (any Error)?
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            var drained = false
            waiting.reverse()  // popLast takes them in claim order
            while true {
                while running < width, let event = waiting.popLast() {
                    group.addTask { await handle(event) }
                    running += 1
                    handled += 1
                }
                if waiting.isEmpty, !drained, running < width {
                    do {
                        waiting = try await claim().reversed()
                    } catch {
                        claimError = error
                        waiting = []
                    }
                    drained = waiting.isEmpty
                    if !waiting.isEmpty { continue }
                }
                guard running > 0 else { break }
                await group.next()
                running -= 1
            }
        }
        if let claimError {
            // A later claim failed (the first one throws above); what was taken is handled and
            // the next pass claims again.
            bus.logger.error("event claim failed", metadata: ["error": .string("\(claimError)")])
        }
        return handled
    }

    private func handle(_ claimed: EventInbox.Claimed) async {
        let owner = bus.owner
        do {
            let subscriptions = bus.currentSubscriptions.filter { $0.matches(source: claimed.source, topic: claimed.topic) }
            var payload = claimed.payload
            if payload == nil, subscriptions.contains(where: \.needsPayload), let loader = bus.loader(for: claimed.source) {
                payload = bus.recentPayloads.take(claimed.source + "\u{0}" + claimed.sourceID)
                if payload == nil { payload = try await bus.database.read { try loader($0, claimed.sourceID) } }
            }
            let event = Event(
                id: claimed.id, topic: claimed.topic, source: claimed.source, sourceID: claimed.sourceID,
                payload: payload ?? [], createdAt: Date(timeIntervalSince1970: Double(claimed.createdAtMs) / 1000),
                attempt: claimed.attempts)
            // A first claim has no progress to skip; a later one skips subscribers already done.
            let done: Set<String> =
                claimed.attempts <= 1 ? [] : try await bus.database.read { try EventInbox.handledSubscribers($0, eventID: claimed.id) }
            let now = bus.now
            var writes: [(name: String, apply: @Sendable (any SQLConnection) throws -> Void)] = []
            for subscription in subscriptions where !done.contains(subscription.name) {
                let name = subscription.name
                switch subscription.handler {
                case .transactional(let body):
                    writes.append((name, { db in try body(event, db) }))
                case .prepared(let prepare):
                    writes.append((name, try prepare(event)))
                case .async(let body):
                    try await body(event)
                    _ = try await bus.database.transaction { db in
                        try EventInbox.markHandled(db, eventID: event.id, subscriber: name, nowMs: Timestamp.ms(now()))
                    }
                }
            }
            // Every transactional effect and the completion commit together: all or none.
            try await bus.database.transaction { db in
                let nowMs = Timestamp.ms(now())
                for write in writes where try EventInbox.markHandled(db, eventID: event.id, subscriber: write.name, nowMs: nowMs) {
                    try write.apply(db)
                }
                try EventInbox.complete(db, eventID: claimed.id, owner: owner, nowMs: nowMs)
            }
            for subscription in subscriptions where !done.contains(subscription.name) { subscription.committed?() }
            bus.logger.debug("event handled", metadata: ["event": .stringConvertible(claimed.id), "topic": .string(claimed.topic)])
        } catch {
            let backoff = min(HostLimits.inboxMaxBackoffSeconds, 1 << min(claimed.attempts, 16))
            let retryAt = Timestamp.ms(bus.now()) + Int64(backoff) * 1000
            bus.logger.warning(
                "event handler failed",
                metadata: [
                    "event": .stringConvertible(claimed.id), "topic": .string(claimed.topic),
                    "attempt": .stringConvertible(claimed.attempts), "error": .string("\(error)"),
                ])
            _ = try? await bus.database.transaction { db in
                try EventInbox.fail(
                    db, eventID: claimed.id, owner: owner, error: "\(error)", retryAtMs: retryAt,
                    maxAttempts: HostLimits.inboxMaxAttempts)
            }
        }
    }
}

/// A wake-up signal with a timeout; rings before a wait are not lost.
/// Unchecked Sendable: its state is touched only under `lock`.
package final class Doorbell: @unchecked Sendable {
    private let lock = NSLock()
    private var rung = false
    private var waiter: CheckedContinuation<Void, Never>?
    private var generation = 0

    package init() {}

    package func ring() {
        let waiting: CheckedContinuation<Void, Never>? = lock.withLock {
            if let waiter {
                self.waiter = nil
                return waiter
            }
            rung = true
            return nil
        }
        waiting?.resume()
    }

    package func wait(timeoutMilliseconds: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let (resumeNow, ticket): (Bool, Int) = lock.withLock {
                if rung {
                    rung = false
                    return (true, 0)
                }
                generation += 1
                waiter = continuation
                return (false, generation)
            }
            if resumeNow {
                continuation.resume()
                return
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(timeoutMilliseconds)) {
                let expired: CheckedContinuation<Void, Never>? = self.lock.withLock {
                    guard self.generation == ticket, let waiter = self.waiter else { return nil }
                    self.waiter = nil
                    return waiter
                }
                expired?.resume()
            }
        }
    }
}

/// A flag set once, read from any thread (graceful shutdown).
/// Unchecked Sendable: `value` is touched only under `lock`.
package final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    package init() {}
    package var isSet: Bool { lock.withLock { value } }
    package func set() { lock.withLock { value = true } }
}

enum Hex8 {
    static func random() -> String { String(UInt64.random(in: 0...UInt64.max), radix: 16) }
}

/// A bounded map of recently committed payloads, oldest dropped first; each is taken once.
/// Unchecked Sendable: its state is touched only under `lock`.
package final class RecentPayloads: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String: [UInt8]] = [:]
    private var order: [String] = []
    private var head = 0
    private var bytes = 0
    package let maxBytes: Int

    package init(maxBytes: Int) { self.maxBytes = maxBytes }

    /// Bytes held now.
    package var heldBytes: Int { lock.withLock { bytes } }

    package func put(_ key: String, _ payload: [UInt8]) {
        guard payload.count <= maxBytes / 4 else { return }
        lock.withLock {
            if let old = entries.updateValue(payload, forKey: key) { bytes -= old.count } else { order.append(key) }
            bytes += payload.count
            while bytes > maxBytes, head < order.count {
                if let dropped = entries.removeValue(forKey: order[head]) { bytes -= dropped.count }
                head += 1
            }
            compact()
        }
    }

    package func take(_ key: String) -> [UInt8]? {
        lock.withLock {
            guard let payload = entries.removeValue(forKey: key) else { return nil }
            bytes -= payload.count
            compact()
            return payload
        }
    }

    /// Drops the keys already consumed from the front of the order once they are most of it.
    private func compact() {
        if entries.isEmpty {
            order.removeAll(keepingCapacity: true)
            head = 0
            return
        }
        if head > 1_024 && head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
        while head < order.count, entries[order[head]] == nil { head += 1 }
    }
}
