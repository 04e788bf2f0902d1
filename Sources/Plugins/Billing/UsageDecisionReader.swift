import Foundation
import Host

/// Reads the priced lines out of a stored usage record's decision (a `DecisionRecord` whose
/// `output` is the `JobPrice` as a JSON string) with `JSONScanner`, without building a tree or
/// going through `JSONDecoder`: the monthly cycle reads every usage record of every workspace,
/// and most of a record is the policy's input, which billing never looks at. Records with the
/// same output share one parse (a cycle's records repeat a few prices many times).
struct UsageDecisionReader {
    /// Lines of the outputs already read, by output text.
    private var seen: [String: [BilledUsage.Line]] = [:]

    mutating func lines(decision: String, usageKey: String) throws -> [BilledUsage.Line] {
        var decision = decision
        let output = try decision.withUTF8 { utf8 -> String in
            let bytes = UnsafeRawBufferPointer(utf8)
            let members = try JSONScanner.objectMembers(bytes)
            guard let member = JSONScanner.member("output", in: members, bytes: bytes),
                let output = JSONScanner.string(at: member.value, in: bytes)
            else { throw UsageDecisionReader.bad(usageKey, "no output") }
            return output
        }
        if let lines = seen[output] { return lines }
        let lines = try UsageDecisionReader.parse(output: output, usageKey: usageKey)
        if seen.count < BillingLimits.decisionOutputsCached { seen[output] = lines }
        return lines
    }

    static func parse(output: String, usageKey: String) throws -> [BilledUsage.Line] {
        var output = output
        return try output.withUTF8 { utf8 in
            let bytes = UnsafeRawBufferPointer(utf8)
            let members = try JSONScanner.objectMembers(bytes)
            guard let list = JSONScanner.member("lines", in: members, bytes: bytes),
                let elements = try JSONScanner.elements(of: list.value, in: bytes)
            else { throw bad(usageKey, "no lines") }
            return try elements.map { element in
                guard let fields = try JSONScanner.members(of: element, in: bytes) else { throw bad(usageKey, "a line is not an object") }
                func integer(_ name: String) throws -> Int64 {
                    guard let field = JSONScanner.member(name, in: fields, bytes: bytes), let value = JSONScanner.integer(at: field.value, in: bytes)
                    else { throw bad(usageKey, "a line has no integer \(name)") }
                    return value
                }
                guard let field = JSONScanner.member("description", in: fields, bytes: bytes),
                    let description = JSONScanner.string(at: field.value, in: bytes)
                else { throw bad(usageKey, "a line has no description") }
                return BilledUsage.Line(
                    description: description, quantity: try integer("quantity"), unitPriceMicros: try integer("unit_price_micros"),
                    amountMicros: try integer("amount_micros"))
            }
        }
    }

    static func bad(_ usageKey: String, _ what: String) -> HostError {
        HostError(.internal, "usage record \(usageKey): its decision has \(what)")
    }
}

extension BillingLimits {
    /// Usage records one `INSERT` marks as taken by an invoice (one parameter each).
    static let invoiceUsageRowsPerInsert = 500
    /// Distinct decision outputs one invoice's drafting keeps parsed (records repeat a few prices).
    static let decisionOutputsCached = 1_024
}
