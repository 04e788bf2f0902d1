import Foundation
import Lua

/// What the monthly billing policy needs for one workspace and period.
package struct MonthlyLinesInput: Sendable, Codable {
    package struct Period: Sendable, Codable {
        package var start: String
        package var end: String
        package init(start: String, end: String) {
            self.start = start
            self.end = end
        }
    }
    package struct Addon: Sendable, Codable {
        package var id: String
        /// `monthly` or `prepaid_12`.
        package var term: String
        package var startedAt: String
        package var cancelledAt: String?
        enum CodingKeys: String, CodingKey { case id, term, startedAt = "started_at", cancelledAt = "cancelled_at" }
        package init(id: String, term: String = "monthly", startedAt: String, cancelledAt: String? = nil) {
            self.id = id
            self.term = term
            self.startedAt = startedAt
            self.cancelledAt = cancelledAt
        }
    }
    package struct Slots: Sendable, Codable {
        package var arch: String
        package var count: Int64
        package var startedAt: String
        package var cancelledAt: String?
        enum CodingKeys: String, CodingKey { case arch, count, startedAt = "started_at", cancelledAt = "cancelled_at" }
        package init(arch: String, count: Int64, startedAt: String, cancelledAt: String? = nil) {
            self.arch = arch
            self.count = count
            self.startedAt = startedAt
            self.cancelledAt = cancelledAt
        }
    }
    package struct Storage: Sendable, Codable {
        /// Billable bytes of each day of the period (the transparent cache excluded).
        package var dailyBytes: [Int64]
        enum CodingKeys: String, CodingKey { case dailyBytes = "daily_bytes" }
        package init(dailyBytes: [Int64]) { self.dailyBytes = dailyBytes }
    }
    package struct Commitment: Sendable, Codable {
        package var monthlyMicros: Int64
        package var usageMicros: Int64
        enum CodingKeys: String, CodingKey { case monthlyMicros = "monthly_micros", usageMicros = "usage_micros" }
        package init(monthlyMicros: Int64, usageMicros: Int64) {
            self.monthlyMicros = monthlyMicros
            self.usageMicros = usageMicros
        }
    }

    package var period: Period
    package var addons: [Addon]
    package var slots: [Slots]
    package var storage: Storage?
    package var commitment: Commitment?
    /// The workspace's contract name: the policy finds its commitment.
    package var contract: String?
    /// The period's usage charges after discounts (what a commitment is measured against).
    package var usageMicros: Int64?
    /// The usage charges on this invoice that the monthly free credit may cover.
    package var creditedUsageMicros: Int64?

    package init(
        period: Period, addons: [Addon] = [], slots: [Slots] = [], storage: Storage? = nil, commitment: Commitment? = nil,
        contract: String? = nil, usageMicros: Int64? = nil, creditedUsageMicros: Int64? = nil
    ) {
        self.period = period
        self.addons = addons
        self.slots = slots
        self.storage = storage
        self.commitment = commitment
        self.contract = contract
        self.usageMicros = usageMicros
        self.creditedUsageMicros = creditedUsageMicros
    }

    enum CodingKeys: String, CodingKey {
        case period, addons, slots, storage, commitment, contract, usageMicros = "usage_micros"
        case creditedUsageMicros = "credited_usage_micros"
    }

    /// Lists left out mean none.
    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            period: try c.decode(Period.self, forKey: .period),
            addons: try c.decodeIfPresent([Addon].self, forKey: .addons) ?? [],
            slots: try c.decodeIfPresent([Slots].self, forKey: .slots) ?? [],
            storage: try c.decodeIfPresent(Storage.self, forKey: .storage),
            commitment: try c.decodeIfPresent(Commitment.self, forKey: .commitment),
            contract: try c.decodeIfPresent(String.self, forKey: .contract),
            usageMicros: try c.decodeIfPresent(Int64.self, forKey: .usageMicros),
            creditedUsageMicros: try c.decodeIfPresent(Int64.self, forKey: .creditedUsageMicros))
    }
}

