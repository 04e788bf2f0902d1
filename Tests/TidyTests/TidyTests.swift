import Foundation
import TestSupport
import Testing

/// Style rules a formatter cannot check, in the spirit of TigerBeetle's `tidy.zig`: every Swift
/// file of the repository is read as text and checked for line length, function length and
/// declarations nothing uses. Formatting itself is `swift format`'s (see `tools/check-style.sh`).
@Suite("Tidy: line length, function length, unused declarations")
struct TidyTests {
    /// Longest line, in characters (the formatter's `lineLength`, which it cannot enforce on
    /// comments and string literals).
    static let maxLineCharacters = 150
    /// Longest function, initializer or accessor body, in lines from its signature to its `}`.
    static let maxFunctionLines = 80

    /// Functions allowed to be longer, each with why splitting it would not make it clearer.
    static let longFunctions: [String: String] = [
        "SQLiteDatabase.swift:commitGroup":
            "one group commit: savepoints, the whole-group rollback and the re-run of the rest read as one state machine",
        "LedgerModelTests.swift:run":
            "a model-checking harness: submitters, crash points and the final inspection share one timeline",
        "RunnerEndToEndTests.swift:mainPath":
            "the product's main story through `tenki serve`, from install to charge, read top to bottom as one scenario",
    ]

    /// Declarations only other programs use (so no Swift file names them twice).
    static let usedElsewhere: Set<String> = []

    struct SourceFile {
        let path: String
        let lines: [String]
    }

    static func swiftFiles() throws -> [SourceFile] {
        let root = Fixtures.packageRoot
        var files: [SourceFile] = []
        for top in ["Sources", "Tests", "Benchmarks"] {
            guard let walker = FileManager.default.enumerator(atPath: root + "/" + top) else { continue }
            for case let relative as String in walker where relative.hasSuffix(".swift") {
                let path = top + "/" + relative
                let text = try String(contentsOfFile: root + "/" + path, encoding: .utf8)
                files.append(SourceFile(path: path, lines: text.components(separatedBy: "\n")))
            }
        }
        #expect(files.count > 100, "the walk found the sources")
        return files
    }

    @Test("no line is longer than the limit")
    func lineLength() throws {
        for file in try Self.swiftFiles() {
            for (index, line) in file.lines.enumerated() where line.count > Self.maxLineCharacters {
                Issue.record("\(file.path):\(index + 1): \(line.count) characters (at most \(Self.maxLineCharacters))")
            }
        }
    }

    @Test("no function is longer than the limit, except the few allowed with a reason")
    func functionLength() throws {
        var allowedSeen: Set<String> = []
        for file in try Self.swiftFiles() {
            for function in FunctionScanner.functions(in: file.lines) where function.lineCount > Self.maxFunctionLines {
                let key = (file.path as NSString).lastPathComponent + ":" + function.name
                if Self.longFunctions[key] != nil {
                    allowedSeen.insert(key)
                    continue
                }
                Issue.record(
                    "\(file.path):\(function.firstLine): \(function.name) has \(function.lineCount) lines (at most \(Self.maxFunctionLines))")
            }
        }
        // An allowance for a function that got short (or went away) is removed, not kept.
        #expect(allowedSeen == Set(Self.longFunctions.keys))
    }

    @Test("the scanner measures functions as written")
    func scannerMeasures() {
        let lines = """
            struct A {
                func short() { let s = "}" }
                init(x: Int) {
                    let text = \"\"\"
                        { not a brace }
                        \"\"\"
                    // }
                }
                var computed: Int {
                    1
                }
            }
            """.components(separatedBy: "\n")
        let found = FunctionScanner.functions(in: lines)
        #expect(found.map(\.name) == ["short", "init", "computed"])
        #expect(found.map(\.lineCount) == [1, 6, 3])
        #expect(found.map(\.firstLine) == [2, 3, 9])
    }

