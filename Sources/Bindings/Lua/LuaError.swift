import Foundation

/// An error from Lua, with where it happened when Lua said so.
package struct LuaError: Error, CustomStringConvertible, Sendable, Equatable {
    package enum Kind: String, Sendable {
        /// The chunk does not compile.
        case syntax
        /// The code raised an error (including errors raised by host functions).
        case runtime
        /// The state's memory budget was exhausted.
        case memory
        /// The instruction budget of the evaluation ran out.
        case instructionBudget
        /// The wall-clock cap of the evaluation ran out.
        case timeLimit
        /// A value could not cross between Lua and Swift (functions, cycles, too deep).
        case conversion
    }

    package let kind: Kind
    /// The message without its position prefix and without the traceback.
    package let message: String
    /// The chunk name Lua reported (e.g. `policies/pricing.lua`), if any.
    package let chunk: String?
    package let line: Int?
    package let traceback: String?

    package init(kind: Kind, message: String, chunk: String? = nil, line: Int? = nil, traceback: String? = nil) {
        self.kind = kind
        self.message = message
        self.chunk = chunk
        self.line = line
        self.traceback = traceback
    }

    /// `chunk:line: message`, the form operators see in logs and `tenki policy status`.
    package var description: String {
        if let chunk, let line { return "\(chunk):\(line): \(message)" }
        return message
    }

    /// Splits Lua's `chunk:line: message\nstack traceback:...` into its parts.
    static func parse(kind: Kind, raw: String) -> LuaError {
        var text = raw
        var traceback: String?
        if let range = text.range(of: "\nstack traceback:") {
            traceback = String(text[range.lowerBound...].dropFirst())
            text = String(text[..<range.lowerBound])
        }
        // Find the first ":<digits>: " — chunk names may themselves contain colons.
        let scalars = Array(text.unicodeScalars)
        var i = 0
        while i < scalars.count {
            if scalars[i] == ":" {
                var j = i + 1
                while j < scalars.count, ("0"..."9").contains(scalars[j]) { j += 1 }
                if j > i + 1, j + 1 < scalars.count, scalars[j] == ":", scalars[j + 1] == " " {
                    var chunk = String(String.UnicodeScalarView(scalars[0..<i]))
                    if chunk.hasPrefix("[string \""), chunk.hasSuffix("\"]") {
                        chunk = String(chunk.dropFirst(9).dropLast(2))
                    }
                    let line = Int(String(String.UnicodeScalarView(scalars[(i + 1)..<j])))
                    let message = String(String.UnicodeScalarView(scalars[(j + 2)...]))
                    return LuaError(kind: kind, message: message, chunk: chunk, line: line, traceback: traceback)
                }
            }
            i += 1
        }
        return LuaError(kind: kind, message: text, traceback: traceback)
    }
}
