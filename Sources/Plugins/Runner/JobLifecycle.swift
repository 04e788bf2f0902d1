import Host

/// Where a job is in its life (`runner_jobs.status`). The order is the order of progress: news
/// from GitHub never moves a job backwards (a late `in_progress` after `completed` changes nothing).
package enum JobStatus: String, Sendable, Codable, CaseIterable {
    /// Received, not yet admitted.
    case queued
    /// Admission refused it for now (`block_reason`); released when the reason clears.
    case blocked
    /// Admitted, waiting for a concurrency slot.
    case waiting
    /// Holds a slot; the compute provider is being asked for a runner.
    case provisioning
    /// The provider has a runner for it.
    case provisioned
    /// GitHub reports it running.
    case running
    /// GitHub reports it finished (or cancelled).
    case completed
    /// Its labels name no offering: not ours, recorded and otherwise ignored.
    case foreign

    var rank: Int {
        switch self {
        case .queued: return 0
        case .blocked, .waiting: return 1
        case .provisioning: return 2
        case .provisioned: return 3
        case .running: return 4
        case .completed, .foreign: return 5
        }
    }

    /// Statuses that hold one of the workspace's concurrency slots.
    package static let holdingSlot: [JobStatus] = [.provisioning, .provisioned, .running]
    /// Statuses of a job that may still run (the reconciler asks GitHub about these).
    package static let unfinished: [JobStatus] = [.queued, .blocked, .waiting, .provisioning, .provisioned, .running]

    /// `column = 'a'` or `column IN ('a', 'b')`: the statuses as constants in a statement, so the
    /// planner sees them as it sees literals (raw values are fixed identifiers, never input).
    static func sqlCondition(_ statuses: [JobStatus], column: String = "status") -> String {
        precondition(!statuses.isEmpty, "a status condition names at least one status")
        if statuses.count == 1 { return "\(column) = '\(statuses[0].rawValue)'" }
        return "\(column) IN (\(statuses.map { "'\($0.rawValue)'" }.joined(separator: ", ")))"
    }
}

/// What a job owes (`runner_jobs.charge_status`).
package enum ChargeStatus: String, Sendable, Codable, CaseIterable {
    /// Nothing to charge: it never ran on a runner, or the pricing policy matched no offering.
    case notBillable = "none"
    /// Finished after running: the scheduler prices and posts it.
    case pending
    /// Priced and posted to the ledger.
    case charged
    /// The ledger refused the charge; an operator looks at it.
    case failed
}

/// GitHub's statuses of a job, as its REST API and webhooks name them.
package enum GitHubJobStatus {
    /// A job in one of these has not started anywhere: it still waits for a runner. The one
    /// definition for the scheduler (is a released job still wanted?) and the reconciler (which
    /// jobs did we miss, which runners are orphaned?).
    package static let notStarted: Set<String> = ["queued", "waiting", "pending", "requested"]
}

