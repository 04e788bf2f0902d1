import Foundation
import Lua

/// A finished job as the pricing policy sees it.
package struct JobPriceInput: Sendable, Codable {
    /// The SKU id (e.g. `x64-4c-8gb`), or nil to match `labels`.
    package var sku: String?
    package var labels: [String]?
    package var startedAt: String
    package var completedAt: String
    package var workspace: WorkspaceState

    package struct WorkspaceState: Sendable, Codable {
        package var freeMinutesRemaining: Int64
        package var hasPaymentMethod: Bool
        package var addons: [String]
        package var contract: String?

        package init(freeMinutesRemaining: Int64, hasPaymentMethod: Bool, addons: [String] = [], contract: String? = nil) {
            self.freeMinutesRemaining = freeMinutesRemaining
            self.hasPaymentMethod = hasPaymentMethod
            self.addons = addons
            self.contract = contract
        }

        enum CodingKeys: String, CodingKey {
            case freeMinutesRemaining = "free_minutes_remaining", hasPaymentMethod = "has_payment_method", addons, contract
        }
    }

    package init(sku: String? = nil, labels: [String]? = nil, startedAt: String, completedAt: String, workspace: WorkspaceState) {
        self.sku = sku
        self.labels = labels
        self.startedAt = startedAt
        self.completedAt = completedAt
        self.workspace = workspace
    }

    enum CodingKeys: String, CodingKey {
        case sku, labels, startedAt = "started_at", completedAt = "completed_at", workspace
    }

    /// Writes the input table straight onto the Lua stack (the evaluation fast path).
    func write(_ w: LuaWriter) {
        w.table(fieldCount: 5) { t in
            t.set(PolicyKey.sku, sku)
            if let labels { t.set(PolicyKey.labels, strings: labels) }
            t.set(PolicyKey.startedAt, startedAt)
            t.set(PolicyKey.completedAt, completedAt)
            t.set(PolicyKey.workspace) { ws in
                ws.set(PolicyKey.freeMinutesRemaining, workspace.freeMinutesRemaining)
                ws.set(PolicyKey.hasPaymentMethod, workspace.hasPaymentMethod)
                ws.set(PolicyKey.addons, strings: workspace.addons)
                ws.set(PolicyKey.contract, workspace.contract)
            }
        }
    }
}

/// The price of a finished job: money and free minutes, line by line, with the policy version.
package struct JobPrice: Sendable, Codable, Equatable {
    /// False when the job's labels name no offering: it is not ours and costs nothing.
    package let matched: Bool
    package let sku: String?
    package let billableMinutes: Int64
    package let freeMinutesConsumed: Int64
    /// Charged in money, in micro-cents (1 USD = 100,000,000).
    package let amountMicros: Int64
    package let lines: [Line]
    package let policyVersion: String

    package struct Line: Sendable, Codable, Equatable {
        package let description: String
        package let quantity: Int64
        package let unitPriceMicros: Int64
        package let amountMicros: Int64

        enum CodingKeys: String, CodingKey {
            case description, quantity, unitPriceMicros = "unit_price_micros", amountMicros = "amount_micros"
        }

        package init(description: String, quantity: Int64, unitPriceMicros: Int64, amountMicros: Int64) {
            self.description = description
            self.quantity = quantity
            self.unitPriceMicros = unitPriceMicros
            self.amountMicros = amountMicros
        }
    }

    enum CodingKeys: String, CodingKey {
        case matched, sku, billableMinutes = "billable_minutes", freeMinutesConsumed = "free_minutes_consumed"
        case amountMicros = "amount_micros", lines, policyVersion = "policy_version"
    }
}

