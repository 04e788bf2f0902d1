import Foundation
import Host
import Logging
import Lua
import TestSupport
import Testing

/// A policy root in a temporary directory, with the shipped pricing policy unless replaced.
final class PolicyRoot: Sendable {
    let path: String
    let engine: PolicyEngine

    init(shipped: Bool = true) throws {
        path = try TemporaryDirectory.make(prefix: "tenki-policies")
        if shipped {
            for file in ["pricing.lua", "admission.lua", "billing.lua", "abuse.lua"] {
                let text = try String(contentsOfFile: Fixtures.packageRoot + "/policies/" + file, encoding: .utf8)
                try text.write(toFile: path + "/" + file, atomically: true, encoding: .utf8)
            }
        }
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        engine = PolicyEngine(source: DirectoryPolicySource(root: path), logger: logger)
    }

    func write(_ file: String, _ text: String) throws {
        let full = path + "/" + file
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

func job(_ labels: [String], seconds: Int, free: Int64 = 0) -> JobPriceInput {
    let end = Date(timeIntervalSince1970: 1_767_607_200 + Double(seconds))
    let formatter = ISO8601DateFormatter()
    return JobPriceInput(
        labels: labels, startedAt: "2026-01-05T10:00:00Z", completedAt: formatter.string(from: end),
        workspace: .init(freeMinutesRemaining: free, hasPaymentMethod: true))
}

/// A job that completed just now (decided by the set serving now).
func jobNow(_ labels: [String], seconds: Int) -> JobPriceInput {
    let formatter = ISO8601DateFormatter()
    let end = Date()
    return JobPriceInput(
        labels: labels, startedAt: formatter.string(from: end.addingTimeInterval(-Double(seconds))),
        completedAt: formatter.string(from: end), workspace: .init(freeMinutesRemaining: 0, hasPaymentMethod: true))
}

@Suite("Policy engine")
struct PolicyEngineTests {
    @Test(
        "the specification's price examples",
        arguments: [
            (["tenki-standard-2c-4gb"], 600, Int64(0), Int64(3_000_000), Int64(10), Int64(0)),  // 10 min 2c-4GB = $0.03
            (["tenki-standard-4c-8gb"], 900, 0, 9_000_000, 15, 0),  // 15 min 4c-8GB = $0.09
            (["tenki-premium-2c-4gb"], 600, 0, 4_500_000, 10, 0),  // premium 2c-4GB = $0.045
            (["tenki-premium-4c-8gb"], 600, 0, 9_000_000, 10, 0),  // premium 4c-8GB = $0.090
            (["tenki-4c-8gb"], 600, 1_000, 0, 10, 20),  // 4 vCPU 10 min: 20 free
            (["tenki-8c-16gb"], 600, 1_000, 0, 10, 40),  // 8 vCPU 10 min: 40 free
            (["tenki-4c-8gb"], 600, 10, 3_000_000, 10, 10),  // 10 free left: 5 + $0.03
            (["tenki-2c-4gb"], 210, 0, 1_200_000, 4, 0),  // 3.5 min bills as 4
            (["self-hosted", "tenki-macos-m4-6c"], 600, 0, 40_000_000, 10, 0),  // macOS $0.040/min
            (["tenki-macos-m4-6c"], 600, 1_000, 0, 10, 30),  // macOS 6 vCPU: 3×
            (["tenki-2c-4gb"], 600, 1, 2_700_000, 10, 1),  // 1 free minute covers 1 of 10
        ])
    func specPrices(_ labels: [String], _ seconds: Int, _ free: Int64, _ amount: Int64, _ minutes: Int64, _ freeUsed: Int64) throws {
        let root = try PolicyRoot()
        guard case .loaded = root.engine.reload() else {
            Issue.record("shipped policies rejected: \(root.engine.status)")
            return
        }
        let decision = try root.engine.priceJob(job(labels, seconds: seconds, free: free))
        let price = decision.price
        let record = decision.record
        #expect(price.matched)
        #expect(price.amountMicros == amount)
        #expect(price.billableMinutes == minutes)
        #expect(price.freeMinutesConsumed == freeUsed)
        #expect(price.lines.reduce(0) { $0 + $1.amountMicros } == price.amountMicros)
        #expect(price.policyVersion == root.engine.currentVersion)
        #expect(record.policyVersion == price.policyVersion)
        #expect(record.input.contains("\"started_at\":\"2026-01-05T10:00:00Z\""))
        #expect(record.output.contains("\"amount_micros\":\(amount)"))
    }

    @Test(
        "free minutes: vCPU scaling, whole minutes, never more than the balance",
        arguments: [
            (["tenki-4c-8gb"], 600, Int64(1_000), Int64(20), Int64(0)),
            (["tenki-8c-16gb"], 600, 1_000, 40, 0),
            (["tenki-8c-16gb"], 600, 7, 4, 9),
            (["tenki-macos-m4-6c"], 600, 10, 9, 7),
            (["tenki-2c-4gb"], 210, 0, 0, 4),
        ])
    func freeMinutes(_ labels: [String], _ seconds: Int, _ balance: Int64, _ consumed: Int64, _ charged: Int64) throws {
        let root = try PolicyRoot()
        root.engine.reload()
        let decision = try root.engine.consumeFreeMinutes(job(labels, seconds: seconds, free: balance))
        #expect(decision.freeMinutesConsumed == consumed)
        #expect(decision.chargedMinutes == charged)
        #expect(try root.engine.priceJob(job(labels, seconds: seconds, free: balance)).price.freeMinutesConsumed == consumed)
    }

    @Test("jobs whose labels match no offering are foreign and cost nothing")
    func foreignJobs() throws {
        let root = try PolicyRoot()
        root.engine.reload()
        for labels in [["ubuntu-latest"], ["tenki-standard-3c-6gb"], ["tenki-2c-4gb", "tenki-4c-8gb"], ["tenki-2c-4gb", "gpu"], []] {
            let price = try root.engine.priceJob(job(labels, seconds: 600)).price
            #expect(!price.matched, "\(labels)")
            #expect(price.amountMicros == 0)
        }
    }

    @Test(
        "a hostile or broken policy fails that evaluation only, with file and line",
        arguments: [
            ("while true do end", "instruction budget|time limit exceeded"),  // whichever limit a loaded machine reaches first
            ("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 4096) .. i end", "not enough memory|time limit exceeded|instruction budget"),
            ("local function f() return 1 + f() end return f()", "not enough memory|stack overflow|time limit exceeded|instruction budget"),
            ("return os.execute('touch /tmp/pwned')", "unknown global 'os'"),
            ("return io.open('/etc/passwd')", "unknown global 'io'"),
            ("return require('../../etc/passwd')", "bad module name"),
            ("return require('secrets')", "no policy module 'secrets.lua'"),
            ("return load(string.dump(function() end), 'x', 'b')", "field 'dump'"),
            ("print('hi')", "unknown global 'print'"),
            ("return debug.getinfo(1)", "unknown global 'debug'"),
            ("error('refused')", "refused"),
        ])
    func hostilePolicies(_ body: String, _ expected: String) throws {
        let root = try PolicyRoot()
        try root.write("hostile.lua", "local M = {}\nfunction M.run(input)\n  \(body)\nend\nreturn M\n")
        #expect(root.engine.reload() == .loaded(version: root.engine.currentVersion ?? ""))
        let error = #expect(throws: PolicyError.self) { try root.engine.evaluate("hostile.lua", "run", input: [:]) }
        #expect(error?.file == "hostile.lua")
        let mentioned = expected.split(separator: "|").contains { error?.description.contains($0) == true }
        #expect(mentioned, "\(error?.description ?? "") should mention \(expected)")
        // Everything else keeps serving, on this thread and state too.
        #expect(try root.engine.priceJob(jobNow(["tenki-2c-4gb"], seconds: 600)).price.amountMicros == 3_000_000)
        #expect(!FileManager.default.fileExists(atPath: "/tmp/pwned"))
    }

    @Test("a bad change is rejected with file:line and the previous version keeps serving")
    func badChangeRejected() throws {
        let root = try PolicyRoot()
        guard case .loaded(let good) = root.engine.reload() else {
            Issue.record("shipped policies rejected")
            return
        }
        let pricing = try String(contentsOfFile: root.path + "/pricing.lua", encoding: .utf8)
        let cases: [(String, String)] = [
            (pricing.replacingOccurrences(of: "local function ceil_minutes", with: "local function ceil_minutes("), "pricing.lua:"),
            (
                pricing.replacingOccurrences(of: "rate = money.parse(\"0.003\")", with: "rate = money.parse(\"0.004\")"),
                "example 10 min on 2c-4GB = $0.03: amount_micros: expected 3000000, got 4000000"
            ),
            (pricing.replacingOccurrences(of: "function pricing.match(", with: "function pricing.matcher("), "must export a function 'match'"),
            ("return 42", "a policy must return a table"),
            (pricing.replacingOccurrences(of: "rate = money.parse(\"0.003\")", with: "rate = money.parse(\"0.0001.3\")"), "pricing.lua:"),
        ]
        for (text, expected) in cases {
            try root.write("pricing.lua", text)
            guard case .rejected(_, let errors) = root.engine.reload() else {
                Issue.record("change accepted: \(expected)")
                continue
            }
            #expect(errors.joined().contains(expected), "\(errors) should contain \(expected)")
            #expect(root.engine.currentVersion == good)
            #expect(try root.engine.priceJob(jobNow(["tenki-2c-4gb"], seconds: 600)).price.amountMicros == 3_000_000)
            #expect(root.engine.status.lastRejection?.errors == errors)
        }
        try root.write("pricing.lua", pricing)
        #expect(root.engine.reload() == .loaded(version: good))
    }

    @Test("a policy answering with floats or lines that do not add up is refused")
    func strictResults() throws {
        let root = try PolicyRoot(shipped: false)
        let stub = { (amount: String, line: String) in
            """
            local M = {}
            function M.match() return nil end
            function M.consume() return { matched = false } end
            function M.price() return { matched = true, sku = "x", billable_minutes = 1, free_minutes_consumed = 0,
              amount_micros = \(amount), lines = { { description = "l", quantity = 1, unit_price_micros = \(line), amount_micros = \(line) } } } end
            return M
            """
        }
        try root.write("pricing.lua", stub("300000.0", "300000"))
        root.engine.reload()
        let float = #expect(throws: PolicyError.self) { try root.engine.priceJob(job(["x"], seconds: 60)) }
        #expect(float?.message.contains("a float for amount_micros") == true)
        try root.write("pricing.lua", stub("300001", "300000"))
        root.engine.reload()
        let sum = #expect(throws: PolicyError.self) { try root.engine.priceJob(jobNow(["x"], seconds: 60)) }
        #expect(sum?.message.contains("lines adding up to 300000, not amount_micros 300001") == true)
    }

    @Test("require loads modules from the policy set only, each policy in its own globals")
    func requireAndIsolation() throws {
        let root = try PolicyRoot()
        try root.write("lib/rates.lua", "return { double = function(x) return money.mul(x, 2) end }")
        try root.write(
            "a.lua", "local rates = require('lib.rates')\nstring.upper = nil\nleak = 1\nreturn { run = function(i) return rates.double(i.n) end }")
        try root.write("b.lua", "return { run = function() return string.upper('ok'), rawget(_G, 'leak') end }")
        root.engine.reload()
        #expect(try root.engine.evaluate("a.lua", "run", input: ["n": 21]).output == 42)
        #expect(try root.engine.evaluate("b.lua", "run", input: [:]).output == "OK")
    }

    @Test("hot reload: 100 changes under continuous evaluation fail no evaluation")
    func hundredReloadsUnderLoad() async throws {
        let root = try PolicyRoot()
        guard case .loaded = root.engine.reload() else {
            Issue.record("rejected")
            return
        }
        let pricing = try String(contentsOfFile: root.path + "/pricing.lua", encoding: .utf8)
        let stop = LockedBox(false)
        let counts = LockedBox((evaluations: 0, failures: 0, versions: Set<String>()))
        let engine = root.engine
        let workers = (0..<2).map { _ in
            Thread {
                while !stop.value {
                    do {
                        let price = try engine.priceJob(jobNow(["tenki-2c-4gb"], seconds: 600)).price
                        let ok = price.amountMicros == 3_000_000
                        counts.value.evaluations += 1
                        if !ok { counts.value.failures += 1 }
                        counts.value.versions.insert(price.policyVersion)
                    } catch {
                        counts.value.failures += 1
                    }
                }
            }
        }
        workers.forEach { $0.start() }
        var loaded = 0
        for i in 0..<100 {
            // Alternate valid changes (a comment) with an invalid one every tenth time.
            let text = i % 10 == 9 ? pricing + "\nthis is not lua" : pricing + "\n-- change \(i)\n"
            try root.write("pricing.lua", text)
            if case .loaded = root.engine.reload() { loaded += 1 }
        }
        try await Task.sleep(nanoseconds: 100_000_000)
        stop.value = true
        while workers.contains(where: { $0.isExecuting }) { try await Task.sleep(nanoseconds: 10_000_000) }
        #expect(loaded == 90)
        #expect(counts.value.failures == 0)
        #expect(counts.value.evaluations > 100)
        #expect(counts.value.versions.count > 1)
    }

    static func contract(discount: String, rate4c: String, ends: String = "2027-01-01T00:00:00Z") -> String {
        """
        return {
          starts = "2026-01-01T00:00:00Z",
          ends = "\(ends)",
          rates = { ["x64-4c-8gb"] = money.parse("\(rate4c)") },
          discount_percent = "\(discount)",
        }
        """
    }

    @Test("contracts: custom rates and discount apply within their dates")
    func contractPricing() throws {
        let root = try PolicyRoot()
        try root.write("contracts/acme.lua", Self.contract(discount: "10", rate4c: "0.005"))
        guard case .loaded = root.engine.reload() else {
            Issue.record("\(root.engine.status)")
            return
        }
        var input = job(["tenki-4c-8gb"], seconds: 600)
        input.workspace.contract = "acme"
        let price = try root.engine.priceJob(input).price
        #expect(price.amountMicros == 4_500_000)  // 10 × $0.005 = $0.05, less 10 %
        #expect(price.lines.last?.amountMicros == -500_000)
        // Another SKU keeps its list price, still discounted.
        var other = job(["tenki-2c-4gb"], seconds: 600)
        other.workspace.contract = "acme"
        #expect(try root.engine.priceJob(other).price.amountMicros == 2_700_000)
        // Outside the contract's dates, list prices.
        let expired = try PolicyRoot()
        try expired.write("contracts/acme.lua", Self.contract(discount: "10", rate4c: "0.005", ends: "2026-01-02T00:00:00Z"))
        expired.engine.reload()
        #expect(try expired.engine.priceJob(input).price.amountMicros == 6_000_000)
        // An unknown contract is an error, not a silent list price.
        input.workspace.contract = "nobody"
        #expect(throws: PolicyError.self) { try root.engine.priceJob(input) }
    }

    @Test(
        "the host rejects contracts above the 50% cap, with file and line",
        arguments: [
            ("60", "0.006", "contracts/greedy.lua:5: discount of 60.0% exceeds the host's 50% cap"),
            ("50.000001", "0.006", "exceeds the host's 50% cap"),
            ("0", "0.0029", "contracts/greedy.lua:4: the effective discount on x64-4c-8gb exceeds the host's 50% cap"),
            ("20", "0.0037", "the effective discount on x64-4c-8gb exceeds"),  // 0.0037 × 0.8 = 0.00296 < 0.003
            ("abc", "0.006", "is not a decimal percentage"),
        ])
    func contractCap(_ discount: String, _ rate: String, _ expected: String) throws {
        let root = try PolicyRoot()
        guard case .loaded(let good) = root.engine.reload() else {
            Issue.record("rejected")
            return
        }
        try root.write("contracts/greedy.lua", Self.contract(discount: discount, rate4c: rate))
        guard case .rejected(_, let errors) = root.engine.reload() else {
            Issue.record("a \(discount)% / \(rate) contract was accepted")
            return
        }
        #expect(errors.joined().contains(expected), "\(errors)")
        #expect(root.engine.currentVersion == good)
    }

    @Test("exactly 50% is allowed")
    func contractAtCap() throws {
        let root = try PolicyRoot()
        try root.write("contracts/edge.lua", Self.contract(discount: "20", rate4c: "0.00375"))  // 0.00375 × 0.8 = 0.003
        guard case .loaded = root.engine.reload() else {
            Issue.record("\(root.engine.status.lastRejection?.errors ?? [])")
            return
        }
    }

    @Test("a scheduled price change answers for events from its effective time on")
    func scheduledChange() throws {
        let root = try PolicyRoot()
        let pricing = try String(contentsOfFile: root.path + "/pricing.lua", encoding: .utf8)
        let next = pricing.replacingOccurrences(of: "rate = money.parse(\"0.003\")", with: "rate = money.parse(\"0.004\")")
            .replacingOccurrences(
                of: "\nreturn pricing\n",
                with: """

                    pricing.examples = nil
                    pricing.replaces = "pricing.lua"
                    pricing.effective_from = "2027-01-01T00:00:00Z"
                    return pricing

                    """)
        try root.write("pricing-2027.lua", next)
        guard case .loaded = root.engine.reload() else {
            Issue.record("\(root.engine.status.lastRejection?.errors ?? [])")
            return
        }
        func price(_ completed: String) throws -> Int64 {
            try root.engine.priceJob(
                JobPriceInput(
                    labels: ["tenki-2c-4gb"], startedAt: "2026-12-31T23:50:00Z", completedAt: completed,
                    workspace: .init(freeMinutesRemaining: 0, hasPaymentMethod: true))
            ).price.amountMicros
        }
        #expect(try price("2026-12-31T23:59:59Z") == 3_000_000)  // 10 min at $0.003
        #expect(try price("2027-01-01T00:00:00Z") == 4_000_000)  // 10 min at $0.004, from midnight UTC
        // Two files taking effect at the same instant are rejected.
        try root.write("pricing-dup.lua", next)
        guard case .rejected(_, let errors) = root.engine.reload() else {
            Issue.record("duplicate schedule accepted")
            return
        }
        #expect(errors.joined().contains("takes effect at the same time"))
        // A replacement must offer what the policy offers.
        try FileManager.default.removeItem(atPath: root.path + "/pricing-dup.lua")
        try root.write("pricing-2027.lua", next.replacingOccurrences(of: "function pricing.match(", with: "function pricing.other("))
        guard case .rejected(_, let missing) = root.engine.reload() else {
            Issue.record("incomplete replacement accepted")
            return
        }
        #expect(missing.joined().contains("pricing-2027.lua: must export a function 'match'"))
    }

    @Test("a past event is decided by the version that served at its time, also after a restart")
    func versionsByEventTime() throws {
        let root = try PolicyRoot(shipped: false)
        let t1 = Date(timeIntervalSince1970: 1_800_000_000)
        let t2 = t1.addingTimeInterval(3_600)
        try root.write("fee.lua", "return { run = function() return 1 end }")
        guard case .loaded = root.engine.reload(now: t1) else {
            Issue.record("rejected")
            return
        }
        try root.write("fee.lua", "return { run = function() return 2 end }")
        guard case .loaded = root.engine.reload(now: t2) else {
            Issue.record("rejected")
            return
        }
        let before = Int64(t1.timeIntervalSince1970) + 10
        let after = Int64(t2.timeIntervalSince1970) + 10
        #expect(try root.engine.evaluate("fee.lua", "run", input: [:], at: before).output == 1)
        #expect(try root.engine.evaluate("fee.lua", "run", input: [:], at: after).output == 2)
        #expect(try root.engine.evaluate("fee.lua", "run", input: [:]).output == 2)
        // A new engine (a restart) that restores the history decides the same way.
        let restarted = try PolicyRoot(shipped: false)
        try restarted.write("fee.lua", "return { run = function() return 2 end }")
        restarted.engine.restore([([PolicyFile(path: "fee.lua", source: "return { run = function() return 1 end }")], t1)])
        restarted.engine.reload(now: t2)
        #expect(try restarted.engine.evaluate("fee.lua", "run", input: [:], at: before).output == 1)
        #expect(try restarted.engine.evaluate("fee.lua", "run", input: [:], at: after).output == 2)
    }

    @Test("the history of versions is kept in the database", arguments: DriverKind.allCases)
    func historyPersists(_ kind: DriverKind) async throws {
        let test = try TestDatabase.make(kind)
        let db = try test.open()
        try await TenkiHost.migrate(db, plugins: [])
        let root = try PolicyRoot(shipped: false)
        try root.write("fee.lua", "return { run = function() return 1 end }")
        root.engine.reload(now: Date(timeIntervalSince1970: 1_800_000_000))
        try await PolicyHistoryStore.record(try #require(root.engine.currentSet), in: db)
        try await PolicyHistoryStore.record(try #require(root.engine.currentSet), in: db)  // no second activation
        try root.write("fee.lua", "return { run = function() return 2 end }")
        root.engine.reload(now: Date(timeIntervalSince1970: 1_800_003_600))
        try await PolicyHistoryStore.record(try #require(root.engine.currentSet), in: db)
        let history = try await PolicyHistoryStore.load(from: db)
        #expect(history.count == 2)
        #expect(history.map { $0.files[0].source.contains("return 1") } == [true, false])
        #expect(history[1].version == root.engine.currentVersion)
        await db.close()
    }

    @Test(
        "admission: allow, queue at the slot limit, block with a reason",
        arguments: [
            (["tenki-4c-8gb"], AdmissionInput.Workspace(freeMinutesRemaining: 0, hasPaymentMethod: true, runningX64: 39), "allow", nil as String?),
            (["tenki-4c-8gb"], .init(freeMinutesRemaining: 0, hasPaymentMethod: true, runningX64: 40), "queue", "slot_limit"),
            (["tenki-4c-8gb"], .init(freeMinutesRemaining: 0, hasPaymentMethod: true, extraSlotsX64: 10, runningX64: 49), "allow", nil),
            (["tenki-macos-m4-12c"], .init(freeMinutesRemaining: 0, hasPaymentMethod: true, addons: ["macos-m4"], runningX64: 40), "allow", nil),
            (["tenki-macos-m4-12c"], .init(freeMinutesRemaining: 0, hasPaymentMethod: true), "block", "addon_required"),
            (["tenki-2c-4gb"], .init(freeMinutesRemaining: 0, hasPaymentMethod: false), "block", "payment_method_required"),
            (["tenki-8c-16gb"], .init(freeMinutesRemaining: 3, hasPaymentMethod: false), "block", "payment_method_required"),
            (["tenki-8c-16gb"], .init(freeMinutesRemaining: 4, hasPaymentMethod: false), "allow", nil),
            (["tenki-2c-4gb"], .init(freeMinutesRemaining: 100, hasPaymentMethod: true, suspended: true), "block", "workspace_suspended"),
            (["tenki-2c-4gb"], .init(freeMinutesRemaining: 100, hasPaymentMethod: true, abuseAction: "block"), "block", "abuse"),
            (["gpu-large"], .init(freeMinutesRemaining: 100, hasPaymentMethod: true), "foreign", nil),
        ])
    func admission(_ labels: [String], _ workspace: AdmissionInput.Workspace, _ verdict: String, _ reason: String?) throws {
        let root = try PolicyRoot()
        guard case .loaded = root.engine.reload() else {
            Issue.record("\(root.engine.status.lastRejection?.errors ?? [])")
            return
        }
        let input = AdmissionInput(labels: labels, workspace: workspace)
        let decision = try root.engine.admitJob(input)
        let record = DecisionRecord.admission(input, decision)
        #expect(
            record.policyVersion == decision.policyVersion && record.input.contains("running_x64")
                && record.output.contains("\"decision\":\"\(verdict)\""))
        #expect(decision.verdict.rawValue == verdict)
        #expect(decision.reason == (verdict == "foreign" ? decision.reason : reason))
        #expect(decision.policyVersion == root.engine.currentVersion)
    }

    @Test("an admission policy inventing a reason or a verdict is refused")
    func admissionStrict() throws {
        let root = try PolicyRoot(shipped: false)
        try root.write(
            "admission.lua",
            """
            return { limits = function() return {} end,
                     admit = function(job) return { decision = job.labels[1], reason = "because", sku = "x", arch = "x64" } end }
            """)
        root.engine.reload()
        for verdict in ["block", "maybe"] {
            let error = #expect(throws: PolicyError.self) {
                try root.engine.admitJob(AdmissionInput(labels: [verdict], workspace: .init(freeMinutesRemaining: 0, hasPaymentMethod: true)))
            }
            #expect(error?.file == "admission.lua")
        }
    }

    static let november = MonthlyLinesInput.Period(start: "2026-11-01T00:00:00Z", end: "2026-12-01T00:00:00Z")

    static let linesCases: [(MonthlyLinesInput, Int64)] = [
        (MonthlyLinesInput(period: november, storage: .init(dailyBytes: Array(repeating: 50_000_000_000, count: 30))), Int64(1_000_000_000)),
        (
            MonthlyLinesInput(
                period: november, storage: .init(dailyBytes: Array(repeating: 0, count: 14) + Array(repeating: 20_000_000_000, count: 16))),
            213_333_333
        ),
        (MonthlyLinesInput(period: november, slots: [.init(arch: "x64", count: 10, startedAt: "2026-01-01T00:00:00Z")]), 7_000_000_000),
        (MonthlyLinesInput(period: november, slots: [.init(arch: "macos", count: 5, startedAt: "2026-01-01T00:00:00Z")]), 24_500_000_000),
        (MonthlyLinesInput(period: november, addons: [.init(id: "macos-m4", startedAt: "2026-11-16T00:00:00Z")]), 1_950_000_000),
        (
            MonthlyLinesInput(
                period: november, addons: [.init(id: "priority-support", startedAt: "2026-10-01T00:00:00Z", cancelledAt: "2026-10-20T00:00:00Z")]), 0
        ),
        (MonthlyLinesInput(period: november, addons: [.init(id: "priority-queue-boost", term: "prepaid_12", startedAt: "2026-06-01T00:00:00Z")]), 0),
        (MonthlyLinesInput(period: november, commitment: .init(monthlyMicros: 200_000_000_000, usageMicros: 250_000_000_000)), 0),
    ]

    @Test("monthly lines: the specification's storage, slot and add-on examples", arguments: linesCases)
    func monthlyLines(_ input: MonthlyLinesInput, _ total: Int64) throws {
        let root = try PolicyRoot()
        guard case .loaded = root.engine.reload() else {
            Issue.record("\(root.engine.status.lastRejection?.errors ?? [])")
            return
        }
        let lines = try root.engine.monthlyLines(input)
        #expect(lines.totalMicros == total)
        #expect(lines.lines.reduce(0) { $0 + $1.amountMicros } == total)
    }

    @Test("add-on and slot eligibility")
    func eligibility() throws {
        let root = try PolicyRoot()
        guard case .loaded = root.engine.reload() else {
            Issue.record("\(root.engine.status.lastRejection?.errors ?? [])")
            return
        }
        let paying = EligibilityRequest.Workspace(hasPaymentMethod: true)
        #expect(try root.engine.eligibility(.init(item: "addon", id: "priority-support", workspace: paying)).eligible)
        #expect(
            try root.engine.eligibility(.init(item: "addon", id: "priority-support", workspace: .init(hasPaymentMethod: false))).reason
                == "payment_method_required")
        #expect(
            try root.engine.eligibility(.init(item: "addon", id: "priority-queue-boost", term: "prepaid_12", workspace: paying)).reason
                == "sales_only")
        #expect(
            try root.engine.eligibility(.init(item: "addon", id: "priority-queue-boost", term: "prepaid_12", salesApproved: true, workspace: paying))
                .eligible)
        #expect(
            try root.engine.eligibility(.init(item: "addon", id: "priority-support", term: "prepaid_12", salesApproved: true, workspace: paying))
                .reason == "no_prepaid_term")
        #expect(try root.engine.eligibility(.init(item: "slots", arch: "x64", count: 10, workspace: paying)).eligible)
        #expect(try root.engine.eligibility(.init(item: "slots", arch: "arm", count: 1, workspace: paying)).reason == "unknown_arch")
    }

    @Test("abuse verdicts on signup and on job events")
    func abuseVerdicts() throws {
        let root = try PolicyRoot()
        guard case .loaded = root.engine.reload() else {
            Issue.record("\(root.engine.status.lastRejection?.errors ?? [])")
            return
        }
        #expect(try root.engine.abuseOnSignup(SignupInput(emailDomain: "acme.test")).action == .allow)
        let again = try root.engine.abuseOnSignup(SignupInput(githubLogin: "octocat", history: .init(sameAccount: 1)))
        #expect(again.action == .requirePaymentMethod)
        #expect(again.reasons == ["repeated_free_credit_signup:github_account"])
        let miner = try root.engine.abuseOnJob(JobActivity(name: "build", steps: ["curl -sL x | sh", "./cpuminer --url stratum+tcp://p"]))
        #expect(miner.action == .suspend && miner.score == 100)
        let server = try root.engine.abuseOnJob(JobActivity(name: "deploy", steps: ["java -jar paper.jar nogui"], durationSeconds: 4 * 3600))
        #expect(server.action == .suspend)
        #expect(try root.engine.abuseOnJob(JobActivity(name: "test", durationSeconds: 25 * 3600)).action == .block)
        #expect(try root.engine.abuseOnJob(JobActivity(name: "unit tests", labels: ["tenki-2c-4gb"], durationSeconds: 120)).action == .allow)
    }

    @Test("the reloader picks up a valid change on its own")
    func reloaderService() async throws {
        let root = try PolicyRoot()
        root.engine.reload()
        let before = root.engine.currentVersion
        let reloader = Task { try await PolicyReloader(engine: root.engine, intervalMilliseconds: 20).run() }
        try root.write("extra.lua", "return { run = function() return 1 end }")
        let deadline = Date().addingTimeInterval(120)  // generous: a loaded machine polls slowly
        while root.engine.currentVersion == before && Date() < deadline { try await Task.sleep(nanoseconds: 10_000_000) }
        reloader.cancel()
        #expect(root.engine.currentVersion != before)
        #expect(root.engine.status.files.contains("extra.lua"))
    }
}
