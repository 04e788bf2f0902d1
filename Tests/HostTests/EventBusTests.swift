import Foundation
import Host
import Logging
import SQL
import TestSupport
import Testing

@Suite("Event bus and durable inbox")
struct EventBusTests {
    static func makeBus(_ test: TestDatabase) async throws -> (any Database, EventBus) {
        let db = try test.open()
        try await TenkiHost.migrate(db, plugins: [])
        try await db.execute("CREATE TABLE effects (event_id BIGINT NOT NULL, subscriber TEXT NOT NULL)")
        var config = HostConfiguration()
        config.inboxPollIntervalMilliseconds = 20
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        // A frozen clock a minute ahead (events are published at the real time): backoffs are
        // checked against it, not against how slow the machine is.
        let now = Date().addingTimeInterval(60)
        return (db, EventBus(database: db, configuration: config, logger: logger, now: { now }))
    }

    static func publish(_ db: any Database, _ topics: [String], source: String = "test") async throws -> [Int64] {
        try await db.transaction { tx in
            try topics.enumerated().map { index, topic in
                try EventInbox.publish(in: tx, topic: topic, source: source, sourceID: "s\(index)", payload: Array("{\"n\":\(index)}".utf8))
            }
        }
    }

    @Test("transactional subscribers see each matching event exactly once", arguments: DriverKind.allCases)
    func transactionalExactlyOnce(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let (db, bus) = try await Self.makeBus(test)
        for name in ["jobs", "all"] {
            let topics = name == "jobs" ? ["workflow_job.*"] : ["*"]
            bus.subscribe(
                EventSubscription(
                    name: name, topics: topics,
                    handler: .transactional { event, tx in
                        try tx.execute("INSERT INTO effects (event_id, subscriber) VALUES ($1, $2)", [.integer(event.id), .text(name)])
                    }))
        }
        let ids = try await Self.publish(db, ["workflow_job.queued", "push", "workflow_job.completed"])
        let dispatcher = bus.dispatcher()
        #expect(try await dispatcher.dispatchOnce() == 3)
        #expect(try await dispatcher.dispatchOnce() == 0)
        let effects = try await db.query("SELECT subscriber, COUNT(*) AS n FROM effects GROUP BY subscriber ORDER BY subscriber")
        #expect(try effects.map { "\(try $0.string("subscriber"))=\(try $0.int("n"))" } == ["all=3", "jobs=2"])
        let records = try await bus.records(ids: ids)
        #expect(records.values.allSatisfy { $0.status == "done" && $0.attempts == 1 })
        #expect(records[ids[0]]?.handledBy.map(\.subscriber) == ["all", "jobs"])
        await db.close()
    }

    @Test("a failing subscriber is retried later and the others do not run twice", arguments: DriverKind.allCases)
    func failuresAreRetried(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let (db, bus) = try await Self.makeBus(test)
        let failuresLeft = LockedBox(1)
        bus.subscribe(
            EventSubscription(
                name: "steady", topics: ["*"],
                handler: .transactional { event, tx in
                    try tx.execute("INSERT INTO effects (event_id, subscriber) VALUES ($1, 'steady')", [.integer(event.id)])
                }))
        struct Flaky: Error {}
        bus.subscribe(
            EventSubscription(
                name: "flaky", topics: ["*"],
                handler: .async { _ in
                    if failuresLeft.value > 0 {
                        failuresLeft.value -= 1
                        throw Flaky()
                    }
                }))
        let ids = try await Self.publish(db, ["ping"])
        let dispatcher = bus.dispatcher()
        #expect(try await dispatcher.dispatchOnce() == 1)
        var record = try #require(try await bus.records(ids: ids)[ids[0]])
        #expect(record.status == "pending")
        #expect(record.lastError?.contains("Flaky") == true)
        // Not due yet: the backoff holds it.
        #expect(try await dispatcher.dispatchOnce() == 0)
        try await db.execute("UPDATE event_inbox SET next_attempt_at_ms = 0")
        #expect(try await dispatcher.dispatchOnce() == 1)
        record = try #require(try await bus.records(ids: ids)[ids[0]])
        #expect(record.status == "done" && record.attempts == 2)
        #expect(try await db.query("SELECT COUNT(*) AS n FROM effects")[0].int("n") == 1)
        await db.close()
    }