/// What a decision saw and said, stored by callers so a charge can explain itself.
package struct DecisionRecord: Sendable, Codable, Equatable {
    package let decision: String
    package let policyVersion: String
    /// The input the policy received, as JSON.
    package let input: String
    /// The checked result, as JSON.
    package let output: String

    enum CodingKeys: String, CodingKey {
        case decision, policyVersion = "policy_version", input, output
    }

    package init(decision: String, policyVersion: String, input: String, output: String) {
        self.decision = decision
        self.policyVersion = policyVersion
        self.input = input
        self.output = output
    }

    /// A record of any decision from its typed input and checked output.
    package init<I: Encodable, O: Encodable>(decision: String, policyVersion: String, input: I, output: O) {
        let encoder = JSONCoding.encoder()
        self.init(
            decision: decision, policyVersion: policyVersion,
            input: (try? encoder.encode(input)).map { String(decoding: $0, as: UTF8.self) } ?? "null",
            output: (try? encoder.encode(output)).map { String(decoding: $0, as: UTF8.self) } ?? "null")
    }
}

extension PolicyEngine {
    /// Prices a finished job with `pricing.lua`. The result is checked strictly: amounts are
    /// integers, never negative, and the lines add up to the total.
    package func priceJob(_ input: JobPriceInput) throws -> PriceDecision {
        // The version in force when the job completed decides, so late and replayed events are
        // priced as they would have been then.
        let price = try evaluate("pricing.lua", "price", at: Timestamp.parseUTCSeconds(input.completedAt), writing: input.write) { output, version in
            try JobPriceReader(output: output, version: version).read()
        }
        return PriceDecision(price: price, input: input)
    }
}

/// A priced job and what it takes to explain it.
package struct PriceDecision: Sendable {
    package let price: JobPrice
    let input: JobPriceInput

    /// The decision record to store with the charge (serialized on demand).
    package var record: DecisionRecord {
        // The input's Codable form has the keys and omissions the Lua table got from `write`.
        DecisionRecord(
            decision: "price", policyVersion: price.policyVersion, input: (try? JSONCoding.text(input)) ?? "{}",
            output: (try? JSONCoding.text(price)) ?? "{}")
    }
}

/// How many free minutes a finished job consumes, and how many minutes are left to charge.
package struct FreeMinutesDecision: Sendable, Codable, Equatable {
    package let matched: Bool
    package let billableMinutes: Int64
    package let freeMinutesConsumed: Int64
    package let chargedMinutes: Int64
    package let policyVersion: String
    enum CodingKeys: String, CodingKey {
        case matched, billableMinutes = "billable_minutes", freeMinutesConsumed = "free_minutes_consumed"
        case chargedMinutes = "charged_minutes", policyVersion = "policy_version"
    }
}

extension PolicyEngine {
    /// The free-minutes decision alone (`pricing.lua`, `consume`): what `price` also applies.
    package func consumeFreeMinutes(_ input: JobPriceInput) throws -> FreeMinutesDecision {
        try evaluate("pricing.lua", "consume", at: Timestamp.parseUTCSeconds(input.completedAt), writing: input.write) { output, version in
            func fail(_ message: String) -> PolicyError { PolicyError(file: "pricing.lua", line: nil, message: "consume returned \(message)") }
            guard case .boolean(let matched) = output["matched"] else { throw fail("no boolean 'matched'") }
            guard matched else {
                return FreeMinutesDecision(matched: false, billableMinutes: 0, freeMinutesConsumed: 0, chargedMinutes: 0, policyVersion: version)
            }
            func count(_ name: String) throws -> Int64 {
                guard case .integer(let i) = output[name], i >= 0 else { throw fail("no non-negative integer \(name)") }
                return i
            }
            let decision = FreeMinutesDecision(
                matched: true, billableMinutes: try count("billable_minutes"),
                freeMinutesConsumed: try count("free_minutes_consumed"),
                chargedMinutes: try count("charged_minutes"), policyVersion: version)
            guard decision.chargedMinutes <= decision.billableMinutes,
                input.workspace.freeMinutesRemaining >= decision.freeMinutesConsumed
            else {
                throw fail("more minutes than the job has or free minutes than the workspace has")
            }
            return decision
        }
    }
}

