import Host
import Testing

@testable import RunnerPlugin

/// The job lifecycle as a table: every (state, event) pair, then charges, duplicates and
/// every order of GitHub's news.
@Suite("Job lifecycle: the pure state machine behind runner_jobs")
struct JobLifecycleTests {
    typealias Event = JobLifecycle.Event
    typealias Report = JobLifecycle.Report

    /// The states, in the table's column order: no record yet, then every status.
    static let states: [JobStatus?] = [nil] + JobStatus.allCases
    static let started = Report(.inProgress, reportsStart: true, namesRunner: true)
    static let finished = Report(.completed, reportsStart: true, namesRunner: true)

    /// One row per event; one cell per state of `states`:
    /// `+s` inserted as s, `>s` moved to s, `=` applied without moving, `dup` duplicate,
    /// `old` stale news (facts filled in), `-` not applicable (nothing changes).
    static let table: [(String, Event, [String])] = [
        // Columns: none, queued, blocked, waiting, provisioning, provisioned, running, completed, foreign.
        ("reported queued", .reported(Report(.queued)), ["+queued", "dup", "old", "old", "old", "old", "old", "old", "old"]),
        ("reported in_progress", .reported(started), ["+running", ">running", ">running", ">running", ">running", ">running", "dup", "old", "old"]),
        (
            "reported completed", .reported(finished),
            ["+completed", ">completed", ">completed", ">completed", ">completed", ">completed", ">completed", "dup", "old"]
        ),
        ("admitted allow", .admitted(.allow), ["-", ">waiting", "-", "-", "-", "-", "-", "-", "-"]),
        ("admitted queue", .admitted(.queue), ["-", ">waiting", "-", "-", "-", "-", "-", "-", "-"]),
        ("admitted block", .admitted(.block), ["-", ">blocked", "-", "-", "-", "-", "-", "-", "-"]),
        ("admitted foreign", .admitted(.foreign), ["-", ">foreign", "-", "-", "-", "-", "-", "-", "-"]),
        ("block cleared", .blockCleared, ["-", "-", ">queued", "-", "-", "-", "-", "-", "-"]),
        ("workspace changed", .workspaceChanged, ["-", "-", ">queued", ">queued", "-", "-", "-", "-", "-"]),
        ("closed on GitHub", .closedOnGitHub, ["-", ">completed", ">completed", ">completed", ">completed", ">completed", "-", "-", "-"]),
        ("slot taken", .slotTaken, ["-", "-", "-", ">provisioning", "-", "-", "-", "-", "-"]),
        ("provisioning leased", .provisioningLeased, ["-", "-", "-", "-", "=", "-", "-", "-", "-"]),
        ("runner provisioned", .runnerProvisioned, ["-", "old", "old", "old", ">provisioned", "old", "old", "old", "old"]),
        ("provisioning failed", .provisioningFailed, ["-", "-", "-", "-", "=", "-", "-", "-", "-"]),
        ("orphan timed out", .orphanTimedOut, ["-", "-", "-", "-", "-", ">waiting", "-", "-", "-"]),
        ("runner released", .runnerReleased, ["-", "-", "-", "-", "-", "-", "-", "=", "-"]),
        ("charge settled charged", .chargeSettled(.charged), ["-", "-", "-", "-", "-", "-", "-", "=", "-"]),
        ("charge settled failed", .chargeSettled(.failed), ["-", "-", "-", "-", "-", "-", "-", "=", "-"]),
        ("charge settled not billable", .chargeSettled(.notBillable), ["-", "-", "-", "-", "-", "-", "-", "=", "-"]),
    ]

