import Foundation
import Lua

/// What the monthly billing policy needs for one workspace and period.
public struct MonthlyLinesInput: Sendable, Codable {
    public struct Period: Sendable, Codable {
        public var start: String
        public var end: String
        public init(start: String, end: String) { self.start = start; self.end = end }
    }
    public struct Addon: Sendable, Codable {
        public var id: String
        /// `monthly` or `prepaid_12`.
        public var term: String
        public var startedAt: String
        public var cancelledAt: String?
        enum CodingKeys: String, CodingKey { case id, term, startedAt = "started_at", cancelledAt = "cancelled_at" }
        public init(id: String, term: String = "monthly", startedAt: String, cancelledAt: String? = nil) {
            self.id = id; self.term = term; self.startedAt = startedAt; self.cancelledAt = cancelledAt
        }
    }
    public struct Slots: Sendable, Codable {
        public var arch: String
        public var count: Int64
        public var startedAt: String
        public var cancelledAt: String?
        enum CodingKeys: String, CodingKey { case arch, count, startedAt = "started_at", cancelledAt = "cancelled_at" }
        public init(arch: String, count: Int64, startedAt: String, cancelledAt: String? = nil) {
            self.arch = arch; self.count = count; self.startedAt = startedAt; self.cancelledAt = cancelledAt
        }
    }
    public struct Storage: Sendable, Codable {
        /// Billable bytes of each day of the period (the transparent cache excluded).
        public var dailyBytes: [Int64]
        enum CodingKeys: String, CodingKey { case dailyBytes = "daily_bytes" }
        public init(dailyBytes: [Int64]) { self.dailyBytes = dailyBytes }
    }
    public struct Commitment: Sendable, Codable {
        public var monthlyMicros: Int64
        public var usageMicros: Int64
        enum CodingKeys: String, CodingKey { case monthlyMicros = "monthly_micros", usageMicros = "usage_micros" }
        public init(monthlyMicros: Int64, usageMicros: Int64) { self.monthlyMicros = monthlyMicros; self.usageMicros = usageMicros }
    }

    public var period: Period
    public var addons: [Addon]
    public var slots: [Slots]
    public var storage: Storage?
    public var commitment: Commitment?

    public init(period: Period, addons: [Addon] = [], slots: [Slots] = [], storage: Storage? = nil, commitment: Commitment? = nil) {
        self.period = period; self.addons = addons; self.slots = slots; self.storage = storage; self.commitment = commitment
    }

    enum CodingKeys: String, CodingKey { case period, addons, slots, storage, commitment }

    /// Lists left out mean none.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(period: try c.decode(Period.self, forKey: .period),
                  addons: try c.decodeIfPresent([Addon].self, forKey: .addons) ?? [],
                  slots: try c.decodeIfPresent([Slots].self, forKey: .slots) ?? [],
                  storage: try c.decodeIfPresent(Storage.self, forKey: .storage),
                  commitment: try c.decodeIfPresent(Commitment.self, forKey: .commitment))
    }
}

/// Invoice lines for one period besides usage, checked: integers, each line's quantity × unit
/// = amount, and the lines add up to the total.
public struct MonthlyLines: Sendable, Codable, Equatable {
    public let lines: [JobPrice.Line]
    public let totalMicros: Int64
    public let policyVersion: String
    enum CodingKeys: String, CodingKey { case lines, totalMicros = "total_micros", policyVersion = "policy_version" }
}

