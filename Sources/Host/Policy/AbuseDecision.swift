import Foundation
import Lua

/// A new workspace's signup, with how many earlier workspaces share its identifiers.
public struct SignupInput: Sendable, Codable {
    public var githubLogin: String?
    public var githubOrg: String?
    public var emailDomain: String?
    public var history: History

    public struct History: Sendable, Codable {
        public var sameAccount: Int64
        public var sameOrg: Int64
        public var sameEmailDomain: Int64
        public var sameFingerprint: Int64
        enum CodingKeys: String, CodingKey {
            case sameAccount = "same_account", sameOrg = "same_org", sameEmailDomain = "same_email_domain", sameFingerprint = "same_fingerprint"
        }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            sameAccount = try c.decodeIfPresent(Int64.self, forKey: .sameAccount) ?? 0
            sameOrg = try c.decodeIfPresent(Int64.self, forKey: .sameOrg) ?? 0
            sameEmailDomain = try c.decodeIfPresent(Int64.self, forKey: .sameEmailDomain) ?? 0
            sameFingerprint = try c.decodeIfPresent(Int64.self, forKey: .sameFingerprint) ?? 0
        }
        public init(sameAccount: Int64 = 0, sameOrg: Int64 = 0, sameEmailDomain: Int64 = 0, sameFingerprint: Int64 = 0) {
            self.sameAccount = sameAccount; self.sameOrg = sameOrg; self.sameEmailDomain = sameEmailDomain; self.sameFingerprint = sameFingerprint
        }
    }

    enum CodingKeys: String, CodingKey { case githubLogin = "github_login", githubOrg = "github_org", emailDomain = "email_domain", history }

    /// Every field may be left out; a missing history counts nothing earlier.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        githubLogin = try c.decodeIfPresent(String.self, forKey: .githubLogin)
        githubOrg = try c.decodeIfPresent(String.self, forKey: .githubOrg)
        emailDomain = try c.decodeIfPresent(String.self, forKey: .emailDomain)
        history = try c.decodeIfPresent(History.self, forKey: .history) ?? History()
    }

    public init(githubLogin: String? = nil, githubOrg: String? = nil, emailDomain: String? = nil, history: History = .init()) {
        self.githubLogin = githubLogin; self.githubOrg = githubOrg; self.emailDomain = emailDomain; self.history = history
    }
}

/// A job event as the abuse rules see it.
public struct JobActivity: Sendable, Codable {
    public var name: String
    public var workflowName: String?
    public var steps: [String]
    public var labels: [String]
    public var durationSeconds: Int64

    enum CodingKeys: String, CodingKey { case name, workflowName = "workflow_name", steps, labels, durationSeconds = "duration_seconds" }

    /// Only `name` is required; the lists default to empty and the duration to 0.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        workflowName = try c.decodeIfPresent(String.self, forKey: .workflowName)
        steps = try c.decodeIfPresent([String].self, forKey: .steps) ?? []
        labels = try c.decodeIfPresent([String].self, forKey: .labels) ?? []
        durationSeconds = try c.decodeIfPresent(Int64.self, forKey: .durationSeconds) ?? 0
    }

    public init(name: String, workflowName: String? = nil, steps: [String] = [], labels: [String] = [], durationSeconds: Int64 = 0) {
        self.name = name; self.workflowName = workflowName; self.steps = steps; self.labels = labels; self.durationSeconds = durationSeconds
    }
}

/// The abuse policy's verdict, checked: a known action and a score in 0...100.
public struct AbuseVerdict: Sendable, Codable, Equatable {
    public enum Action: String, Sendable, Codable, Comparable {
        case allow, flag
        case requirePaymentMethod = "require_payment_method"
        case block, suspend

        var rank: Int { [.allow, .flag, .requirePaymentMethod, .block, .suspend].firstIndex(of: self)! }
        public static func < (a: Action, b: Action) -> Bool { a.rank < b.rank }
    }

    public let score: Int64
    public let action: Action
    public let reasons: [String]
    public let policyVersion: String

    enum CodingKeys: String, CodingKey { case score, action, reasons, policyVersion = "policy_version" }
}

extension PolicyEngine {
    public func abuseOnSignup(_ input: SignupInput) throws -> AbuseVerdict {
        try abuse("on_signup", input)
    }

    public func abuseOnJob(_ input: JobActivity) throws -> AbuseVerdict {
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
    public static func admission(_ input: AdmissionInput, _ output: AdmissionDecision) -> DecisionRecord {
        DecisionRecord(decision: "admit", policyVersion: output.policyVersion, input: input, output: output)
    }

    public static func monthlyLines(_ input: MonthlyLinesInput, _ output: MonthlyLines) -> DecisionRecord {
        DecisionRecord(decision: "monthly_lines", policyVersion: output.policyVersion, input: input, output: output)
    }

    public static func eligibility(_ input: EligibilityRequest, _ output: Eligibility) -> DecisionRecord {
        DecisionRecord(decision: "eligible", policyVersion: output.policyVersion, input: input, output: output)
    }

    public static func abuse<I: Encodable>(_ decision: String, _ input: I, _ output: AbuseVerdict) -> DecisionRecord {
        DecisionRecord(decision: decision, policyVersion: output.policyVersion, input: input, output: output)
    }
}