    @Test("every (state, event) pair moves the job as the table says")
    func everyPair() {
        for (name, event, cells) in Self.table {
            #expect(cells.count == Self.states.count, "row \(name)")
            for (state, cell) in zip(Self.states, cells) {
                var lifecycle = JobLifecycle(status: state, charge: .pending)
                let transition = lifecycle.apply(event)
                let label = "\(name) on \(state?.rawValue ?? "none")"
                switch cell.first {
                case "+":
                    #expect(transition.outcome == .applied && transition.actions.first == .insert, "\(label)")
                    #expect(lifecycle.status?.rawValue == String(cell.dropFirst()), "\(label)")
                case ">":
                    #expect(transition.outcome == .applied, "\(label)")
                    #expect(lifecycle.status?.rawValue == String(cell.dropFirst()), "\(label)")
                case "=":
                    #expect(transition.outcome == .applied && lifecycle.status == state, "\(label)")
                default:
                    let expected: JobLifecycle.Transition.Outcome = cell == "dup" ? .duplicate : cell == "old" ? .stale : .notApplicable
                    #expect(transition.outcome == expected && lifecycle.status == state, "\(label)")
                    if expected == .notApplicable { #expect(transition.actions.isEmpty && lifecycle.charge == .pending, "\(label)") }
                }
            }
        }
    }

    @Test("the table names every kind of event")
    func tableCoversEveryEvent() {
        let verdicts: [AdmissionDecision.Verdict] = [.allow, .queue, .block, .foreign]
        let events: [Event] =
            [.reported(Report(.queued)), .reported(Self.started), .reported(Self.finished)] + verdicts.map(Event.admitted)
            + [
                .blockCleared, .workspaceChanged, .closedOnGitHub, .slotTaken, .provisioningLeased, .runnerProvisioned, .provisioningFailed,
                .orphanTimedOut, .runnerReleased,
            ] + [ChargeStatus.charged, .failed, .notBillable].map(Event.chargeSettled)
        #expect(Self.table.map(\.1) == events)
    }

    @Test("each transition names the writes the store performs")
    func actions() {
        let rows: [(JobStatus?, Event, [JobLifecycle.Action])] = [
            (nil, .reported(Report(.queued)), [.insert]),
            (.queued, .reported(Report(.queued)), [.fillMissingFacts]),
            (.running, .reported(Report(.queued)), [.fillMissingFacts]),
            (.provisioned, .reported(Self.started), [.recordStart]),
            (.running, .reported(Self.finished), [.recordCompletion]),
            (.queued, .admitted(.allow), [.recordAdmission]),
            (.queued, .admitted(.block), [.recordAdmission, .publishBlocked]),
            (.blocked, .blockCleared, [.markReleasedFromBlock]),
            (.blocked, .workspaceChanged, [.markReleasedFromBlock]),
            (.waiting, .workspaceChanged, [.returnToAdmission]),
            (.provisioned, .closedOnGitHub, [.recordConclusion]),
            (.waiting, .slotTaken, [.takeProvisioningLease]),
            (.provisioning, .provisioningLeased, [.takeProvisioningLease]),
            (.provisioning, .runnerProvisioned, [.recordRunnerHandle]),
            (.running, .runnerProvisioned, [.recordRunnerHandle]),
            (.provisioning, .provisioningFailed, [.retryProvisioningLater]),
            (.provisioned, .orphanTimedOut, [.forgetRunner]),
            (.completed, .runnerReleased, [.markRunnerReleased]),
        ]
        for (state, event, actions) in rows {
            var lifecycle = JobLifecycle(status: state)
            #expect(lifecycle.apply(event).actions == actions, "\(event) on \(state?.rawValue ?? "none")")
        }
    }

    @Test("a completed job owes a charge only when it ran: a start, and a runner or a running state before")
    func chargeOnCompletion() {
        // (state before, a start recorded, the report's start, the report's runner) → charge status
        let rows: [(JobStatus?, Bool, Bool, Bool, ChargeStatus)] = [
            (nil, false, true, true, .pending),
            (nil, false, false, true, .notBillable),  // cancelled while queued: no start
            (nil, false, true, false, .notBillable),  // no runner named
            (.queued, false, false, false, .notBillable),
            (.queued, false, true, true, .pending),
            (.provisioned, false, true, false, .notBillable),
            (.running, true, false, false, .pending),  // ran: its start came with in_progress
            (.running, false, true, false, .pending),
            (.running, false, false, false, .notBillable),
            (.waiting, true, false, true, .pending),
        ]
        for (state, hasStart, reportsStart, namesRunner, charge) in rows {
            var lifecycle = JobLifecycle(status: state, hasStart: hasStart)
            _ = lifecycle.apply(.reported(Report(.completed, reportsStart: reportsStart, namesRunner: namesRunner)))
            #expect(
                lifecycle.status == .completed && lifecycle.charge == charge,
                "\(state?.rawValue ?? "none") start \(hasStart)/\(reportsStart) runner \(namesRunner)")
        }
        // A queued report's start is its queue time: it never makes a job billable.
        #expect(Report(.queued, reportsStart: true).reportsStart == false)
    }