extension PolicyEngine {
    /// Asks `billing.lua` for the period's add-on, slot, storage and commitment lines.
    public func monthlyLines(_ input: MonthlyLinesInput) throws -> MonthlyLines {
        let json = String(decoding: try JSONEncoder().encode(input), as: UTF8.self)
        let value = try LuaJSON.value(fromJSON: json)
        let (output, version) = try evaluate("billing.lua", "monthly_lines", input: value, at: Timestamp.parseUTCSeconds(input.period.start))
        func fail(_ message: String) -> PolicyError { PolicyError(file: "billing.lua", line: nil, message: "monthly_lines returned \(message)") }
        func integer(_ value: LuaValue, _ name: String) throws -> Int64 {
            switch value {
            case .integer(let i) where i >= 0: return i
            case .number(let d): throw fail("a float for \(name) (\(d))")
            default: throw fail("no non-negative integer \(name)")
            }
        }
        guard case .table(let lines) = output["lines"] else { throw fail("no 'lines' list") }
        var checked: [JobPrice.Line] = []
        var sum: Int64 = 0
        for line in lines.array {
            guard let description = line["description"].stringValue else { throw fail("a line without a description") }
            let item = JobPrice.Line(description: description, quantity: try integer(line["quantity"], "quantity"),
                                     unitPriceMicros: try integer(line["unit_price_micros"], "unit_price_micros"),
                                     amountMicros: try integer(line["amount_micros"], "amount_micros"))
            let (product, overflow) = item.quantity.multipliedReportingOverflow(by: item.unitPriceMicros)
            guard !overflow, product == item.amountMicros else { throw fail("line '\(description)' whose quantity × unit ≠ amount") }
            sum += item.amountMicros
            checked.append(item)
        }
        let total = try integer(output["total_micros"], "total_micros")
        guard total == sum else { throw fail("lines adding up to \(sum), not total_micros \(total)") }
        return MonthlyLines(lines: checked, totalMicros: total, policyVersion: version)
    }
}

/// A workspace asking to buy an add-on or extra slots.
public struct EligibilityRequest: Sendable, Codable {
    public var item: String
    public var id: String?
    public var term: String?
    public var arch: String?
    public var count: Int64?
    public var salesApproved: Bool
    public var workspace: Workspace

    public struct Workspace: Sendable, Codable {
        public var hasPaymentMethod: Bool
        enum CodingKeys: String, CodingKey { case hasPaymentMethod = "has_payment_method" }
        public init(hasPaymentMethod: Bool) { self.hasPaymentMethod = hasPaymentMethod }
    }

    enum CodingKeys: String, CodingKey { case item, id, term, arch, count, salesApproved = "sales_approved", workspace }

    /// `sales_approved` may be left out (false).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        item = try c.decode(String.self, forKey: .item)
        id = try c.decodeIfPresent(String.self, forKey: .id)
        term = try c.decodeIfPresent(String.self, forKey: .term)
        arch = try c.decodeIfPresent(String.self, forKey: .arch)
        count = try c.decodeIfPresent(Int64.self, forKey: .count)
        salesApproved = try c.decodeIfPresent(Bool.self, forKey: .salesApproved) ?? false
        workspace = try c.decode(Workspace.self, forKey: .workspace)
    }

    public init(item: String, id: String? = nil, term: String? = nil, arch: String? = nil, count: Int64? = nil,
                salesApproved: Bool = false, workspace: Workspace) {
        self.item = item; self.id = id; self.term = term; self.arch = arch; self.count = count
        self.salesApproved = salesApproved; self.workspace = workspace
    }
}

public struct Eligibility: Sendable, Codable, Equatable {
    public let eligible: Bool
    public let reason: String?
    public let policyVersion: String
    enum CodingKeys: String, CodingKey { case eligible, reason, policyVersion = "policy_version" }
}

extension PolicyEngine {
    /// Asks `billing.lua` whether the workspace may buy the add-on or slots; a refusal names why.
    public func eligibility(_ request: EligibilityRequest) throws -> Eligibility {
        let value = try LuaJSON.value(fromJSON: String(decoding: try JSONEncoder().encode(request), as: UTF8.self))
        let (output, version) = try evaluate("billing.lua", "eligible", input: value)
        guard case .boolean(let eligible) = output["eligible"] else {
            throw PolicyError(file: "billing.lua", line: nil, message: "eligible returned no boolean 'eligible'")
        }
        let reason = output["reason"].stringValue
        guard eligible || reason != nil else {
            throw PolicyError(file: "billing.lua", line: nil, message: "eligible refused without a reason")
        }
        return Eligibility(eligible: eligible, reason: reason, policyVersion: version)
    }
}
