import Foundation
import SQL

/// An event taken from the durable inbox and handed to subscribers.
package struct Event: Sendable {
    /// The inbox's id: increasing, unique per event.
    package let id: Int64
    /// `<type>.<action>` (e.g. `workflow_job.queued`) or `<type>` when there is no action.
    package let topic: String
    /// Who produced it (`github`, ...).
    package let source: String
    /// The producer's own id for it (a GitHub delivery id, ...).
    package let sourceID: String
    /// The JSON payload.
    package let payload: [UInt8]
    package let createdAt: Date
    /// 1 on the first attempt.
    package let attempt: Int

    package var type: String { topic.split(separator: ".", maxSplits: 1).first.map(String.init) ?? topic }
    package var action: String? {
        let parts = topic.split(separator: ".", maxSplits: 1)
        return parts.count == 2 ? String(parts[1]) : nil
    }
}

/// What a plugin asks to receive, and how it handles it.
package struct EventSubscription: Sendable {
    /// How the handler's work is made to count once.
    package enum Handler: Sendable {
        /// Runs inside the transaction that records the event as handled by this subscriber:
        /// its database effects happen exactly once.
        case transactional(@Sendable (Event, any SQLConnection) throws -> Void)
        /// Like `.transactional`, but the CPU work (decoding, evaluating) happens first, outside
        /// the transaction, and returns the writes to apply inside it. Keeps the writer free.
        case prepared(@Sendable (Event) throws -> @Sendable (any SQLConnection) throws -> Void)
        /// Runs outside any transaction (HTTP calls, long work); recorded after it returns.
        /// At-least-once: after a crash it may run again, so it must be idempotent.
        case async(@Sendable (Event) async throws -> Void)
    }

    /// Unique and stable: progress is recorded under this name.
    package let name: String
    /// Only events from this producer (`github`, ...); nil for any.
    package let source: String?
    /// Topic patterns: `workflow_job.queued`, `workflow_job.*`, `workflow_job` (any action), `*`.
    package let topics: [String]
    package let handler: Handler
    /// Whether the handler reads `Event.payload`; when no matching subscriber does, the
    /// dispatcher does not load it.
    package let needsPayload: Bool
    /// Asked after `topics` match, each time an event is taken: whether this subscriber wants the
    /// topic now (a subscriber whose interests change at run time, e.g. hot-reloaded scripts).
    /// When it says no, the event is not handled by, nor recorded for, this subscriber.
    package let wants: (@Sendable (_ topic: String) -> Bool)?
    /// Called after this subscriber's effects for an event have committed (e.g. to wake a
    /// service that reads them: woken earlier, it could look before the commit and miss them).
    package let committed: (@Sendable () -> Void)?

    package init(
        name: String, source: String? = nil, topics: [String], needsPayload: Bool = true,
        wants: (@Sendable (_ topic: String) -> Bool)? = nil, committed: (@Sendable () -> Void)? = nil, handler: Handler
    ) {
        self.committed = committed
        self.name = name
        self.source = source
        self.topics = topics
        self.needsPayload = needsPayload
        self.wants = wants
        self.handler = handler
    }

    package func matches(source: String, topic: String) -> Bool {
        (self.source == nil || self.source == source) && topics.contains { EventSubscription.pattern($0, matches: topic) }
            && (wants?(topic) ?? true)
    }

    package static func pattern(_ pattern: String, matches topic: String) -> Bool {
        if pattern == "*" || pattern == topic { return true }
        if pattern.hasSuffix(".*") { return topic.hasPrefix(String(pattern.dropLast(1))) }
        return topic.hasPrefix(pattern + ".")
    }
}

/// The state of one event in the inbox.
package struct EventRecord: Sendable, Codable {
    package let id: Int64
    package let topic: String
    package let source: String
    package let sourceID: String
    /// `pending`, `done` or `dead` (gave up after too many attempts).
    package let status: String
    package let attempts: Int
    package let lastError: String?
    package let createdAt: String
    package let handledAt: String?
    /// Subscribers that have handled it, with when.
    package var handledBy: [HandledBy]

    package struct HandledBy: Sendable, Codable {
        package let subscriber: String
        package let handledAt: String
    }
}
