import Foundation
import Lua
import Testing

@Suite("Lua binding")
struct LuaTests {
    @Test("integers and floats stay distinct both ways")
    func integersAndFloatsStayDistinct() throws {
        let lua = try LuaState()
        let results = try lua.run("return 1, 1.0, 2^53, 7 // 2, 7 / 2, math.maxinteger", chunkName: "=numbers")
        #expect(results == [.integer(1), .number(1.0), .number(9007199254740992.0), .integer(3), .number(3.5), .integer(Int64.max)])
        try lua.setGlobal("i", .integer(42))
        try lua.setGlobal("f", .number(42))
        #expect(try lua.run("return math.type(i), math.type(f)") == [.string("integer"), .string("float")])
    }

    @Test("nil, booleans, strings and nested tables round-trip")
    func valuesRoundTrip() throws {
        let lua = try LuaState()
        let value: LuaValue = [
            "name": "tenki", "ok": true, "none": nil, "list": [1, 2.5, "three", [4]],
            "nested": ["deeper": ["deepest": "yes"]], "bytes": .string("a\u{0}b"),
        ]
        try lua.setGlobal("v", value)
        let back = try lua.run("return v")[0]
        #expect(back["name"] == "tenki")
        #expect(back["ok"] == true)
        #expect(back["none"] == .nil)
        #expect(back["list"] == [1, 2.5, "three", [4]])
        #expect(back["nested"]["deeper"]["deepest"] == "yes")
        #expect(back["bytes"] == .string("a\u{0}b"))
        #expect(try lua.run("return #v.list, v.list[4][1], #v.bytes") == [4, 4, 3])
    }

    @Test("a syntax error names the chunk and line")
    func syntaxErrorHasChunkAndLine() throws {
        let lua = try LuaState()
        let error = try #require(throws: LuaError.self) { try lua.run("local a = 1\nlocal b = = 2\n", chunkName: "@policies/pricing.lua") }
        #expect(error.kind == .syntax)
        #expect(error.chunk == "policies/pricing.lua")
        #expect(error.line == 2)
    }

