/// A strict, allocation-light JSON validator (RFC 8259, UTF-8) that records where each member
/// of an object lies, so the hot path can check a whole payload and read a few fields without
/// building a tree.
package enum JSONScanner {
    /// Deepest nesting accepted; deeper documents are rejected, not recursed into.
    package static let maxDepth = 256

    package struct SyntaxError: Error, CustomStringConvertible, Equatable {
        package let offset: Int
        package let reason: String
        package var description: String { "\(reason) at byte \(offset)" }
    }

    /// One member of an object: the key's raw bytes (between the quotes) and the value's range.
    package struct Member {
        package let key: Range<Int>
        package let keyHasEscapes: Bool
        package let value: Range<Int>
    }

    /// Validates `bytes` as one JSON document whose top level is an object; returns its members.
    package static func objectMembers(_ bytes: UnsafeRawBufferPointer) throws -> [Member] {
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        guard parser.peek() == UInt8(ascii: "{") else { throw parser.error("top level is not an object") }
        var members: [Member] = []
        try parser.parseObject(depth: 0, members: &members)
        parser.skipWhitespace()
        guard parser.position == bytes.count else { throw parser.error("unexpected data after the document") }
        return members
    }

    /// The members of an already-validated object value at `range`.
    package static func members(of range: Range<Int>, in bytes: UnsafeRawBufferPointer) throws -> [Member]? {
        guard bytes[range.lowerBound] == UInt8(ascii: "{") else { return nil }
        var parser = Parser(bytes: bytes, position: range.lowerBound)
        var members: [Member] = []
        try parser.parseObject(depth: 0, members: &members)
        return members
    }

    /// The element ranges of an already-validated array value at `range`.
    package static func elements(of range: Range<Int>, in bytes: UnsafeRawBufferPointer) throws -> [Range<Int>]? {
        guard bytes[range.lowerBound] == UInt8(ascii: "[") else { return nil }
        var parser = Parser(bytes: bytes, position: range.lowerBound + 1)
        var elements: [Range<Int>] = []
        parser.skipWhitespace()
        if parser.peek() == UInt8(ascii: "]") { return elements }
        while true {
            parser.skipWhitespace()
            let start = parser.position
            try parser.parseValue(depth: 1)
            elements.append(start..<parser.position)
            parser.skipWhitespace()
            guard let c = parser.peek() else { throw parser.error("unexpected end of input") }
            parser.position += 1
            if c == UInt8(ascii: "]") { return elements }
            guard c == UInt8(ascii: ",") else { throw parser.error("expected ',' or ']'") }
        }
    }

    /// The member named `name` (compared on raw bytes; keys with escapes are decoded first).
    package static func member(_ name: String, in members: [Member], bytes: UnsafeRawBufferPointer) -> Member? {
        let wanted = Array(name.utf8)
        return members.first { member in
            if member.keyHasEscapes { return decodeString(member.key, in: bytes) == name }
            return member.key.count == wanted.count && zip(member.key, wanted).allSatisfy { bytes[$0] == $1 }
        }
    }

    /// The value at `range` as a string, if it is a JSON string.
    package static func string(at range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> String? {
        guard range.count >= 2, bytes[range.lowerBound] == UInt8(ascii: "\"") else { return nil }
        return decodeString(range.lowerBound + 1..<range.upperBound - 1, in: bytes)
    }

    /// The value at `range` as an integer, if it is a JSON number without fraction or exponent.
    package static func integer(at range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Int64? {
        Int64(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self))
    }

    /// Decodes the raw bytes of a (validated) string body, resolving escapes.
    static func decodeString(_ range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        var i = range.lowerBound
        func hex4(_ at: Int) -> UInt32 {
            var value: UInt32 = 0
            for k in 0..<4 {
                let c = bytes[at + k]
                let digit: UInt8 = c <= 57 ? c - 48 : (c | 0x20) - 87
                value = value << 4 | UInt32(digit)
            }
            return value
        }
        while i < range.upperBound {
            let c = bytes[i]
            guard c == UInt8(ascii: "\\") else {
                out.append(c)
                i += 1
                continue
            }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "n"): out.append(10)
            case UInt8(ascii: "t"): out.append(9)
            case UInt8(ascii: "r"): out.append(13)
            case UInt8(ascii: "b"): out.append(8)
            case UInt8(ascii: "f"): out.append(12)
            case UInt8(ascii: "u"):
                var scalar = hex4(i)
                i += 4
                if (0xD800...0xDBFF).contains(scalar), i + 5 < range.upperBound, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                    let low = hex4(i + 2)
                    if (0xDC00...0xDFFF).contains(low) {
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
                    }
                }
                out.append(contentsOf: Array(String(Unicode.Scalar(scalar).map(Character.init) ?? "\u{FFFD}").utf8))
            default: out.append(e)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    struct Parser {
        let bytes: UnsafeRawBufferPointer
        var position = 0

        init(bytes: UnsafeRawBufferPointer, position: Int = 0) {
            self.bytes = bytes
            self.position = position
        }

        func error(_ reason: String) -> SyntaxError { SyntaxError(offset: position, reason: reason) }

        func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

        mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        mutating func expect(_ byte: UInt8, _ what: String) throws {
            guard peek() == byte else { throw error("expected \(what)") }
            position += 1
        }

        mutating func parseValue(depth: Int) throws {
            guard depth < JSONScanner.maxDepth else { throw error("nested deeper than \(JSONScanner.maxDepth)") }
            guard let c = peek() else { throw error("unexpected end of input") }
            switch c {
            case UInt8(ascii: "{"):
                var ignored: [Member] = []
                try parseObject(depth: depth, members: &ignored, record: false)
            case UInt8(ascii: "["): try parseArray(depth: depth)
            case UInt8(ascii: "\""): _ = try parseString()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try parseNumber()
            default: throw error("unexpected character")
            }
        }

        mutating func literal(_ word: StaticString) throws {
            let count = word.utf8CodeUnitCount
            guard position + count <= bytes.count else { throw error("unexpected end of input") }
            for k in 0..<count where bytes[position + k] != word.utf8Start[k] { throw error("invalid literal") }
            position += count
        }

        mutating func parseObject(depth: Int, members: inout [Member], record: Bool = true) throws {
            try expect(UInt8(ascii: "{"), "'{'")
            skipWhitespace()
            if peek() == UInt8(ascii: "}") {
                position += 1
                return
            }
            while true {
                skipWhitespace()
                guard peek() == UInt8(ascii: "\"") else { throw error("expected a member name") }
                let (key, escaped) = try parseString()
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "':'")
                skipWhitespace()
                let start = position
                try parseValue(depth: depth + 1)
                if record { members.append(Member(key: key, keyHasEscapes: escaped, value: start..<position)) }
                skipWhitespace()
                guard let c = peek() else { throw error("unexpected end of input") }
                position += 1
                if c == UInt8(ascii: "}") { return }
                guard c == UInt8(ascii: ",") else {
                    position -= 1
                    throw error("expected ',' or '}'")
                }
            }
        }

        mutating func parseArray(depth: Int) throws {
            try expect(UInt8(ascii: "["), "'['")
            skipWhitespace()
            if peek() == UInt8(ascii: "]") {
                position += 1
                return
            }
            while true {
                skipWhitespace()
                try parseValue(depth: depth + 1)
                skipWhitespace()
                guard let c = peek() else { throw error("unexpected end of input") }
                position += 1
                if c == UInt8(ascii: "]") { return }
                guard c == UInt8(ascii: ",") else {
                    position -= 1
                    throw error("expected ',' or ']'")
                }
            }
        }

        /// Returns the body's range (between the quotes) and whether it has escapes.
        mutating func parseString() throws -> (Range<Int>, Bool) {
            try expect(UInt8(ascii: "\""), "'\"'")
            let start = position
            var escaped = false
            while position < bytes.count {
                let c = bytes[position]
                // Fast path: printable ASCII other than quote and backslash.
                if c >= 0x20 && c < 0x80 && c != 0x22 && c != 0x5C {
                    position += 1
                    continue
                }
                switch c {
                case UInt8(ascii: "\""):
                    position += 1
                    return (start..<position - 1, escaped)
                case UInt8(ascii: "\\"):
                    escaped = true
                    guard position + 1 < bytes.count else { throw error("unexpected end of input") }
                    switch bytes[position + 1] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                        UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        position += 2
                    case UInt8(ascii: "u"):
                        guard position + 6 <= bytes.count else { throw error("unexpected end of input") }
                        for k in 2..<6 where !isHex(bytes[position + k]) { throw error("invalid \\u escape") }
                        position += 6
                    default: throw error("invalid escape")
                    }
                case 0..<0x20: throw error("control character in string")
                case 0x80...: try skipUTF8Sequence()
                default: position += 1
                }
            }
            throw error("unterminated string")
        }

        func isHex(_ c: UInt8) -> Bool {
            (48...57).contains(c) || (65...70).contains(c) || (97...102).contains(c)
        }

        /// Validates one multi-byte UTF-8 sequence (no overlongs, no surrogates, ≤ U+10FFFF).
        mutating func skipUTF8Sequence() throws {
            let c = bytes[position]
            let length: Int
            var low: UInt8 = 0x80
            var high: UInt8 = 0xBF
            switch c {
            case 0xC2...0xDF: length = 2
            case 0xE0:
                length = 3
                low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED:
                length = 3
                high = 0x9F
            case 0xF0:
                length = 4
                low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4:
                length = 4
                high = 0x8F
            default: throw error("invalid UTF-8")
            }
            guard position + length <= bytes.count else { throw error("invalid UTF-8") }
            let second = bytes[position + 1]
            guard second >= low && second <= high else { throw error("invalid UTF-8") }
            for k in 2..<length where bytes[position + k] & 0xC0 != 0x80 { throw error("invalid UTF-8") }
            position += length
        }

        mutating func parseNumber() throws {
            if peek() == UInt8(ascii: "-") { position += 1 }
            guard let first = peek(), (48...57).contains(first) else { throw error("invalid number") }
            position += 1
            if first != UInt8(ascii: "0") { skipDigits() }
            if peek() == UInt8(ascii: ".") {
                position += 1
                guard let d = peek(), (48...57).contains(d) else { throw error("invalid number") }
                skipDigits()
            }
            if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
                position += 1
                if let s = peek(), s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { position += 1 }
                guard let d = peek(), (48...57).contains(d) else { throw error("invalid number") }
                skipDigits()
            }
        }

        mutating func skipDigits() {
            while let d = peek(), (48...57).contains(d) { position += 1 }
        }
    }

    /// `"..."` with JSON escapes, for building small documents by hand on hot paths.
    package static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let s where s.value < 0x20:
                let hex = String(s.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
