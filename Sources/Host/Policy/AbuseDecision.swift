import Foundation
import Lua

/// A new workspace's signup, with how many earlier workspaces share its identifiers.
package struct SignupInput: Sendable, Codable {
    package var githubLogin: String?
    package var githubOrg: String?
    package var emailDomain: String?
    package var history: History

    package struct History: Sendable, Codable {
        package var sameAccount: Int64
        package var sameOrg: Int64
        package var sameEmailDomain: Int64
        package var sameFingerprint: Int64
        enum CodingKeys: String, CodingKey {
            case sameAccount = "same_account", sameOrg = "same_org", sameEmailDomain = "same_email_domain", sameFingerprint = "same_fingerprint"
        }
        package init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            sameAccount = try c.decodeIfPresent(Int64.self, forKey: .sameAccount) ?? 0
            sameOrg = try c.decodeIfPresent(Int64.self, forKey: .sameOrg) ?? 0
            sameEmailDomain = try c.decodeIfPresent(Int64.self, forKey: .sameEmailDomain) ?? 0
            sameFingerprint = try c.decodeIfPresent(Int64.self, forKey: .sameFingerprint) ?? 0
        }
        package init(sameAccount: Int64 = 0, sameOrg: Int64 = 0, sameEmailDomain: Int64 = 0, sameFingerprint: Int64 = 0) {
            self.sameAccount = sameAccount
            self.sameOrg = sameOrg
            self.sameEmailDomain = sameEmailDomain
            self.sameFingerprint = sameFingerprint
        }
    }

    enum CodingKeys: String, CodingKey { case githubLogin = "github_login", githubOrg = "github_org", emailDomain = "email_domain", history }

    /// Every field may be left out; a missing history counts nothing earlier.
    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        githubLogin = try c.decodeIfPresent(String.self, forKey: .githubLogin)
        githubOrg = try c.decodeIfPresent(String.self, forKey: .githubOrg)
        emailDomain = try c.decodeIfPresent(String.self, forKey: .emailDomain)
        history = try c.decodeIfPresent(History.self, forKey: .history) ?? History()
    }

    package init(githubLogin: String? = nil, githubOrg: String? = nil, emailDomain: String? = nil, history: History = .init()) {
        self.githubLogin = githubLogin
        self.githubOrg = githubOrg
        self.emailDomain = emailDomain
        self.history = history
    }
}

/// A job event as the abuse rules see it.
package struct JobActivity: Sendable, Codable {
    package var name: String
    package var workflowName: String?
    package var steps: [String]
    package var labels: [String]
    package var durationSeconds: Int64

    enum CodingKeys: String, CodingKey { case name, workflowName = "workflow_name", steps, labels, durationSeconds = "duration_seconds" }

    /// Only `name` is required; the lists default to empty and the duration to 0.
    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        workflowName = try c.decodeIfPresent(String.self, forKey: .workflowName)
        steps = try c.decodeIfPresent([String].self, forKey: .steps) ?? []
        labels = try c.decodeIfPresent([String].self, forKey: .labels) ?? []
        durationSeconds = try c.decodeIfPresent(Int64.self, forKey: .durationSeconds) ?? 0
    }

    package init(name: String, workflowName: String? = nil, steps: [String] = [], labels: [String] = [], durationSeconds: Int64 = 0) {
        self.name = name
        self.workflowName = workflowName
        self.steps = steps
        self.labels = labels
        self.durationSeconds = durationSeconds
    }
}

/// The abuse policy's verdict, checked: a known action and a score in 0...100.
package struct AbuseVerdict: Sendable, Codable, Equatable {
    package enum Action: String, Sendable, Codable, Comparable {
        case allow, flag
        case requirePaymentMethod = "require_payment_method"
        case block, suspend

        var rank: Int { [.allow, .flag, .requirePaymentMethod, .block, .suspend].firstIndex(of: self)! }
        package static func < (a: Action, b: Action) -> Bool { a.rank < b.rank }
    }

    package let score: Int64
    package let action: Action
    package let reasons: [String]
    package let policyVersion: String

    enum CodingKeys: String, CodingKey { case score, action, reasons, policyVersion = "policy_version" }
}

extension PolicyEngine {
    package func abuseOnSignup(_ input: SignupInput) throws -> AbuseVerdict {
        try abuse("on_signup", input)
    }

    package func abuseOnJob(_ input: JobActivity) throws -> AbuseVerdict {
        try abuse("on_job", input)
    }

    private func abuse<T: Encodable>(_ function: String, _ input: T) throws -> AbuseVerdict {
        let value = try LuaJSON.value(fromJSON: String(decoding: try JSONEncoder().encode(input), as: UTF8.self))
        let (output, version) = try evaluate("abuse.lua", function, input: value)
        func fail(_ message: String) -> PolicyError { PolicyError(file: "abuse.lua", line: nil, message: "\(function) returned \(message)") }
        guard case .integer(let score) = output["score"], (0...100).contains(score) else { throw fail("no integer score in 0...100") }
        guard let text = output["action"].stringValue, let action = AbuseVerdict.Action(rawValue: text) else {
            throw fail("an unknown action (allow, flag, require_payment_method, block, suspend)")
        }
        let reasons = output["reasons"].tableValue?.array.compactMap(\.stringValue) ?? []
        guard action == .allow || !reasons.isEmpty else { throw fail("\(action.rawValue) without a reason") }
        return AbuseVerdict(score: score, action: action, reasons: reasons, policyVersion: version)
    }
}

extension DecisionRecord {
    /// The record of an admission decision, to store with the job.
    package static func admission(_ input: AdmissionInput, _ output: AdmissionDecision) -> DecisionRecord {
        DecisionRecord(decision: "admit", policyVersion: output.policyVersion, input: input, output: output)
    }

    package static func monthlyLines(_ input: MonthlyLinesInput, _ output: MonthlyLines) -> DecisionRecord {
        DecisionRecord(decision: "monthly_lines", policyVersion: output.policyVersion, input: input, output: output)
    }

    package static func eligibility(_ input: EligibilityRequest, _ output: Eligibility) -> DecisionRecord {
        DecisionRecord(decision: "eligible", policyVersion: output.policyVersion, input: input, output: output)
    }

    package static func abuse<I: Encodable>(_ decision: String, _ input: I, _ output: AbuseVerdict) -> DecisionRecord {
        DecisionRecord(decision: decision, policyVersion: output.policyVersion, input: input, output: output)
    }
}
