import Foundation
import Lua

/// Scheduled policy changes. A file may declare `replaces = "pricing.lua"` and
/// `effective_from = "2027-01-01T00:00:00Z"`: from that UTC time on, it answers for the policy it
/// replaces; before it, the earlier file does. Events are placed by their own time (a job's
/// `completed_at`), so a late or replayed event is decided as it would have been then.
enum PolicySchedule {
    static func read(worker: PolicyWorker, set: PolicySet) -> ([String: [PolicySet.ScheduledFile]], [String]) {
        var schedule: [String: [PolicySet.ScheduledFile]] = [:]
        var errors: [String] = []
        let paths = set.policyPaths
        for path in paths {
            let source = set.files.first { $0.path == path }?.source ?? ""
            let replaces = (try? worker.field(path, "replaces")) ?? .nil
            let effective = (try? worker.field(path, "effective_from")) ?? .nil
            var from: Int64?
            if case .string(let text) = effective {
                guard let seconds = parseUTC(text) else {
                    errors.append(
                        PolicyError(
                            file: path, line: ContractRules.line(of: "effective_from", in: source),
                            message: "effective_from '\(text)' is not a UTC time like \"2027-01-01T00:00:00Z\""
                        ).description)
                    continue
                }
                from = seconds
            } else if !effective.isNil {
                errors.append(
                    PolicyError(
                        file: path, line: ContractRules.line(of: "effective_from", in: source),
                        message: "effective_from must be a UTC time string"
                    ).description)
                continue
            }
            switch replaces {
            case .nil:
                schedule[path, default: []].append(.init(effectiveFrom: from ?? Int64.min, path: path))
            case .string(let target):
                guard paths.contains(target), target != path else {
                    errors.append(
                        PolicyError(
                            file: path, line: ContractRules.line(of: "replaces", in: source),
                            message: "replaces '\(target)', which is not a policy of this set"
                        ).description)
                    continue
                }
                guard let from else {
                    errors.append(
                        PolicyError(
                            file: path, line: ContractRules.line(of: "replaces", in: source),
                            message: "a file that replaces another must say from when (effective_from)"
                        ).description)
                    continue
                }
                schedule[target, default: []].append(.init(effectiveFrom: from, path: path))
            default:
                errors.append(
                    PolicyError(
                        file: path, line: ContractRules.line(of: "replaces", in: source),
                        message: "replaces must name a policy file, like \"pricing.lua\""
                    ).description)
            }
        }
        for (target, entries) in schedule {
            let sorted = entries.sorted { $0.effectiveFrom < $1.effectiveFrom }
            for (a, b) in zip(sorted, sorted.dropFirst()) where a.effectiveFrom == b.effectiveFrom {
                errors.append(
                    PolicyError(
                        file: b.path, line: nil,
                        message: "takes effect at the same time as \(a.path) for \(target)"
                    ).description)
            }
            schedule[target] = sorted
        }
        // Only policies with something scheduled need an entry.
        schedule = schedule.filter { $0.value.count > 1 || $0.value.first?.effectiveFrom != Int64.min }
        return (schedule, errors)
    }

    static func parseUTC(_ text: String) -> Int64? { Timestamp.parseUTCSeconds(text) }
}
