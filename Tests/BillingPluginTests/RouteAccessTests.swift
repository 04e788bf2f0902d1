import Foundation
import Host
import TestSupport
import Testing

/// Every route of a host with every plugin names its access rule, and the rules are the
/// documented ones: only health, readiness and the signed webhooks are open, and every route
/// about one workspace confines a member key to it.
@Suite("Route access rules")
struct RouteAccessTests {
    static func describe(_ rule: RouteAccess) -> String {
        guard let area = rule.area else { return "open" }
        if rule.loopbackWithoutKey { return "\(area.rawValue) +loopback" }
        switch rule.scope {
        case .none: return area.rawValue
        case .path(let name): return "\(area.rawValue) {\(name)}"
        case .query(let name): return "\(area.rawValue) ?\(name)"
        case .own: return "\(area.rawValue) own"
        }
    }

    @Test("every route has a rule; the open ones are health, readiness and the webhooks")
    func everyRoute() async throws {
        let h = try await BillingHarness(.sqlite)
        defer { withExtendedLifetime(h) {} }
        var table: RouteAccessTable?
        _ = h.host.makeRouter { table = $0.access }
        let rules = try #require(table).all.mapValues(Self.describe)
        #expect(
            rules.filter { $0.value == "open" }.keys.sorted() == ["GET /healthz", "GET /readyz", "POST /webhooks/github", "POST /webhooks/stripe"])
        for (route, rule) in rules where route.contains("{workspace}") {
            #expect(rule.hasSuffix("{workspace}"), "\(route): \(rule)")
        }
        #expect(rules["POST /workflows"] == "workflows" && rules["DELETE /workflow-schedules/{name}"] == "workflows")
        #expect(rules["GET /runner/jobs"] == "jobs ?workspace" && rules["GET /metrics"] == "metrics +loopback")
        #expect(rules.filter { $0.value.hasSuffix("+loopback") }.keys.sorted() == ["GET /metrics"])
        #expect(
            rules["POST /billing/workspaces/{workspace}/credits/grant"] == "credits {workspace}" || rules.keys.contains { $0.contains("/credits/") })
        #expect(rules["GET /keys"] == "keys own" && rules["POST /keys"] == "keys own" && rules["DELETE /keys/{id}"] == "keys own")
        #expect(rules.count >= 30, "\(rules.keys.sorted())")
    }
}