    @Test("an event that always fails is parked as dead after the attempt limit")
    func deadAfterLimit() async throws {
        let test = try TestDatabase.make(.sqlite)
        let (db, bus) = try await Self.makeBus(test)
        struct Broken: Error {}
        bus.subscribe(EventSubscription(name: "broken", topics: ["*"], handler: .async { _ in throw Broken() }))
        let ids = try await Self.publish(db, ["ping"])
        let dispatcher = bus.dispatcher()
        for _ in 0..<HostLimits.inboxMaxAttempts {
            try await db.execute("UPDATE event_inbox SET next_attempt_at_ms = 0")
            #expect(try await dispatcher.dispatchOnce() == 1)
        }
        try await db.execute("UPDATE event_inbox SET next_attempt_at_ms = 0")
        #expect(try await dispatcher.dispatchOnce() == 0)
        #expect(try await bus.records(ids: ids)[ids[0]]?.status == "dead")
        await db.close()
    }

    @Test("payloads stored elsewhere are loaded through the source's loader")
    func payloadLoader() async throws {
        let test = try TestDatabase.make(.sqlite)
        let (db, bus) = try await Self.makeBus(test)
        bus.registerPayloadLoader(source: "ext") { _, id in Array("{\"id\":\"\(id)\"}".utf8) }
        let seen = LockedBox<[String]>([])
        bus.subscribe(
            EventSubscription(
                name: "reader", source: "ext", topics: ["*"],
                handler: .async { event in
                    seen.value.append(String(decoding: event.payload, as: UTF8.self))
                }))
        _ = try await db.transaction { try EventInbox.publish(in: $0, topic: "thing.made", source: "ext", sourceID: "abc", payload: nil) }
        _ = try await Self.publish(db, ["thing.made"], source: "other")
        #expect(try await bus.dispatcher().dispatchOnce() == 2)
        #expect(seen.value == ["{\"id\":\"abc\"}"])
        await db.close()
    }

    @Test("topic patterns")
    func topicPatterns() {
        let s = EventSubscription(name: "x", topics: ["workflow_job.*", "push", "installation.created"], handler: .async { _ in })
        #expect(s.matches(source: "github", topic: "workflow_job.queued"))
        #expect(s.matches(source: "github", topic: "push"))
        #expect(s.matches(source: "github", topic: "installation.created"))
        #expect(!s.matches(source: "github", topic: "installation.deleted"))
        #expect(!s.matches(source: "github", topic: "workflow_run.requested"))
        let bySource = EventSubscription(name: "y", source: "github", topics: ["*"], handler: .async { _ in })
        #expect(bySource.matches(source: "github", topic: "ping"))
        #expect(!bySource.matches(source: "billing", topic: "ping"))
    }
}

@Suite("Recently committed payloads kept for the dispatcher")
struct RecentPayloadsTests {
    @Test("each payload is taken once; the oldest go first when the bytes run out; oversize ones are not kept")
    func boundedAndTakenOnce() {
        let cache = RecentPayloads(maxBytes: 1_000)
        for i in 0..<10 { cache.put("k\(i)", Array(repeating: UInt8(i), count: 100)) }
        #expect(cache.heldBytes == 1_000)
        #expect(cache.take("k3") == Array(repeating: 3, count: 100))
        #expect(cache.take("k3") == nil)
        cache.put("k10", Array(repeating: 10, count: 200))  // 1,100 bytes: k0 goes
        #expect(cache.take("k0") == nil && cache.take("k1") == Array(repeating: 1, count: 100))
        #expect(cache.heldBytes <= 1_000)
        cache.put("big", Array(repeating: 0, count: 251))  // over a quarter of the budget
        #expect(cache.take("big") == nil)
        for i in 11..<5_000 {
            cache.put("k\(i)", [1])
            _ = cache.take("k\(i)")
        }
        #expect(cache.take("k10")?.count == 200)
    }
}
