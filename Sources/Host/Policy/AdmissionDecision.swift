import Foundation
import Lua

/// A queued job and its workspace, as the admission policy sees them.
package struct AdmissionInput: Sendable, Codable {
    package var labels: [String]
    package var workspace: Workspace

    package struct Workspace: Sendable, Codable {
        package var freeMinutesRemaining: Int64
        package var hasPaymentMethod: Bool
        package var addons: [String]
        package var suspended: Bool
        /// Suspended for non-payment (its own reason; an ops suspension is `suspended`).
        package var paymentOverdue: Bool
        /// The abuse policy's latest action for the workspace, if any.
        package var abuseAction: String?
        package var extraSlotsX64: Int64
        package var extraSlotsMacOS: Int64
        package var runningX64: Int64
        package var runningMacOS: Int64

        package init(
            freeMinutesRemaining: Int64, hasPaymentMethod: Bool, addons: [String] = [], suspended: Bool = false,
            paymentOverdue: Bool = false, abuseAction: String? = nil, extraSlotsX64: Int64 = 0, extraSlotsMacOS: Int64 = 0,
            runningX64: Int64 = 0, runningMacOS: Int64 = 0
        ) {
            self.freeMinutesRemaining = freeMinutesRemaining
            self.hasPaymentMethod = hasPaymentMethod
            self.addons = addons
            self.suspended = suspended
            self.paymentOverdue = paymentOverdue
            self.abuseAction = abuseAction
            self.extraSlotsX64 = extraSlotsX64
            self.extraSlotsMacOS = extraSlotsMacOS
            self.runningX64 = runningX64
            self.runningMacOS = runningMacOS
        }

        enum CodingKeys: String, CodingKey {
            case freeMinutesRemaining = "free_minutes_remaining", hasPaymentMethod = "has_payment_method", addons, suspended
            case paymentOverdue = "payment_overdue"
            case abuseAction = "abuse_action", extraSlotsX64 = "extra_slots_x64", extraSlotsMacOS = "extra_slots_macos"
            case runningX64 = "running_x64", runningMacOS = "running_macos"
        }

        package init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(
                freeMinutesRemaining: try c.decodeIfPresent(Int64.self, forKey: .freeMinutesRemaining) ?? 0,
                hasPaymentMethod: try c.decodeIfPresent(Bool.self, forKey: .hasPaymentMethod) ?? false,
                addons: try c.decodeIfPresent([String].self, forKey: .addons) ?? [],
                suspended: try c.decodeIfPresent(Bool.self, forKey: .suspended) ?? false,
                paymentOverdue: try c.decodeIfPresent(Bool.self, forKey: .paymentOverdue) ?? false,
                abuseAction: try c.decodeIfPresent(String.self, forKey: .abuseAction),
                extraSlotsX64: try c.decodeIfPresent(Int64.self, forKey: .extraSlotsX64) ?? 0,
                extraSlotsMacOS: try c.decodeIfPresent(Int64.self, forKey: .extraSlotsMacOS) ?? 0,
                runningX64: try c.decodeIfPresent(Int64.self, forKey: .runningX64) ?? 0,
                runningMacOS: try c.decodeIfPresent(Int64.self, forKey: .runningMacOS) ?? 0)
        }
    }

    package init(labels: [String], workspace: Workspace) {
        self.labels = labels
        self.workspace = workspace
    }

    func write(_ w: LuaWriter) {
        w.table(fieldCount: 2) { t in
            t.set("labels", strings: labels)
            t.set("workspace") { ws in
                ws.set("free_minutes_remaining", workspace.freeMinutesRemaining)
                ws.set("has_payment_method", workspace.hasPaymentMethod)
                ws.set("addons", strings: workspace.addons)
                ws.set("suspended", workspace.suspended)
                ws.set("payment_overdue", workspace.paymentOverdue)
                ws.set("abuse_action", workspace.abuseAction)
                ws.set("extra_slots_x64", workspace.extraSlotsX64)
                ws.set("extra_slots_macos", workspace.extraSlotsMacOS)
                ws.set("running_x64", workspace.runningX64)
                ws.set("running_macos", workspace.runningMacOS)
            }
        }
    }
}

/// What to do with a queued job.
package struct AdmissionDecision: Sendable, Codable, Equatable {
    package enum Verdict: String, Sendable, Codable {
        case allow, queue, block
        /// The job's labels name no offering: not ours, leave it alone.
        case foreign
    }

    /// The reasons a job may be blocked or queued; anything else from a policy is refused.
    package static let knownReasons: Set<String> = [
        "slot_limit", "payment_method_required", "addon_required", "workspace_suspended", "payment_overdue", "abuse",
    ]

    package let verdict: Verdict
    package let reason: String?
    package let sku: String?
    package let arch: String?
    /// Higher runs first (boosted workspaces).
    package let priority: Int64
    package let slotLimit: Int64?
    package let policyVersion: String

    enum CodingKeys: String, CodingKey {
        case verdict = "decision", reason, sku, arch, priority, slotLimit = "slot_limit", policyVersion = "policy_version"
    }
}

extension PolicyEngine {
    /// Asks `admission.lua` whether a queued job may run now. The answer is checked strictly:
    /// a known verdict, a known reason for queue and block, and an SKU for anything of ours.
    package func admitJob(_ input: AdmissionInput) throws -> AdmissionDecision {
        try evaluate("admission.lua", "admit", writing: input.write) { output, version in
            func fail(_ message: String) -> PolicyError { PolicyError(file: "admission.lua", line: nil, message: "admit returned \(message)") }
            guard output.isTable else { throw fail("something other than a table") }
            guard case .string(let text) = output["decision"], let verdict = AdmissionDecision.Verdict(rawValue: text) else {
                throw fail("no decision among allow, queue, block, foreign")
            }
            var reason: String?
            if case .string(let r) = output["reason"] { reason = r }
            if verdict == .queue || verdict == .block {
                guard let reason, AdmissionDecision.knownReasons.contains(reason) else {
                    throw fail(
                        "\(verdict.rawValue) without a known reason (got \(reason ?? "none"); known: "
                            + "\(AdmissionDecision.knownReasons.sorted().joined(separator: ", ")))"
                    )
                }
            }
            var sku: String?
            var arch: String?
            if case .string(let s) = output["sku"] { sku = s }
            if case .string(let a) = output["arch"] { arch = a }
            if verdict != .foreign {
                guard sku != nil, arch == "x64" || arch == "macos" else { throw fail("no sku and arch (x64 or macos)") }
            }
            var priority: Int64 = 0
            switch output["priority"] {
            case .integer(let p): priority = p
            case .nil: break
            default: throw fail("a priority that is not an integer")
            }
            var limit: Int64?
            if case .integer(let l) = output["slot_limit"] { limit = l }
            return AdmissionDecision(
                verdict: verdict, reason: reason, sku: sku, arch: arch, priority: priority, slotLimit: limit,
                policyVersion: version)
        }
    }
}
