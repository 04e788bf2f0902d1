import Lua

/// Rules the host enforces on every contract under `contracts/`, whatever the contract says:
/// its shape, and an effective discount of at most 50 % on every SKU (custom rate and
/// percentage discount combined), checked with exact integer arithmetic.
enum ContractRules {
    /// The largest discount a contract may give, in percent.
    static let maxDiscountPercent: Int64 = 50

    static func validate(worker: PolicyWorker, set: PolicySet) -> [String] {
        let contracts = set.policyPaths.filter { $0.hasPrefix("contracts/") }
        guard !contracts.isEmpty else { return [] }
        var listRates: [String: Int64] = [:]
        if set.policyPaths.contains("pricing.lua"), case .table(let skus)? = try? worker.field("pricing.lua", "skus") {
            for sku in skus.array {
                if let id = sku["id"].stringValue, let rate = sku["rate"].integerValue { listRates[id] = rate }
            }
        }
        var errors: [String] = []
        for path in contracts {
            let source = set.files.first { $0.path == path }?.source ?? ""
            func error(_ field: String, _ message: String) {
                errors.append(PolicyError(file: path, line: line(of: field, in: source), message: message).description)
            }
            func read(_ field: String) -> LuaValue { (try? worker.field(path, field)) ?? .nil }
            for field in ["starts", "ends"] {
                guard let text = read(field).stringValue, isUTC(text) else {
                    error(field, "'\(field)' must be a UTC time like \"2026-01-01T00:00:00Z\"")
                    continue
                }
            }
            // Discount in millionths of a percent, exactly.
            var discount: Int64 = 0
            switch read("discount_percent") {
            case .nil: break
            case .string(let text):
                guard let parsed = millionths(text), parsed >= 0 else {
                    error("discount_percent", "discount_percent '\(text)' is not a decimal percentage")
                    continue
                }
                discount = parsed
            case .integer(let i): discount = i * 1_000_000
            case let other: error("discount_percent", "discount_percent must be text like \"12.5\", not a \(other.typeName)")
            }
            if discount > maxDiscountPercent * 1_000_000 {
                error("discount_percent", "discount of \(Double(discount) / 1e6)% exceeds the host's 50% cap")
                continue
            }
            if case .table(let rates) = read("rates") {
                for (key, value) in rates.fieldPairs {
                    guard let sku = key.stringValue, let list = listRates[sku] else {
                        error("rates", "rates names an unknown SKU '\(key)'")
                        continue
                    }
                    guard let rate = value.integerValue, rate > 0 else {
                        error("rates", "the rate for \(sku) must be a positive integer (use money.parse)")
                        continue
                    }
                    // Effective price = rate × (100% − discount); it must be ≥ 50% of the list price.
                    let effective = Int128(rate) * Int128(100_000_000 - discount)
                    let floor = Int128(list) * Int128(100_000_000 - maxDiscountPercent * 1_000_000)
                    if effective < floor {
                        error(
                            sku,
                            "the effective discount on \(sku) exceeds the host's 50% cap (list \(list), contract \(rate), discount "
                                + "\(Double(discount) / 1e6)%)"
                        )
                    }
                }
            } else if !read("rates").isNil {
                error("rates", "rates must be a table of SKU id = micro-cents per minute")
            }
        }
        return errors
    }

    static func isUTC(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.count == 20 && bytes[4] == UInt8(ascii: "-") && bytes[10] == UInt8(ascii: "T") && bytes[19] == UInt8(ascii: "Z")
    }

    /// "12.5" → 12_500_000 (millionths); nil when not a plain decimal with ≤ 6 decimals.
    static func millionths(_ text: String) -> Int64? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let whole = Int64(parts[0]), whole < 1_000_000 else { return nil }
        var fraction: Int64 = 0
        if parts.count == 2 {
            let digits = parts[1]
            guard !digits.isEmpty, digits.count <= 6, digits.allSatisfy(\.isNumber), let value = Int64(digits) else { return nil }
            fraction = value
            for _ in digits.count..<6 { fraction *= 10 }
        }
        return whole * 1_000_000 + fraction
    }

    /// The first line mentioning `field`, so an operator is pointed at it.
    static func line(of field: String, in source: String) -> Int? {
        for (index, line) in source.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where line.contains(field) && !line.trimmingCharacters(in: .whitespaces).hasPrefix("--") {
            return index + 1
        }
        return nil
    }
}
