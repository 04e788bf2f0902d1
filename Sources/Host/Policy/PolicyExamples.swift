import Lua

/// Runs a policy's own `examples` like doc tests. Each example is
/// `{ name = "...", call = "price", input = {...}, expect = {...} }` or, for an error,
/// `expect_error = "text it contains"`. `expect` matches as a subset: every field given must be
/// equal (tables compared field by field, integers and floats distinct).
enum PolicyExamples {
    static func run(worker: PolicyWorker, path: String) -> [String] {
        let examples: LuaValue
        do {
            examples = try worker.field(path, "examples")
        } catch {
            return ["\(path): examples cannot be read: \(error)"]
        }
        guard case .table(let table) = examples else {
            return examples.isNil ? [] : ["\(path): 'examples' must be a list of tables"]
        }
        var errors: [String] = []
        for (index, example) in table.array.enumerated() {
            let name = example["name"].stringValue ?? "#\(index + 1)"
            guard let call = example["call"].stringValue else {
                errors.append("\(path): example \(name): needs call = \"<function name>\"")
                continue
            }
            do {
                let output = try worker.call(path, call, example["input"])
                if let expected = example["expect_error"].stringValue {
                    errors.append("\(path): example \(name): expected an error containing '\(expected)', got \(render(output))")
                } else if let mismatch = difference(expected: example["expect"], actual: output, at: "") {
                    errors.append("\(path): example \(name): \(mismatch)")
                }
            } catch let error as LuaError {
                if let expected = example["expect_error"].stringValue, error.message.contains(expected) { continue }
                errors.append("\(PolicyError(error, defaultFile: path).description) (in example \(name))")
            } catch {
                errors.append("\(path): example \(name): \(error)")
            }
        }
        return errors
    }

    /// The first difference between an expected subset and an actual value, or nil.
    static func difference(expected: LuaValue, actual: LuaValue, at path: String) -> String? {
        switch (expected, actual) {
        case (.table(let e), .table):
            for (index, value) in e.array.enumerated() {
                if let d = difference(expected: value, actual: actual[index + 1], at: "\(path)[\(index + 1)]") { return d }
            }
            for (key, value) in e.fieldPairs {
                let name = key.stringValue ?? "\(key)"
                if let d = difference(expected: value, actual: actual.tableValue?[key] ?? .nil, at: path.isEmpty ? name : "\(path).\(name)") {
                    return d
                }
            }
            return nil
        default:
            return expected == actual ? nil : "\(path.isEmpty ? "result" : path): expected \(render(expected)), got \(render(actual))"
        }
    }

    static func render(_ value: LuaValue) -> String {
        switch value {
        case .nil: return "nil"
        case .boolean(let b): return String(b)
        case .integer(let i): return String(i)
        case .number(let d): return "\(d) (a float)"
        case .string(let s): return "\"\(s)\""
        case .table(let t):
            let items = t.array.map(render) + t.fieldPairs.map { "\(render($0.key))=\(render($0.value))" }.sorted()
            return "{" + items.joined(separator: ", ") + "}"
        }
    }
}
