import Foundation
import Host

/// A five-field cron expression (minute hour day-of-month month day-of-week), in UTC. Fields
/// take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, and lists `a,b`; months and days
/// also take `jan`..`dec` and `sun`..`sat`; day-of-week 7 is Sunday. As in Vixie cron, when
/// both day fields are restricted a day matching either one fires.
package struct CronExpression: Sendable, Equatable, CustomStringConvertible {
    package let text: String
    let minutes: Set<Int>
    let hours: Set<Int>
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    let daysOfWeek: Set<Int>
    let dayOfMonthRestricted: Bool
    let dayOfWeekRestricted: Bool

    package var description: String { text }

    package init(_ text: String) throws {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw HostError(.badRequest, "cron '\(text)' must have 5 fields (minute hour day-of-month month day-of-week); it has \(fields.count)")
        }
        self.text = fields.joined(separator: " ")
        let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        minutes = try CronExpression.field(fields[0], "minute", 0...59, names: [:])
        hours = try CronExpression.field(fields[1], "hour", 0...23, names: [:])
        daysOfMonth = try CronExpression.field(fields[2], "day-of-month", 1...31, names: [:])
        months = try CronExpression.field(
            fields[3], "month", 1...12,
            names: Dictionary(uniqueKeysWithValues: monthNames.enumerated().map { ($1, $0 + 1) }))
        daysOfWeek = Set(
            try CronExpression.field(
                fields[4], "day-of-week", 0...7,
                names: Dictionary(uniqueKeysWithValues: dayNames.enumerated().map { ($1, $0) })
            ).map { $0 % 7 })
        dayOfMonthRestricted = fields[2] != "*"
        dayOfWeekRestricted = fields[4] != "*"
    }

    private static func field(_ text: String, _ what: String, _ range: ClosedRange<Int>, names: [String: Int]) throws -> Set<Int> {
        func bad(_ reason: String) -> HostError { HostError(.badRequest, "cron \(what) field '\(text)': \(reason)") }
        func number(_ part: Substring) throws -> Int {
            if let value = Int(part) ?? names[part.lowercased()] {
                guard range.contains(value) else { throw bad("\(value) is outside \(range.lowerBound)-\(range.upperBound)") }
                return value
            }
            throw bad("'\(part)' is not a number")
        }
        var values = Set<Int>()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else { throw bad("empty list item") }
            let pieces = item.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw bad("more than one '/'") }
            var step = 1
            if pieces.count == 2 {
                guard let s = Int(pieces[1]), s >= 1, s <= range.upperBound else { throw bad("bad step '\(pieces[1])'") }
                step = s
            }
            let lower: Int
            let upper: Int
            if pieces[0] == "*" {
                (lower, upper) = (range.lowerBound, range.upperBound)
            } else if let dash = pieces[0].firstIndex(of: "-") {
                lower = try number(pieces[0][..<dash])
                upper = try number(pieces[0][pieces[0].index(after: dash)...])
                guard lower <= upper else { throw bad("range \(lower)-\(upper) runs backwards") }
            } else {
                lower = try number(pieces[0])
                upper = pieces.count == 2 ? range.upperBound : lower
            }
            values.formUnion(stride(from: lower, through: upper, by: step))
        }
        return values
    }

    /// The first tick strictly after `afterMs` (Unix milliseconds), in Unix milliseconds; nil
    /// if none within five years (e.g. `0 0 31 2 *`).
    package func next(afterMs: Int64) -> Int64? {
        let startMinute = Int64((Double(afterMs) / 60_000).rounded(.down)) + 1
        var day = startMinute.floorDiv(1440)
        let firstMinuteOfDay = Int(startMinute - day * 1440)
        for offset in 0..<(366 * 5) {
            defer { day += 1 }
            let (_, month, dom) = CronExpression.civil(days: day)
            guard months.contains(month) else { continue }
            let dow = Int((day + 4).floorMod(7))  // 1970-01-01 was a Thursday
            let domMatch = daysOfMonth.contains(dom)
            let dowMatch = daysOfWeek.contains(dow)
            let dayMatches = dayOfMonthRestricted && dayOfWeekRestricted ? (domMatch || dowMatch) : (domMatch && dowMatch)
            guard dayMatches else { continue }
            let from = offset == 0 ? firstMinuteOfDay : 0
            for hour in hours.sorted() where hour * 60 + 59 >= from {
                for minute in minutes.sorted() where hour * 60 + minute >= from {
                    return (day * 1440 + Int64(hour * 60 + minute)) * 60_000
                }
            }
        }
        return nil
    }

    /// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's algorithm).
    static func civil(days: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), Int(m), Int(d))
    }
}

extension Int64 {
    func floorDiv(_ d: Int64) -> Int64 { (self >= 0 ? self : self - d + 1) / d }
    func floorMod(_ d: Int64) -> Int64 { self - floorDiv(d) * d }
}
