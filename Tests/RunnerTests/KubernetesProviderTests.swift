import Foundation
import GitHubPlugin
import Kubernetes
import PluginTestSupport
import RunnerPlugin
import TestSupport
import Testing

@Suite("Kubernetes compute provider against fake GitHub and Kubernetes API servers")
struct KubernetesProviderTests {
    static func job(sku: String? = "x64-4c-8gb", jobID: Int64 = 42) -> RunnerJob {
        RunnerJob(
            installationID: 957387, jobID: jobID, runAttempt: 1, workspaceID: "ws-21031067", repository: "Codertocat/Hello-World",
            name: "build", labels: ["tenki-4c-8gb"], status: .provisioning, blockReason: nil, sku: sku, arch: "x64", priority: 0,
            slotLimit: 40, enqueueSequence: 1, startedAt: nil, completedAt: nil, conclusion: nil, runnerName: nil,
            providerHandle: nil, chargeStatus: .notBillable)
    }

    @Test("a job gets a just-in-time runner for its repository in a Pod sized by its SKU; again is the same Pod; release deletes it once")
    func provisionAndRelease() async throws {
        let github = try FakeGitHub()
        let kubernetes = try FakeKubernetes()
        let pods = kubernetes.client(namespace: "runners")
        let provider = KubernetesProvider(github: try await github.client(), kubernetes: pods, image: "example/actions-runner:2")
        let job = Self.job()

        let handle = try await provider.provision(job)
        #expect(handle == "tenki-957387-42-1")
        let pod = try #require(try await pods.getPod(handle))
        #expect(pod.labels["tenki.dev/workspace"] == "ws-21031067" && pod.labels["tenki.dev/job-id"] == "957387.42.1")
        // The runner was registered for the job's repository, under the Pod's name, with its labels.
        let calls = FakeGitHub.apiRequests(
            try await github.requests(),
            path: "/repos/Codertocat/Hello-World/actions/runners/generate-jitconfig")
        let body = try #require(calls.first?["body"] as? [String: Any])
        #expect(calls.count == 1 && body["name"] as? String == handle && body["labels"] as? [String] == ["tenki-4c-8gb"])
        // The JIT configuration goes into a Secret of the Pod's name first, then the Pod reads it
        // from there (no credential in the Pod's spec); requests = limits from the SKU.
        let posts = try await kubernetes.requests().filter { $0["method"] as? String == "POST" }
        #expect(posts.map { $0["path"] as? String } == ["/api/v1/namespaces/runners/secrets", "/api/v1/namespaces/runners/pods"])
        let secret = try #require(posts.first?["body"] as? [String: Any])
        #expect((secret["metadata"] as? [String: Any])?["name"] as? String == handle && secret["type"] as? String == "Opaque")
        let jit = (secret["stringData"] as? [String: String])?["jitconfig"]
        #expect(jit?.isEmpty == false)
        let manifest = try #require(posts.last?["body"] as? [String: Any])
        let container = try #require((manifest["spec"] as? [String: Any])?["containers"] as? [[String: Any]]).first
        #expect(container?["image"] as? String == "example/actions-runner:2")
        let env = try #require((container?["env"] as? [[String: Any]])?.first)
        #expect(env["name"] as? String == "ACTIONS_RUNNER_INPUT_JITCONFIG" && env["value"] == nil)
        let reference = (env["valueFrom"] as? [String: Any])?["secretKeyRef"] as? [String: String]
        #expect(reference == ["name": handle, "key": "jitconfig"])
        #expect(!String(decoding: try JSONSerialization.data(withJSONObject: manifest), as: UTF8.self).contains(jit ?? "-"))
        let limits = (container?["resources"] as? [String: Any])?["limits"] as? [String: Any]
        #expect(limits?["cpu"] as? String == "4" && limits?["memory"] as? String == "8Gi")

        // Provisioning again (a retry after a crash) keeps the same Pod and registers nothing new.
        #expect(try await provider.provision(job) == handle)
        #expect(try await kubernetes.requests().filter { $0["method"] as? String == "POST" }.count == 2)

        // Release deletes the Pod and its Secret; again is not an error.
        try await provider.release(job, handle: handle)
        #expect(try await pods.getPod(handle) == nil)
        let deletes = try await kubernetes.requests().filter { $0["method"] as? String == "DELETE" }.compactMap { $0["path"] as? String }
        #expect(deletes == ["/api/v1/namespaces/runners/pods/\(handle)", "/api/v1/namespaces/runners/secrets/\(handle)"])
        try await provider.release(job, handle: handle)  // already gone: not an error

        // An attempt that died after registering the runner (its Secret written) but before its
        // Pod: the retry uses the Secret's configuration — GitHub takes a runner name only once.
        let again = Self.job(jobID: 43)
        try await pods.applySecret(KubernetesProvider.podName(again), stringData: ["jitconfig": "earlier-config"])
        #expect(try await provider.provision(again) == "tenki-957387-43-1")
        #expect(try await pods.secretData("tenki-957387-43-1") == ["jitconfig": "earlier-config"])
        #expect(
            FakeGitHub.apiRequests(
                try await github.requests(),
                path: "/repos/Codertocat/Hello-World/actions/runners/generate-jitconfig"
            ).count == 1)
        #expect(try await pods.getPod("tenki-957387-43-1") != nil)

        // One that died right after GitHub registered the runner, before writing the Secret: the
        // name is taken (409), so the runner is unregistered and registered again.
        let lost = Self.job(jobID: 44)
        let app = try await github.client()
        _ = try await app.jitRunnerConfig(
            installation: 957387, scope: .repository(owner: "Codertocat", name: "Hello-World"),
            name: KubernetesProvider.podName(lost), labels: ["tenki-4c-8gb"])
        #expect(try await provider.provision(lost) == "tenki-957387-44-1")
        let seen = try await github.requests()
        #expect(FakeGitHub.apiRequests(seen, path: "/repos/Codertocat/Hello-World/actions/runners/generate-jitconfig").count == 4)
        #expect(FakeGitHub.apiRequests(seen, path: "/repos/Codertocat/Hello-World/actions/runners?name=tenki-957387-44-1").count == 1)
        #expect(
            seen.contains {
                ($0["method"] as? String) == "DELETE" && (($0["path"] as? String) ?? "").hasPrefix("/repos/Codertocat/Hello-World/actions/runners/")
            })
        #expect(try await pods.secretData("tenki-957387-44-1")?["jitconfig"]?.isEmpty == false)
    }

    @Test("SKU ids give Pod resources", arguments: [("x64-2c-4gb", "2", "4Gi"), ("x64-64c-256gb", "64", "256Gi")])
    func resources(_ sku: String, _ cpu: String, _ memory: String) {
        #expect(KubernetesProvider.resources(sku: sku) == RunnerPodResources(cpu: cpu, memory: memory))
        #expect(KubernetesProvider.resources(sku: nil) == nil)
        #expect(KubernetesProvider.resources(sku: "macos-m4-6c") == nil)
    }
}
