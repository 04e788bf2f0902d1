import Foundation
import Host

/// How runs, steps and schedules are shown, the same in `tenki workflow ... --json` and over HTTP.
enum WorkflowViews {
    static func json(_ bytes: [UInt8]?) -> Any {
        guard let bytes else { return NSNull() }
        return (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) ?? String(decoding: bytes, as: UTF8.self)
    }

    static func time(_ ms: Int64?) -> Any { ms.map { Timestamp.iso(ms: $0) } ?? NSNull() }

    static func run(_ run: WorkflowRun, withPayloads: Bool = true) -> [String: Any] {
        var object: [String: Any] = [
            "id": run.id, "type": run.type, "task_queue": run.taskQueue, "status": run.status.rawValue,
            "error": run.error ?? NSNull(), "parent_id": run.parentID ?? NSNull(), "executions": run.executions,
            "run_number": run.runNumber,
            "created_at": time(run.createdAtMs), "updated_at": time(run.updatedAtMs), "finished_at": time(run.finishedAtMs),
            "deadline_at": time(run.deadlineAtMs),
            "due_at": run.status == .sleeping || run.status == .pending ? time(run.dueAtMs) : NSNull(),
        ]
        if withPayloads {
            object["input"] = json(run.input)
            object["output"] = json(run.output)
        }
        return object
    }

    static func step(_ step: WorkflowStepRecord) -> [String: Any] {
        [
            "seq": step.seq, "kind": step.kind, "name": step.name, "status": step.status, "output": json(step.output),
            "error_type": step.errorType ?? NSNull(), "error": step.error ?? NSNull(), "attempts": step.attempts,
            "wake_at": time(step.wakeAtMs), "started_at": time(step.startedAtMs), "finished_at": time(step.finishedAtMs),
            "duration_ms": step.finishedAtMs.map { $0 - step.startedAtMs } ?? NSNull(),
        ]
    }

    static func description(_ d: WorkflowDescription) -> [String: Any] {
        var object = run(d.run)
        object["steps"] = d.steps.map(step)
        object["children"] = d.children.map { run($0, withPayloads: false) }
        var state: [String: Any] = [:]
        for (key, value) in d.state { state[key] = json(value) }
        object["state"] = state
        return object
    }

    static func result(_ run: WorkflowRun) -> [String: Any] {
        ["id": run.id, "status": run.status.rawValue, "output": json(run.output), "error": run.error ?? NSNull()]
    }

    static func schedule(_ s: WorkflowSchedule) -> [String: Any] {
        [
            "name": s.name, "cron": s.cron.text, "type": s.workflowType, "task_queue": s.taskQueue, "input": json(s.input),
            "next_tick": time(s.nextTickMs), "paused": s.paused,
        ]
    }

    static func text(_ object: Any, pretty: Bool = false) -> String {
        var options: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed]
        if pretty { options.insert(.prettyPrinted) }
        return String(decoding: (try? JSONSerialization.data(withJSONObject: object, options: options)) ?? Data("null".utf8), as: UTF8.self)
    }

    /// One line per run for `tenki workflow list`.
    static func line(_ run: WorkflowRun) -> String {
        var line = "\(run.id)  \(run.type)  \(run.status.rawValue)  queue \(run.taskQueue)  created \(Timestamp.iso(ms: run.createdAtMs))"
        if run.runNumber > 1 { line += "  run \(run.runNumber)" }
        if run.status == .sleeping { line += "  due " + (run.dueAtMs.map { Timestamp.iso(ms: $0) } ?? "when woken") }
        if let error = run.error { line += "  error: \(error.prefix(120))" }
        return line
    }

    /// The readable form of `tenki workflow describe`.
    static func describeText(_ d: WorkflowDescription) -> String {
        let r = d.run
        var lines = [
            "\(r.id)  \(r.type)  \(r.status.rawValue)", "  task queue  \(r.taskQueue)",
            "  created     \(Timestamp.iso(ms: r.createdAtMs))", "  executions  \(r.executions)",
        ]
        if r.runNumber > 1 { lines.append("  run         \(r.runNumber) (continued as new or started again \(r.runNumber - 1) time(s))") }
        if let parent = r.parentID { lines.append("  parent      \(parent)") }
        if let deadline = r.deadlineAtMs { lines.append("  deadline    \(Timestamp.iso(ms: deadline))") }
        if r.status == .sleeping { lines.append("  due         " + (r.dueAtMs.map { Timestamp.iso(ms: $0) } ?? "when woken")) }
        if let finished = r.finishedAtMs { lines.append("  finished    \(Timestamp.iso(ms: finished))") }
        lines.append("  input       \(text(json(r.input)))")
        if let output = r.output { lines.append("  output      \(text(json(output)))") }
        if let error = r.error { lines.append("  error       \(error)") }
        if !d.steps.isEmpty { lines.append("  steps:") }
        for s in d.steps {
            var line = "    \(s.seq). \(s.kind) \(s.name)  \(s.status)  attempts \(s.attempts)"
            if let finished = s.finishedAtMs { line += "  \(finished - s.startedAtMs) ms" }
            if let wake = s.wakeAtMs, s.status != "completed" { line += "  until \(Timestamp.iso(ms: wake))" }
            if let error = s.error { line += "  error: \(s.errorType.map { $0 + ": " } ?? "")\(error.prefix(200))" }
            lines.append(line)
        }
        for c in d.children { lines.append("  child \(c.id)  \(c.type)  \(c.status.rawValue)") }
        for (key, value) in d.state { lines.append("  state \(key) = \(text(json(value)))") }
        return lines.joined(separator: "\n")
    }
}
