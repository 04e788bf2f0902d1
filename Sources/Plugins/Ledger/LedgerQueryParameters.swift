import Foundation
import Host

/// The text form of a history query, as the CLI's flags and the HTTP query parameters give it
/// (`since`, `until`, `code`, `limit`, `after`, `reversed`, `debits`, `credits`, `as_of`), turned
/// into a `TransferFilter` in one place so both read the same way.
package struct LedgerQueryParameters: Sendable {
    package var since: String?
    package var until: String?
    package var code: String?
    package var limit: String?
    /// The cursor: the timestamp of the last row of the previous page.
    package var after: String?
    package var reversed = false
    /// Only where the account is debited / credited (neither given: both).
    package var debits = false
    package var credits = false

    package init(
        since: String? = nil, until: String? = nil, code: String? = nil, limit: String? = nil, after: String? = nil,
        reversed: Bool = false, debits: Bool = false, credits: Bool = false
    ) {
        (self.since, self.until, self.code, self.limit, self.after) = (since, until, code, limit, after)
        (self.reversed, self.debits, self.credits) = (reversed, debits, credits)
    }

    /// Rows a page holds when no limit is given.
    package static let defaultLimit = 1_000

    package func filter() throws -> TransferFilter {
        var flags: TransferFilter.Flags = []
        if debits { flags.insert(.debits) }
        if credits { flags.insert(.credits) }
        if flags.isEmpty { flags = [.debits, .credits] }
        if reversed { flags.insert(.reversed) }
        var filter = TransferFilter(flags: flags)
        if let since { filter.timestampMin = try LedgerTime.parse(since, name: "since") }
        if let until { filter.timestampMax = try LedgerTime.parse(until, name: "until") }
        if let code {
            guard let value = UInt16(code), value != 0 else {
                throw HostError(.badRequest, "code must be a transfer code from 1 to 65535; got '\(code)'")
            }
            filter.code = value
        }
        filter.limit = Self.defaultLimit
        if let limit {
            guard let value = Int(limit), (1...LedgerLimits.maxQueryResults).contains(value) else {
                throw HostError(.badRequest, "limit must be from 1 to \(LedgerLimits.maxQueryResults); got '\(limit)'")
            }
            filter.limit = value
        }
        if let after { filter = filter.continuing(after: try LedgerTime.parse(after, name: "after")) }
        return filter
    }

    /// Reads a boolean query parameter: present and not `false`/`0`.
    package static func flag(_ value: String?) -> Bool {
        guard let value else { return false }
        return !["false", "0", "no"].contains(value.lowercased())
    }
}

/// Ledger timestamps: nanoseconds since 1970, written as that integer or as an ISO 8601 moment.
package enum LedgerTime {
    package static func parse(_ text: String, name: String) throws -> UInt64 {
        if let nanoseconds = UInt64(text) { return nanoseconds }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var date = formatter.date(from: text)
        if date == nil {
            formatter.formatOptions = [.withInternetDateTime]
            date = formatter.date(from: text)
        }
        if date == nil {
            formatter.formatOptions = [.withFullDate]
            date = formatter.date(from: text)
        }
        guard let date, date.timeIntervalSince1970 >= 0 else {
            throw HostError(.badRequest, "\(name) must be nanoseconds since 1970 or an ISO 8601 time like 2026-11-01T00:00:00Z; got '\(text)'")
        }
        // Whole microseconds first: a Double holds them exactly, nanoseconds it would round.
        return UInt64((date.timeIntervalSince1970 * 1_000_000).rounded()) * 1_000
    }
}