    @Test("a runtime error carries chunk, line and a traceback")
    func runtimeErrorHasChunkLineAndTraceback() throws {
        let lua = try LuaState()
        let error = try #require(throws: LuaError.self) {
            try lua.run("local function f()\n  error('boom')\nend\nf()\n", chunkName: "@scripts/x.lua")
        }
        #expect(error.kind == .runtime)
        #expect(error.message == "boom")
        #expect(error.chunk == "scripts/x.lua")
        #expect(error.line == 2)
        #expect(error.traceback?.contains("stack traceback") == true)
    }

    @Test("Swift functions are callable from Lua with arguments and results")
    func swiftFunctionsAreCallable() throws {
        let lua = try LuaState()
        lua.register("add", in: "calc") { args in
            guard case .integer(let a) = args[0], case .integer(let b) = args[1] else { return [.nil] }
            return [.integer(a + b), .string("ok")]
        }
        #expect(try lua.run("return calc.add(40, 2)") == [.integer(42), .string("ok")])
    }

    struct Refused: Error, CustomStringConvertible { var description: String { "refused by host" } }

    @Test("an error raised in a Swift function is caught cleanly, with the Lua caller's line")
    func swiftErrorIsCaughtCleanly() throws {
        let lua = try LuaState()
        lua.register("fail") { _ in throw Refused() }
        for _ in 0..<1_000 {
            let error = try #require(throws: LuaError.self) { try lua.run("local x = 1\nfail()\n", chunkName: "@caller.lua") }
            #expect(error.message == "refused by host")
            #expect(error.chunk == "caller.lua")
            #expect(error.line == 2)
        }
        // Lua's own pcall sees it as an ordinary error, and the state keeps working.
        let results = try lua.run("local ok, err = pcall(fail)\nreturn ok, err", chunkName: "=p")
        #expect(results[0] == false)
        #expect(results[1].stringValue?.hasSuffix("refused by host") == true)
        #expect(try lua.run("return 1 + 1") == [2])
    }

    @Test("calling a global function passes arguments and returns results")
    func callGlobal() throws {
        let lua = try LuaState()
        try lua.run("function price(job) return job.minutes * job.rate end")
        #expect(try lua.call("price", [["minutes": 4, "rate": 300]]) == [1200])
        #expect(throws: LuaError.self) { try lua.call("missing") }
    }

    @Test("an infinite loop stops at the instruction budget and pcall cannot swallow it")
    func instructionBudget() throws {
        let lua = try LuaState(limits: LuaLimits(instructions: 1_000_000))
        let error = try #require(throws: LuaError.self) {
            try lua.run("while true do pcall(function() while true do end end) end", chunkName: "=loop")
        }
        #expect(error.kind == .instructionBudget)
        #expect(try lua.run("return 'still serving'") == ["still serving"])
    }

    @Test("a loop inside a coroutine is budgeted, whenever the coroutine was made")
    func coroutineBudget() throws {
        let lua = try LuaState(limits: LuaLimits(instructions: 1_000_000, wallClockNanoseconds: 2_000_000_000))
        // Made during a call that finished long before the watchdog armed anything.
        try lua.run("spin = coroutine.create(function() while true do end end)")
        for source in [
            "coroutine.resume(spin)",
            "local f = coroutine.wrap(function() while true do end end) f()",
            "while true do pcall(coroutine.wrap(function() while true do coroutine.yield() end end)) end",
            "local co = coroutine.wrap(function() local inner = coroutine.wrap(function() while true do end end) inner() end) co()",
        ] {
            let error = try #require(throws: LuaError.self, "\(source)") { try lua.run(source, chunkName: "=co") }
            // The instruction budget, or the wall clock if a loaded machine starves the watchdog that long.
            #expect(error.kind == .instructionBudget || error.kind == .timeLimit, "\(source): \(error)")
        }
        #expect(try lua.run("return 'still serving'") == ["still serving"])
    }

    @Test("the sandbox's coroutine.wrap and resume keep their meaning")
    func coroutineSemantics() throws {
        let lua = try LuaState(limits: LuaLimits(instructions: 1_000_000))
        #expect(
            try lua.run(
                """
                local gen = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return b * 2 end)
                return gen(1), gen(10)
                """) == [2, 20])
        #expect(
            try lua.run(
                """
                local co = coroutine.create(function(x) coroutine.yield(x) error('boom') end)
                local ok1, v = coroutine.resume(co, 7)
                local ok2, e = coroutine.resume(co)
                return ok1, v, ok2, coroutine.status(co)
                """) == [true, 7, false, "dead"])
        let error = try #require(throws: LuaError.self) {
            try lua.run("local f = coroutine.wrap(function() error('inside') end) f()", chunkName: "=wrap")
        }
        #expect(error.message.contains("inside"))
    }

    @Test("the wall-clock cap stops a long evaluation")
    func wallClockCap() throws {
        let lua = try LuaState(limits: LuaLimits(wallClockNanoseconds: 50_000_000))
        let start = Date()
        let error = try #require(throws: LuaError.self) { try lua.run("local x = 0 while true do x = x + 1 end") }
        #expect(error.kind == .timeLimit)
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test("a memory bomb fails with a memory error and the state recovers")
    func memoryBomb() throws {
        let lua = try LuaState(limits: LuaLimits(memoryBytes: 8 << 20))
        let error = try #require(throws: LuaError.self) {
            try lua.run("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1024) .. i end")
        }
        #expect(error.kind == .memory)
        #expect(try lua.run("return 'alive'") == ["alive"])
    }

    @Test("deep recursion is a clean error")
    func deepRecursion() throws {
        let lua = try LuaState(limits: LuaLimits(memoryBytes: 64 << 20))
        let error = try #require(throws: LuaError.self) { try lua.run("local function f(n) return 1 + f(n + 1) end return f(1)") }
        #expect(error.kind == .runtime || error.kind == .memory)
        #expect(try lua.run("return 2") == [2])
    }

    @Test("the sandbox offers no io, os, debug, loadfile, dofile, string.dump or bytecode")
    func sandboxAllowList() throws {
        let lua = try LuaState()
        let results = try lua.run(
            """
            return io == nil, os == nil, debug == nil, package == nil, loadfile == nil, dofile == nil,
                   string.dump == nil, getmetatable('') == false
            """)
        #expect(results == Array(repeating: .boolean(true), count: 8))
        let error = try #require(throws: LuaError.self) { try lua.run("return load('return 1', 'x', 'b')") }
        #expect(error.message.contains("only text chunks"))
        #expect(try lua.run("return load('return 40 + 2')()") == [42])
        // Bytecode given to the loader itself is refused.
        #expect(throws: LuaError.self) { try lua.run("\u{1B}Lua\u{54}\u{00}") }
    }

    @Test("tables that cannot cross are conversion errors, not crashes")
    func conversionErrors() throws {
        let lua = try LuaState()
        #expect(throws: LuaError.self) { try lua.run("local t = {} t.self = t return t") }
        #expect(throws: LuaError.self) { try lua.run("return function() end") }
        var deep: LuaValue = 1
        for _ in 0..<100 { deep = [deep] }
        #expect(throws: LuaError.self) { try lua.setGlobal("deep", deep) }
    }
}
