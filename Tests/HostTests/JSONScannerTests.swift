import Foundation
import Host
import TestSupport
import Testing

@Suite("Strict JSON scanner")
struct JSONScannerTests {
    static func members(_ text: String) throws -> [String: String] {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBytes { raw in
            var out: [String: String] = [:]
            for member in try JSONScanner.objectMembers(raw) {
                let key = String(decoding: UnsafeRawBufferPointer(rebasing: raw[member.key]), as: UTF8.self)
                out[key] = String(decoding: UnsafeRawBufferPointer(rebasing: raw[member.value]), as: UTF8.self)
            }
            return out
        }
    }

    @Test(
        "valid documents are accepted and their members located",
        arguments: [
            (#"{}"#, [:]),
            (#" { "a" : 1 } "#, ["a": "1"]),
            (
                #"{"a":[1,2.5,-3e10,0.0E+1,true,false,null,{"b":"c"}],"d":"\u00e9\n\"\\\/"}"#,
                ["a": #"[1,2.5,-3e10,0.0E+1,true,false,null,{"b":"c"}]"#, "d": #""\u00e9\n\"\\\/""#]
            ),
            ("{\"ünï\":\"cödé 😀\"}", ["ünï": "\"cödé 😀\""]),
            (#"{"x":{"y":[]} ,"z":-0.5e-3}"#, ["x": #"{"y":[]}"#, "z": "-0.5e-3"]),
        ] as [(String, [String: String])])
    func valid(_ text: String, expected: [String: String]) throws {
        // Keys are the raw bytes between the quotes; values are the exact text of the value.
        #expect(try Self.members(text) == expected)
    }

    @Test(
        "invalid documents are rejected",
        arguments: [
            "", " ", "[]", "1", "\"x\"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{a:1}", "{\"a\":01}", "{\"a\":1.}",
            "{\"a\":.5}", "{\"a\":-}", "{\"a\":tru}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"tab\there\"}",
            "{\"a\":1} {}", "{\"a\":[1 2]}", "{\"a\":'x'}", "{\"a\":NaN}",
        ])
    func invalid(_ text: String) {
        #expect(throws: JSONScanner.SyntaxError.self) { try Self.members(text) }
    }

    @Test("invalid UTF-8 and hostile nesting are rejected")
    func invalidUTF8AndNesting() {
        for bad: [UInt8] in [[0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xE2, 0x82]] {
            let bytes = Array("{\"a\":\"".utf8) + bad + Array("\"}".utf8)
            #expect(throws: JSONScanner.SyntaxError.self) { try bytes.withUnsafeBytes { try JSONScanner.objectMembers($0) } }
        }
        let deep = "{\"a\":" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}"
        #expect(throws: JSONScanner.SyntaxError.self) { try Self.members(deep) }
    }

    @Test("members, strings with escapes and integers are read back")
    func readsFields() throws {
        let text = #"{"action":"qu\"eued\u00e9","installation":{"id":3456996,"x":[]},"n":-12}"#
        let bytes = Array(text.utf8)
        try bytes.withUnsafeBytes { raw in
            let members = try JSONScanner.objectMembers(raw)
            let action = try #require(JSONScanner.member("action", in: members, bytes: raw))
            #expect(JSONScanner.string(at: action.value, in: raw) == "qu\"eued\u{e9}")
            let installation = try #require(JSONScanner.member("installation", in: members, bytes: raw))
            let fields = try #require(try JSONScanner.members(of: installation.value, in: raw))
            let id = try #require(JSONScanner.member("id", in: fields, bytes: raw))
            #expect(JSONScanner.integer(at: id.value, in: raw) == 3_456_996)
            #expect(JSONScanner.member("missing", in: members, bytes: raw) == nil)
        }
        #expect(JSONScanner.quote("a\"b\\c\n\u{1}") == #""a\"b\\c\n\u0001""#)
    }

    @Test("the scanner agrees with Foundation on every GitHub fixture")
    func agreesOnFixtures() throws {
        let directory = URL(fileURLWithPath: Fixtures.directory + "/github")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".json") }
        #expect(files.count >= 19)
        for file in files {
            let data = try Data(contentsOf: directory.appendingPathComponent(file))
            let reference = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let keys = try Array(data).withUnsafeBytes { raw in
                try JSONScanner.objectMembers(raw).map { String(decoding: UnsafeRawBufferPointer(rebasing: raw[$0.key]), as: UTF8.self) }
            }
            #expect(Set(keys) == Set(reference.keys), "\(file)")
        }
    }
}