/// Invoice lines for one period besides usage, checked: integers, a known kind, each line's
/// quantity × unit = amount, only credits and discounts negative, and the lines add up to the total.
package struct MonthlyLines: Sendable, Codable, Equatable {
    package struct Line: Sendable, Codable, Equatable {
        /// `addon`, `slots`, `storage`, `true_up`, `contract_discount` or `monthly_credit`.
        package let kind: String
        package let description: String
        package let quantity: Int64
        package let unitPriceMicros: Int64
        package let amountMicros: Int64

        enum CodingKeys: String, CodingKey {
            case kind, description, quantity, unitPriceMicros = "unit_price_micros", amountMicros = "amount_micros"
        }
    }
    package static let kinds: Set<String> = ["addon", "slots", "storage", "true_up", "contract_discount", "monthly_credit"]
    package static let creditKinds: Set<String> = ["contract_discount", "monthly_credit"]

    package let lines: [Line]
    package let totalMicros: Int64
    package let policyVersion: String
    enum CodingKeys: String, CodingKey { case lines, totalMicros = "total_micros", policyVersion = "policy_version" }
}

extension PolicyEngine {
    /// Asks `billing.lua` for the period's add-on, slot, storage and commitment lines.
    package func monthlyLines(_ input: MonthlyLinesInput) throws -> MonthlyLines {
        let json = String(decoding: try JSONEncoder().encode(input), as: UTF8.self)
        let value = try LuaJSON.value(fromJSON: json)
        let (output, version) = try evaluate("billing.lua", "monthly_lines", input: value, at: Timestamp.parseUTCSeconds(input.period.start))
        func fail(_ message: String) -> PolicyError { PolicyError(file: "billing.lua", line: nil, message: "monthly_lines returned \(message)") }
        func integer(_ value: LuaValue, _ name: String, negativeAllowed: Bool = false) throws -> Int64 {
            switch value {
            case .integer(let i) where i >= 0 || negativeAllowed: return i
            case .number(let d): throw fail("a float for \(name) (\(d))")
            default: throw fail("no non-negative integer \(name)")
            }
        }
        guard case .table(let lines) = output["lines"] else { throw fail("no 'lines' list") }
        var checked: [MonthlyLines.Line] = []
        var sum: Int64 = 0
        for line in lines.array {
            guard let description = line["description"].stringValue else { throw fail("a line without a description") }
            guard let kind = line["kind"].stringValue, MonthlyLines.kinds.contains(kind) else {
                throw fail("line '\(description)' without a known kind (\(MonthlyLines.kinds.sorted().joined(separator: ", ")))")
            }
            let credit = MonthlyLines.creditKinds.contains(kind)
            let item = MonthlyLines.Line(
                kind: kind, description: description, quantity: try integer(line["quantity"], "quantity"),
                unitPriceMicros: try integer(line["unit_price_micros"], "unit_price_micros", negativeAllowed: credit),
                amountMicros: try integer(line["amount_micros"], "amount_micros", negativeAllowed: credit))
            let (product, overflow) = item.quantity.multipliedReportingOverflow(by: item.unitPriceMicros)
            guard !overflow, product == item.amountMicros else { throw fail("line '\(description)' whose quantity × unit ≠ amount") }
            guard credit || item.amountMicros >= 0, !credit || item.amountMicros <= 0 else {
                throw fail("line '\(description)' of kind \(kind) with the wrong sign")
            }
            sum += item.amountMicros
            checked.append(item)
        }
        let total = try integer(output["total_micros"], "total_micros", negativeAllowed: true)
        guard total == sum else { throw fail("lines adding up to \(sum), not total_micros \(total)") }
        return MonthlyLines(lines: checked, totalMicros: total, policyVersion: version)
    }
}

