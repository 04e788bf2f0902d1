import Foundation
import Host

/// A billing period: one calendar month in UTC, `[1st 00:00, next 1st 00:00)` (docs/PRODUCT.md §13).
package struct BillingPeriod: Sendable, Hashable, Comparable, CustomStringConvertible {
    package let year: Int
    package let month: Int

    package init(year: Int, month: Int) {
        precondition((1...12).contains(month), "month \(month)")
        self.year = year
        self.month = month
    }

    /// `2026-11`; anything else is a bad request.
    package init(_ text: String) throws {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 4, parts[1].count == 2, let year = Int(parts[0]), let month = Int(parts[1]),
            (2000...9999).contains(year), (1...12).contains(month)
        else { throw HostError(.badRequest, "a billing period is YYYY-MM, not '\(text)'") }
        self.init(year: year, month: month)
    }

    /// The period containing the Unix second `seconds`.
    package init(containing seconds: Int64) {
        let date = Date(timeIntervalSince1970: TimeInterval(seconds))
        let parts = BillingPeriod.calendar.dateComponents([.year, .month], from: date)
        self.init(year: parts.year!, month: parts.month!)
    }

    /// The period an inclusive or exclusive end names: `2024-01-31T23:59:59.999Z` (the runbook's
    /// inclusive form) and `2024-02-01T00:00:00Z` both end January.
    package init(endingAt text: String) throws {
        guard let seconds = Timestamp.parseUTCSeconds(text) else { throw HostError(.badRequest, "'\(text)' is not a UTC time (…Z)") }
        let exclusive = seconds % 86_400 == 0 && !text.contains(".")
        let period = BillingPeriod(containing: exclusive ? seconds - 1 : seconds)
        guard period.end - seconds == (exclusive ? 0 : 1) else { throw HostError(.badRequest, "'\(text)' is not the end of a calendar month") }
        self = period
    }

    static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    /// Unix seconds of the first instant.
    package var start: Int64 { BillingPeriod.epoch(year: year, month: month) }
    /// Unix seconds of the first instant of the next period.
    package var end: Int64 { next.start }
    package var next: BillingPeriod { month == 12 ? BillingPeriod(year: year + 1, month: 1) : BillingPeriod(year: year, month: month + 1) }
    package var previous: BillingPeriod { month == 1 ? BillingPeriod(year: year - 1, month: 12) : BillingPeriod(year: year, month: month - 1) }
    package var days: Int { Int((end - start) / 86_400) }

    package var description: String { Timestamp.padded(Int64(year), 4) + "-" + Timestamp.padded(Int64(month), 2) }
    package var startText: String { BillingPeriod.iso(start) }
    package var endText: String { BillingPeriod.iso(end) }

    static func epoch(year: Int, month: Int) -> Int64 {
        Timestamp.parseUTCSeconds(Timestamp.padded(Int64(year), 4) + "-" + Timestamp.padded(Int64(month), 2) + "-01T00:00:00Z")!
    }

    /// `2026-11-03T10:00:00Z` from Unix seconds.
    package static func iso(_ seconds: Int64) -> String { Timestamp.iso(seconds: seconds) }

    /// `2026-11-03` from Unix seconds.
    package static func day(_ seconds: Int64) -> String { String(iso(seconds).prefix(10)) }

    package static func < (a: BillingPeriod, b: BillingPeriod) -> Bool { (a.year, a.month) < (b.year, b.month) }
}

/// Exact money texts from integer micro-cents (1 USD = 100,000,000): never through a float.
package enum ExactMoney {
    package static let microsPerCent: Int64 = 1_000_000
    package static let microsPerDollar: Int64 = 100_000_000

    /// Half-up (away from zero) to whole cents.
    package static func cents(roundingHalfUp micros: Int64) -> Int64 {
        let magnitude = (micros.magnitude + UInt64(microsPerCent / 2)) / UInt64(microsPerCent)
        return micros < 0 ? -Int64(magnitude) : Int64(magnitude)
    }

    /// Dollars as the shortest exact decimal: 300,000 → `0.003`, 120,000,000 → `1.2`, 0 → `0`.
    package static func decimal(_ micros: Int64) -> String {
        let magnitude = micros.magnitude
        let whole = magnitude / UInt64(microsPerDollar)
        var fraction = String(magnitude % UInt64(microsPerDollar))
        fraction = String(repeating: "0", count: 8 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return (micros < 0 ? "-" : "") + String(whole) + (fraction.isEmpty ? "" : "." + fraction)
    }

    /// Dollars with exactly two decimals from whole cents: 1250 → `12.50`.
    package static func twoDecimals(cents: Int64) -> String {
        let magnitude = cents.magnitude
        let fraction = magnitude % 100
        return (cents < 0 ? "-" : "") + "\(magnitude / 100)." + (fraction < 10 ? "0" : "") + "\(fraction)"
    }
}
