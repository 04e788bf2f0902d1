import Testing

@testable import RunnerPlugin

@Suite("Runner limits")
struct RunnerLimitsTests {
    @Test("the runner's limits hold their relations")
    func relations() {
        RunnerLimits.check()
        #expect(RunnerLimits.provisioningRetryDelayMilliseconds < RunnerLimits.provisioningLeaseMilliseconds)
        #expect(RunnerLimits.runsPerRepositoryMax <= RunnerLimits.gitHubPageSizeMax)
    }
}