/// A job's lifecycle as a pure value: its status, its charge status and whether a start was
/// recorded; `apply` takes an event and returns what the store must write. `JobStore` reads the
/// state, applies the event here and writes the outcome under a guard on the status it read, so
/// two replicas (or a webhook racing a round) never both move one job. Statements that move many
/// jobs at once take their guard from `statuses(movedBy:)`.
package struct JobLifecycle: Sendable, Equatable {
    /// nil: no record of the job yet.
    package private(set) var status: JobStatus?
    package private(set) var charge: ChargeStatus
    /// Whether a start time is recorded (from an `in_progress` or `completed` report).
    package private(set) var hasStart: Bool

    package init(status: JobStatus?, charge: ChargeStatus = .notBillable, hasStart: Bool = false) {
        self.status = status
        self.charge = charge
        self.hasStart = hasStart
    }

    /// What GitHub said of a job (a webhook, or the reconciler reading the REST API).
    package struct Report: Sendable, Equatable {
        package enum Action: Sendable, Equatable, CaseIterable { case queued, inProgress, completed }
        package var action: Action
        /// A start time came with it. A queued job's `started_at` is its queue time and never counts.
        package var reportsStart: Bool
        /// A runner's name came with it.
        package var namesRunner: Bool

        package init(_ action: Action, reportsStart: Bool = false, namesRunner: Bool = false) {
            self.action = action
            self.reportsStart = action != .queued && reportsStart
            self.namesRunner = namesRunner
        }

        var status: JobStatus {
            switch action {
            case .queued: return .queued
            case .inProgress: return .running
            case .completed: return .completed
            }
        }
    }

    /// What happens to a job.
    package enum Event: Sendable, Equatable {
        /// GitHub reported the job queued, in progress or completed.
        case reported(Report)
        /// The admission policy decided (`allow` and `queue` both wait for a slot).
        case admitted(AdmissionDecision.Verdict)
        /// The reason of a block cleared (the installation is active again).
        case blockCleared
        /// Something admission reads about the workspace changed (a payment method, an add-on,
        /// slots, a suspension, an abuse verdict): blocked jobs and jobs waiting for a slot are
        /// judged again, keeping their place in the queue.
        case workspaceChanged
        /// GitHub no longer has the job waiting (gone, or started or finished elsewhere) before it
        /// ran here: closed with nothing to charge.
        case closedOnGitHub
        /// It took a free concurrency slot.
        case slotTaken
        /// A replica took the lease to ask the provider for its runner again (the earlier attempt
        /// failed or its replica died).
        case provisioningLeased
        /// The provider has a runner for it.
        case runnerProvisioned
        /// The provider could not give a runner; the next attempt waits a little.
        case provisioningFailed
        /// Its runner was provisioned and GitHub still shows it queued after the orphan timeout:
        /// the runner goes, the job waits for a slot and a runner again.
        case orphanTimedOut
        /// The runner of the finished job was released at the provider.
        case runnerReleased
        /// Charging finished with this outcome (`charged`, `failed`, or `notBillable`).
        case chargeSettled(ChargeStatus)
    }

    /// A write the store performs for a transition (besides the new status and charge status).
    package enum Action: Sendable, Equatable {
        /// A new record with the report's facts.
        case insert
        /// Same or older news: only facts we did not have are filled in.
        case fillMissingFacts
        /// The start time and runner name of a job that started.
        case recordStart
        /// Start, end, conclusion and runner of a finished job.
        case recordCompletion
        /// The admission's offering, architecture, priority, slot limit and block reason.
        case recordAdmission
        /// A `runner_job.blocked` event for scripts.
        case publishBlocked
        /// Clears the block reason and marks it released (GitHub is asked before it runs).
        case markReleasedFromBlock
        /// Back to admission from the slot queue (it keeps its place: its arrival order).
        case returnToAdmission
        /// The conclusion GitHub gave (or why it is gone).
        case recordConclusion
        /// A provisioning lease and, the first time, when a runner was first asked for.
        case takeProvisioningLease
        /// The runner's handle, and the lease dropped.
        case recordRunnerHandle
        /// The lease pushed a little into the future, so the next attempt waits.
        case retryProvisioningLater
        /// The runner's handle and lease dropped.
        case forgetRunner
        /// The runner is released (it is not released again).
        case markRunnerReleased
    }

    /// The result of applying an event.
    package struct Transition: Sendable, Equatable {
        package enum Outcome: Sendable, Equatable {
            /// The event applied (the status may or may not move; see the actions).
            case applied
            /// The job is already where this event leads.
            case duplicate
            /// Older news than the job's state: only missing facts are kept.
            case stale
            /// The event does not apply to a job in this state (another event moved it on).
            case notApplicable
        }

        package var outcome: Outcome
        package var actions: [Action]

        static func applied(_ actions: Action...) -> Transition { Transition(outcome: .applied, actions: actions) }
        static let notApplicable = Transition(outcome: .notApplicable, actions: [])
    }

    /// Applies `event`: the new state is `self`, the writes are the transition's actions.
    package mutating func apply(_ event: Event) -> Transition {
        if case .reported(let report) = event { return apply(report) }
        guard let current = status else { return .notApplicable }
        switch (current, event) {
        case (.queued, .admitted(let verdict)):
            switch verdict {
            case .allow, .queue: status = .waiting
            case .block:
                status = .blocked
                return .applied(.recordAdmission, .publishBlocked)
            case .foreign: status = .foreign
            }
            return .applied(.recordAdmission)
        case (.blocked, .blockCleared), (.blocked, .workspaceChanged):
            status = .queued
            return .applied(.markReleasedFromBlock)
        case (.waiting, .workspaceChanged):
            // Its slot limit and verdict were decided with the workspace as it was.
            status = .queued
            return .applied(.returnToAdmission)
        case (.queued, .closedOnGitHub), (.blocked, .closedOnGitHub), (.waiting, .closedOnGitHub),
            (.provisioning, .closedOnGitHub), (.provisioned, .closedOnGitHub):
            // A running job keeps its slot until GitHub says more: its runner reports the end to GitHub.
            status = .completed
            charge = .notBillable
            return .applied(.recordConclusion)
        case (.waiting, .slotTaken):
            status = .provisioning
            return .applied(.takeProvisioningLease)
        case (.provisioning, .provisioningLeased):
            return .applied(.takeProvisioningLease)
        case (.provisioning, .runnerProvisioned):
            status = .provisioned
            return .applied(.recordRunnerHandle)
        case (_, .runnerProvisioned):
            // The job moved on while the runner was made: the handle is kept so the runner is released.
            return Transition(outcome: .stale, actions: [.recordRunnerHandle])
        case (.provisioning, .provisioningFailed):
            return .applied(.retryProvisioningLater)
        case (.provisioned, .orphanTimedOut):
            status = .waiting
            return .applied(.forgetRunner)
        case (.completed, .runnerReleased):
            return .applied(.markRunnerReleased)
        case (.completed, .chargeSettled(let outcome)):
            if charge == outcome { return Transition(outcome: .duplicate, actions: []) }
            // Only a pending charge settles; a settled one (charged, refused) stays as it is.
            guard charge == .pending else { return .notApplicable }
            charge = outcome
            return .applied()
        default:
            return .notApplicable
        }
    }

    /// News from GitHub moves a job forward only; same or older news fills in missing facts.
    private mutating func apply(_ report: Report) -> Transition {
        let target = report.status
        guard let current = status else {
            status = target
            hasStart = report.reportsStart
            // A job that completes without ever starting (cancelled while queued) costs nothing.
            charge = target == .completed && report.reportsStart && report.namesRunner ? .pending : .notBillable
            return .applied(.insert)
        }
        guard target.rank > current.rank else {
            hasStart = hasStart || report.reportsStart
            return Transition(outcome: target == current ? .duplicate : .stale, actions: [.fillMissingFacts])
        }
        status = target
        switch target {
        case .running:
            hasStart = hasStart || report.reportsStart
            return .applied(.recordStart)
        default:
            precondition(target == .completed, "a report moves a job only to running or completed")
            let started = report.reportsStart || hasStart
            charge = started && (report.namesRunner || current == .running) ? .pending : .notBillable
            hasStart = started
            return .applied(.recordCompletion)
        }
    }

    /// The statuses from which `event` moves or changes a job, whatever its charge: the guard of
    /// a statement that applies the event to many jobs, or to one without reading it first.
    static func statuses(movedBy event: Event) -> [JobStatus] {
        JobStatus.allCases.filter { target(of: event, from: $0) != nil }
    }

    /// The statuses from which `event` applies with `action` among its writes.
    static func statuses(movedBy event: Event, doing action: Action) -> [JobStatus] {
        JobStatus.allCases.filter { status in
            var lifecycle = JobLifecycle(status: status, charge: .pending)
            let transition = lifecycle.apply(event)
            return transition.outcome == .applied && transition.actions.contains(action)
        }
    }

    /// The status `event` moves a job to from `status` (nil: it does not apply there).
    static func target(of event: Event, from status: JobStatus) -> JobStatus? {
        var lifecycle = JobLifecycle(status: status, charge: .pending)
        return lifecycle.apply(event).outcome == .applied ? lifecycle.status : nil
    }
}