/// A workspace asking to buy an add-on or extra slots.
package struct EligibilityRequest: Sendable, Codable {
    package var item: String
    package var id: String?
    package var term: String?
    package var arch: String?
    package var count: Int64?
    package var salesApproved: Bool
    package var workspace: Workspace

    package struct Workspace: Sendable, Codable {
        package var hasPaymentMethod: Bool
        enum CodingKeys: String, CodingKey { case hasPaymentMethod = "has_payment_method" }
        package init(hasPaymentMethod: Bool) { self.hasPaymentMethod = hasPaymentMethod }
    }

    enum CodingKeys: String, CodingKey { case item, id, term, arch, count, salesApproved = "sales_approved", workspace }

    /// `sales_approved` may be left out (false).
    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        item = try c.decode(String.self, forKey: .item)
        id = try c.decodeIfPresent(String.self, forKey: .id)
        term = try c.decodeIfPresent(String.self, forKey: .term)
        arch = try c.decodeIfPresent(String.self, forKey: .arch)
        count = try c.decodeIfPresent(Int64.self, forKey: .count)
        salesApproved = try c.decodeIfPresent(Bool.self, forKey: .salesApproved) ?? false
        workspace = try c.decode(Workspace.self, forKey: .workspace)
    }

    package init(
        item: String, id: String? = nil, term: String? = nil, arch: String? = nil, count: Int64? = nil,
        salesApproved: Bool = false, workspace: Workspace
    ) {
        self.item = item
        self.id = id
        self.term = term
        self.arch = arch
        self.count = count
        self.salesApproved = salesApproved
        self.workspace = workspace
    }
}

package struct Eligibility: Sendable, Codable, Equatable {
    package let eligible: Bool
    package let reason: String?
    package let policyVersion: String
    enum CodingKeys: String, CodingKey { case eligible, reason, policyVersion = "policy_version" }
}

extension PolicyEngine {
    /// Asks `billing.lua` whether the workspace may buy the add-on or slots; a refusal names why.
    package func eligibility(_ request: EligibilityRequest) throws -> Eligibility {
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

extension PolicyEngine {
    /// The free minutes `billing.lua` grants a new workspace, once.
    package func signupFreeMinutes(workspace: String) throws -> Int64 {
        let (output, _) = try evaluate("billing.lua", "signup_grant", input: ["id": .string(workspace)])
        guard case .integer(let minutes) = output["free_minutes"], minutes >= 0 else {
            throw PolicyError(file: "billing.lua", line: nil, message: "signup_grant returned no non-negative integer free_minutes")
        }
        return minutes
    }
}

extension PolicyEngine {
    /// The payment provider's fee `billing.lua` books for a payment of `amountMicros`.
    package func paymentFeeMicros(amountMicros: Int64) throws -> Int64 {
        let (output, _) = try evaluate("billing.lua", "payment_fee", input: ["amount_micros": .integer(amountMicros)])
        guard case .integer(let fee) = output["fee_micros"], fee >= 0 else {
            throw PolicyError(file: "billing.lua", line: nil, message: "payment_fee returned no non-negative integer fee_micros")
        }
        return fee
    }
}

/// When `billing.lua` retries a failed charge and suspends an unpaid workspace (Unix seconds).
package struct DunningPlan: Sendable, Codable, Equatable {
    package let retryAt: [Int64]
    package let suspendAt: Int64
    package let policyVersion: String
    enum CodingKeys: String, CodingKey { case retryAt = "retry_at", suspendAt = "suspend_at", policyVersion = "policy_version" }
}

extension PolicyEngine {
    package func dunningPlan(firstFailureAt: Int64, periodEnd: Int64) throws -> DunningPlan {
        let (output, version) = try evaluate(
            "billing.lua", "dunning", input: ["first_failure_at": .integer(firstFailureAt), "period_end": .integer(periodEnd)])
        func fail() -> PolicyError {
            PolicyError(file: "billing.lua", line: nil, message: "dunning returned no integer retry_at list and suspend_at")
        }
        guard case .table(let list) = output["retry_at"], case .integer(let suspendAt) = output["suspend_at"] else { throw fail() }
        let retries = try list.array.map { value -> Int64 in
            guard case .integer(let at) = value, at >= firstFailureAt else { throw fail() }
            return at
        }
        return DunningPlan(retryAt: retries.sorted(), suspendAt: suspendAt, policyVersion: version)
    }
}