    @Test("a charge settles once: pending moves, a settled one stays, the same outcome twice is a duplicate")
    func chargeSettles() {
        for from in ChargeStatus.allCases {
            for outcome in [ChargeStatus.charged, .failed, .notBillable] {
                var lifecycle = JobLifecycle(status: .completed, charge: from)
                let transition = lifecycle.apply(.chargeSettled(outcome))
                if from == outcome {
                    #expect(transition.outcome == .duplicate && lifecycle.charge == from)
                } else if from == .pending {
                    #expect(transition.outcome == .applied && lifecycle.charge == outcome)
                } else {
                    #expect(transition.outcome == .notApplicable && lifecycle.charge == from, "\(from) then \(outcome)")
                }
            }
        }
    }

    @Test("GitHub's news in any order, each delivered twice, ends completed with one pending charge")
    func anyOrderAndDuplicates() {
        let news: [Report] = [Report(.queued), Self.started, Self.finished]
        for order in permutations(of: news) {
            var lifecycle = JobLifecycle(status: nil)
            var inserts = 0
            for report in order + order.reversed() {
                if lifecycle.apply(.reported(report)).actions.contains(.insert) { inserts += 1 }
            }
            #expect(inserts == 1)
            #expect(lifecycle == JobLifecycle(status: .completed, charge: .pending, hasStart: true), "\(order.map(\.action))")
        }
        // Once admitted and running on our runner, a late queued or in_progress changes nothing.
        var lifecycle = JobLifecycle(status: nil)
        for event: Event in [
            .reported(Report(.queued)), .admitted(.allow), .slotTaken, .runnerProvisioned, .reported(Self.started),
            .reported(Report(.queued)), .reported(Self.started), .runnerProvisioned, .slotTaken,
        ] {
            _ = lifecycle.apply(event)
        }
        #expect(lifecycle == JobLifecycle(status: .running, charge: .notBillable, hasStart: true))
    }

    @Test("the statements' status guards come from the lifecycle")
    func guards() {
        #expect(JobLifecycle.statuses(movedBy: .blockCleared) == [.blocked])
        #expect(JobLifecycle.statuses(movedBy: .workspaceChanged) == [.blocked, .waiting])
        #expect(JobLifecycle.statuses(movedBy: .workspaceChanged, doing: .returnToAdmission) == [.waiting])
        #expect(JobLifecycle.statuses(movedBy: .slotTaken) == [.waiting])
        #expect(JobLifecycle.statuses(movedBy: .provisioningLeased) == [.provisioning])
        #expect(JobLifecycle.statuses(movedBy: .runnerProvisioned) == [.provisioning])
        #expect(JobLifecycle.statuses(movedBy: .runnerReleased) == [.completed])
        #expect(JobLifecycle.statuses(movedBy: .closedOnGitHub) == JobStatus.unfinished.filter { $0 != .running })
        #expect(JobLifecycle.target(of: .orphanTimedOut, from: .provisioned) == .waiting)
        #expect(JobLifecycle.target(of: .orphanTimedOut, from: .running) == nil)
        #expect(JobStatus.sqlCondition([.waiting]) == "status = 'waiting'")
        #expect(JobStatus.sqlCondition(JobStatus.holdingSlot) == "status IN ('provisioning', 'provisioned', 'running')")
    }

    @Test("GitHub's not-started statuses are one set: queued, waiting, pending and requested")
    func gitHubNotStarted() {
        #expect(GitHubJobStatus.notStarted == ["queued", "waiting", "pending", "requested"])
        #expect(!GitHubJobStatus.notStarted.contains("in_progress") && !GitHubJobStatus.notStarted.contains("completed"))
    }

    func permutations<T>(of items: [T]) -> [[T]] {
        guard items.count > 1 else { return [items] }
        return items.indices.flatMap { i -> [[T]] in
            var rest = items
            let first = rest.remove(at: i)
            return permutations(of: rest).map { [first] + $0 }
        }
    }
}