    @Test("every function and static constant declared in Sources is used somewhere")
    func noUnusedDeclarations() throws {
        let files = try Self.swiftFiles()
        var uses: [Substring: Int] = [:]
        for file in files {
            for line in file.lines {
                for word in Self.words(in: Self.code(of: line)) { uses[word, default: 0] += 1 }
            }
        }
        let declaration =
            #/
            ^ \s* (?: @\w+ \s+ )*
            (?: (?: public|package|internal|private|fileprivate|static|final|mutating|nonisolated|override ) \s+ )*
            (?: func|static\ let|static\ var ) \s+ ([a-z_]\w*)
            /#
        for file in files where file.path.hasPrefix("Sources/") {
            for (index, line) in file.lines.enumerated() where line.contains("func ") || line.contains("static ") {
                guard let match = line.firstMatch(of: declaration) else { continue }
                let name = match.1
                if uses[name, default: 0] <= 1 && !Self.usedElsewhere.contains(String(name)) {
                    Issue.record("\(file.path):\(index + 1): \(name) is declared but nothing uses it")
                }
            }
        }
    }

    /// A line without its `//` comment (a rough cut: a `//` inside a string ends the code early,
    /// which can only hide uses, never invent them).
    static func code(of line: String) -> Substring {
        guard let range = line.range(of: "//") else { return Substring(line) }
        return line[..<range.lowerBound]
    }

    static func words(in text: Substring) -> [Substring] {
        text.split { !($0.isLetter || $0.isNumber || $0 == "_") }
    }
}

/// Finds functions, initializers and computed properties and their extent by counting braces
/// outside string literals and comments.
enum FunctionScanner {
    struct Function: Equatable {
        let name: String
        let firstLine: Int
        let lineCount: Int
    }

    static var head: Regex<(Substring, Substring?, Substring?, Substring?, Substring?)> {
        #/
        ^ \s* (?: @[\w.]+ (?: \( [^)]* \) )? \s+ )*
        (?: (?: public|package|internal|private|fileprivate|static|class|final|mutating|nonisolated|override|convenience|required ) \s+ )*
        (?: func \s+ ([^\s(<]+) | (init) [?!]? \s* [(<] | (deinit) \b | var \s+ (\w+) \s* : [^=]* \{ \s* $ )
        /#
    }

    static func functions(in lines: [String]) -> [Function] {
        var found: [Function] = []
        var state = LexState()
        // Open functions: name, first line, the brace depth their body opened at.
        var open: [(name: String, line: Int, depth: Int?)] = []
        for (index, line) in lines.enumerated() {
            // Swift's Regex is slow: only lines that can start a declaration are matched.
            let candidate = line.contains("func ") || line.contains("init") || line.contains("deinit") || line.contains("var ")
            if candidate, !state.inMultilineString, let match = line.firstMatch(of: head) {
                let captures: [Substring?] = [match.1, match.2, match.3, match.4]
                let name = captures.compactMap { $0 }.first.map(String.init) ?? "?"
                open.append((name, index + 1, nil))
            }
            for brace in state.braces(in: line) {
                if brace == "{" {
                    state.depth += 1
                    if let last = open.last, last.depth == nil { open[open.count - 1].depth = state.depth }
                } else {
                    if let last = open.last, last.depth == state.depth {
                        found.append(Function(name: last.name, firstLine: last.line, lineCount: index + 2 - last.line))
                        open.removeLast()
                    }
                    state.depth -= 1
                }
            }
            // A protocol requirement or a declaration without a body never opened one.
            if let last = open.last, last.depth == nil, last.line == index + 1, !line.contains("{") { open.removeLast() }
        }
        return found.sorted { $0.firstLine < $1.firstLine }
    }

    struct LexState {
        var depth = 0
        var inMultilineString = false

        /// The braces of a line that are code, in order.
        mutating func braces(in line: String) -> [Character] {
            var out: [Character] = []
            var inString = false
            var escaped = false
            let characters = Array(line)
            var i = 0
            while i < characters.count {
                let c = characters[i]
                let tripleQuote = i + 2 < characters.count && c == "\"" && characters[i + 1] == "\"" && characters[i + 2] == "\""
                if inMultilineString {
                    if tripleQuote {
                        inMultilineString = false
                        i += 3
                        continue
                    }
                } else if inString {
                    if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { inString = false }
                } else if tripleQuote {
                    inMultilineString = true
                    i += 3
                    continue
                } else if c == "\"" {
                    inString = true
                } else if c == "/" && i + 1 < characters.count && characters[i + 1] == "/" {
                    break
                } else if c == "{" || c == "}" {
                    out.append(c)
                }
                i += 1
            }
            return out
        }
    }
}
