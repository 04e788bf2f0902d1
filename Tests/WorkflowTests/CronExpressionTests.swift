import Host
import Testing

@testable import WorkflowPlugin

@Suite("Cron expressions (UTC, 5 fields)")
struct CronExpressionTests {
    static func ms(_ iso: String) -> Int64 { Timestamp.parseUTCSeconds(iso)! * 1000 }

    @Test(
        "next ticks",
        arguments: [
            ("* * * * *", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"),
            ("*/15 * * * *", "2026-01-01T00:07:30Z", "2026-01-01T00:15:00Z"),
            ("0 3 1 * *", "2026-01-01T03:00:00Z", "2026-02-01T03:00:00Z"),
            ("30 9 * * mon-fri", "2026-01-02T10:00:00Z", "2026-01-05T09:30:00Z"),
            ("0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
            ("0 12 13 * 5", "2026-01-01T00:00:00Z", "2026-01-02T12:00:00Z"),
            ("5,10 22-23 * dec 7", "2026-12-01T00:00:00Z", "2026-12-06T22:05:00Z"),
        ])
    func nextTicks(_ row: (String, String, String)) throws {
        let cron = try CronExpression(row.0)
        #expect(cron.next(afterMs: Self.ms(row.1)) == Self.ms(row.2))
    }

    @Test(
        "bad expressions are refused with the field named",
        arguments: [
            ("* * * *", "5 fields"), ("60 * * * *", "minute"), ("* 24 * * *", "hour"), ("* * 0 * *", "day-of-month"),
            ("* * * 13 *", "month"), ("* * * * 8", "day-of-week"), ("*/0 * * * *", "step"), ("5-1 * * * *", "backwards"),
            ("a * * * *", "not a number"),
        ])
    func badExpressions(_ row: (String, String)) {
        #expect { _ = try CronExpression(row.0) } throws: { error in "\(error)".contains(row.1) }
    }

    @Test("a date that never comes has no next tick")
    func never() throws {
        #expect(try CronExpression("0 0 31 2 *").next(afterMs: 0) == nil)
    }
}
