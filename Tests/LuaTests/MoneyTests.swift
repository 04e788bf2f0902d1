import Lua
import Testing

@Suite("money and date in Lua")
struct MoneyTests {
    static func lua() throws -> LuaState {
        let lua = try LuaState()
        try lua.openMoneyAndDate()
        return lua
    }

    @Test(
        "decimal strings parse to exact micro-cents",
        arguments: [
            ("0.003", Int64(300_000)), ("0.0015", 150_000), ("39", 3_900_000_000), ("0.20", 20_000_000), ("-1.5", -150_000_000),
            ("0.00000001", 1), ("92233720368.54775807", Int64.max),
        ])
    func parse(_ text: String, _ micros: Int64) throws {
        #expect(try Self.lua().run("return money.parse('\(text)')") == [.integer(micros)])
    }

    @Test("bad decimal strings are errors", arguments: ["", "1.", ".5", "1e3", "0.000000001", "abc", "1,5", "92233720368.54775808", " 1"])
    func parseRejects(_ text: String) throws {
        #expect(throws: LuaError.self) { try Self.lua().run("return money.parse('\(text)')") }
    }

    @Test("overflow raises instead of wrapping")
    func overflow() throws {
        let lua = try Self.lua()
        for code in [
            "money.mul(math.maxinteger, 2)", "money.add(math.maxinteger, 1)", "money.sub(math.mininteger, 1)",
            "money.usd(math.maxinteger)", "money.muldiv(math.maxinteger, 3, 2, 'down')",
        ] {
            let error = try #require(throws: LuaError.self) { try lua.run("return \(code)") }
            #expect(error.message.contains("overflow"), "\(code): \(error.message)")
        }
        // 128-bit intermediates: a large product divided back down is exact.
        #expect(try lua.run("return money.muldiv(math.maxinteger, 4, 4, 'down')") == [.integer(Int64.max)])
    }

    @Test("a float where an amount is expected is refused")
    func floatsRefused() throws {
        let lua = try Self.lua()
        let error = try #require(throws: LuaError.self) { try lua.run("return money.mul(0.003, 10)") }
        #expect(error.message.contains("float"))
        #expect(throws: LuaError.self) { try lua.run("return money.add(1.0, 1)") }
    }

    @Test(
        "division rounds only as asked",
        arguments: [
            ("down", [Int64(3), -3, 2]), ("up", [4, -4, 3]), ("half_up", [4, -4, 3]), ("half_even", [4, -4, 2]),
            ("floor", [3, -4, 2]), ("ceil", [4, -3, 3]),
        ])
    func rounding(_ mode: String, _ expected: [Int64]) throws {
        let lua = try Self.lua()
        // 7/2 = 3.5, -7/2 = -3.5, 5/2 = 2.5
        let results = try lua.run("return money.muldiv(7, 1, 2, '\(mode)'), money.muldiv(-7, 1, 2, '\(mode)'), money.muldiv(5, 1, 2, '\(mode)')")
        #expect(results == expected.map { .integer($0) })
        #expect(throws: LuaError.self) { try lua.run("return money.muldiv(7, 1, 2)") }
        #expect(throws: LuaError.self) { try lua.run("return money.muldiv(7, 1, 0, 'down')") }
    }

    @Test("percentages and display")
    func percentAndFormat() throws {
        let lua = try Self.lua()
        #expect(try lua.run("return money.percent(money.usd(100), '12.5', 'half_up')") == [.integer(1_250_000_000)])
        #expect(try lua.run("return money.percent(money.usd(10), 50, 'down')") == [.integer(500_000_000)])
        #expect(
            try lua.run("return money.format(4500000), money.format(213333333), money.format(-150000000, 0), money.format(300000, 4)")
                == ["$0.05", "$2.13", "-$2", "$0.0030"])
    }

    @Test("date helpers are pure UTC")
    func dates() throws {
        let lua = try Self.lua()
        #expect(try lua.run("return date.parse('2021-08-05T10:38:16Z') - date.parse('2021-08-05T10:34:58Z')") == [198])
        #expect(try lua.run("return date.parse('1970-01-01T00:00:00Z'), date.parse('2026-11-23T13:21:06.5Z')") == [0, 1_795_440_066])
        #expect(try lua.run("return date.days_in_month(2028, 2), date.days_in_month(2100, 2), date.days_in_month(2026, 11)") == [29, 28, 30])
        #expect(try lua.run("local p = date.parts(1795440066) return p.year, p.month, p.day, p.hour, p.weekday") == [2026, 11, 23, 13, 1])
        for bad in ["2021-02-30T00:00:00Z", "2021-08-05 10:00:00", "2021-08-05T10:00:00+02:00"] {
            #expect(throws: LuaError.self) { try lua.run("return date.parse('\(bad)')") }
        }
    }
}
