import Host

/// Every limit of the runner plugin, each with its unit in its name, and the relations between
/// them checked once (`check()`, run when a scheduler is made and by the tests). Each bounds the
/// work of one round or sweep, so no round grows with the size of the backlog.
package enum RunnerLimits {
    // MARK: scheduler rounds

    /// Workspaces granted their signup free minutes per round.
    package static let workspacesCreditedPerRoundMax = 100
    /// Queued jobs asked through admission per round.
    package static let jobsAdmittedPerRoundMax = 1_000
    /// Workspaces whose waiting jobs are moved into slots in one round's scheduling transaction.
    package static let workspacesScheduledPerRoundMax = 200
    /// Provisioning requests re-claimed per round (a failed attempt, a dead replica's lease).
    package static let jobsReprovisionedPerRoundMax = 1_000
    /// Provisioning requests in flight at once, per provisioning step.
    package static let provisioningRequestsInFlightMax = 32
    /// Provisioning steps running in the background at once (see `JobScheduler.runOnce`).
    package static let backgroundProvisioningStepsMax = 4
    /// Finished jobs charged per round.
    package static let jobsChargedPerRoundMax = 500
    /// Runners of finished jobs released per round.
    package static let runnersReleasedPerRoundMax = 200
    /// Times a job is priced again because other jobs used the free minutes first.
    package static let pricingAttemptsPerChargeMax = 4

    /// How long a replica owns a job's provisioning before another may take it over.
    package static let provisioningLeaseMilliseconds: Int64 = 60_000
    /// How long the next attempt waits after the provider failed to give a runner.
    package static let provisioningRetryDelayMilliseconds: Int64 = 5_000

    // MARK: reconciliation sweeps

    /// Jobs whose real state is asked for per sweep (one API call each), money at stake first.
    package static let jobsCheckedPerSweepMax = 500
    /// Installed repositories scanned per sweep for queued jobs we never heard of.
    package static let repositoriesScannedPerSweepMax = 200
    /// Workflow runs (one page) looked into per repository and run status.
    package static let runsPerRepositoryMax = 100
    /// Jobs of one run read (one page) when looking for queued jobs we never heard of.
    package static let jobsPerRunPageMax = 100
    /// A job we had news of this recently is not asked about: its webhook may be on its way.
    package static let quietSecondsBeforeCheck: Int64 = 120
    /// A provisioned runner whose job has not started after this long is released (the default
    /// of `runner_orphan_timeout_seconds`).
    package static let orphanTimeoutSecondsDefault: Int64 = 600

    /// The largest page GitHub's REST API returns (`per_page`).
    static let gitHubPageSizeMax = 100
    /// The longest name of a GitHub owner or repository.
    static let gitHubNameCharactersMax = 100
    /// Bound parameters one statement may carry on both drivers (SQLite's default
    /// `SQLITE_MAX_VARIABLE_NUMBER` is 32,766, PostgreSQL's limit 65,535).
    static let sqlParametersPerStatementMax = 32_766

    /// The relations between the limits; a programmer error when one does not hold.
    static func check() {
        // Admission reads the round's workspaces and installations with one `IN (…)` each.
        precondition(jobsAdmittedPerRoundMax <= sqlParametersPerStatementMax, "a round's admission fits one statement")
        precondition(workspacesScheduledPerRoundMax <= sqlParametersPerStatementMax, "a round's workspaces fit one statement")
        precondition(provisioningRequestsInFlightMax <= jobsReprovisionedPerRoundMax, "a window of requests fits a round's claims")
        // A failed attempt is retried sooner than a dead replica's lease is taken over.
        precondition(provisioningRetryDelayMilliseconds < provisioningLeaseMilliseconds, "a retry waits less than a lease")
        precondition(runsPerRepositoryMax <= gitHubPageSizeMax && jobsPerRunPageMax <= gitHubPageSizeMax, "one page each")
        // A provisioned runner is checked (past the quiet period) before it can time out.
        precondition(quietSecondsBeforeCheck < orphanTimeoutSecondsDefault, "an orphan is seen before it times out")
        precondition(pricingAttemptsPerChargeMax >= 1 && backgroundProvisioningStepsMax >= 1, "at least one of each")
    }
}