/// Strict reading of the pricing policy's answer, in place on the Lua stack: a wrong shape is
/// an error, never a guess.
struct JobPriceReader {
    let output: LuaReader
    let version: String

    func fail(_ message: String) -> PolicyError { PolicyError(file: "pricing.lua", line: nil, message: "price returned \(message)") }

    func integer(_ reader: LuaReader, _ key: LuaKey, signed: Bool = false) throws -> Int64 {
        if let i = reader.integer(key) {
            guard i >= 0 || signed else { throw fail("a negative \(key) (\(i))") }
            return i
        }
        switch reader[key] {
        case .number(let d): throw fail("a float for \(key) (\(d)); amounts and counts must be integers (use money.*)")
        case let other: throw fail("no integer \(key) (got \(other))")
        }
    }

    func read() throws -> JobPrice {
        guard output.isTable else { throw fail("something other than a table") }
        guard case .boolean(let matched) = output[PolicyKey.matched] else { throw fail("no boolean 'matched'") }
        guard matched else {
            return JobPrice(matched: false, sku: nil, billableMinutes: 0, freeMinutesConsumed: 0, amountMicros: 0, lines: [], policyVersion: version)
        }
        guard case .string(let sku) = output[PolicyKey.sku] else { throw fail("no string 'sku'") }
        let amount = try integer(output, PolicyKey.amountMicros)
        let minutes = try integer(output, PolicyKey.billableMinutes)
        let free = try integer(output, PolicyKey.freeMinutesConsumed)
        var lines: [JobPrice.Line] = []
        lines.reserveCapacity(4)
        var total: Int64 = 0
        let found: Void? = try output.table(PolicyKey.lines) { list in
            try list.forEachTable { line in
                guard case .string(let description) = line[PolicyKey.description] else { throw fail("a line without a description") }
                let item = JobPrice.Line(
                    description: description, quantity: try integer(line, PolicyKey.quantity),
                    unitPriceMicros: try integer(line, PolicyKey.unitPriceMicros, signed: true),
                    amountMicros: try integer(line, PolicyKey.amountMicros, signed: true))
                let (product, overflow) = item.quantity.multipliedReportingOverflow(by: item.unitPriceMicros)
                guard !overflow, product == item.amountMicros else {
                    throw fail("line '\(description)': \(item.quantity) × \(item.unitPriceMicros) ≠ \(item.amountMicros)")
                }
                let (sum, sumOverflow) = total.addingReportingOverflow(item.amountMicros)
                guard !sumOverflow else { throw fail("lines whose sum overflows") }
                total = sum
                lines.append(item)
            }
        }
        guard found != nil else { throw fail("no 'lines' list") }
        guard total == amount else { throw fail("lines adding up to \(total), not amount_micros \(amount)") }
        return JobPrice(
            matched: true, sku: sku, billableMinutes: minutes, freeMinutesConsumed: free, amountMicros: amount,
            lines: lines, policyVersion: version)
    }
}

/// Field names the decisions push and read on every evaluation, interned once per state.
enum PolicyKey {
    static let sku = LuaKey("sku")
    static let labels = LuaKey("labels")
    static let startedAt = LuaKey("started_at")
    static let completedAt = LuaKey("completed_at")
    static let workspace = LuaKey("workspace")
    static let freeMinutesRemaining = LuaKey("free_minutes_remaining")
    static let hasPaymentMethod = LuaKey("has_payment_method")
    static let addons = LuaKey("addons")
    static let contract = LuaKey("contract")
    static let matched = LuaKey("matched")
    static let amountMicros = LuaKey("amount_micros")
    static let billableMinutes = LuaKey("billable_minutes")
    static let freeMinutesConsumed = LuaKey("free_minutes_consumed")
    static let lines = LuaKey("lines")
    static let description = LuaKey("description")
    static let quantity = LuaKey("quantity")
    static let unitPriceMicros = LuaKey("unit_price_micros")
}
