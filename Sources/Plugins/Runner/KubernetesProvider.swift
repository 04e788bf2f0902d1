import Foundation
import GitHubPlugin
import Host
import Kubernetes

/// Ephemeral runners as Kubernetes Pods: a just-in-time runner configuration from the GitHub App
/// for the job's repository, kept in a Secret of the Pod's name (so the credential is not in the
/// Pod's spec), then a Pod running it, sized by the job's SKU. Provisioning twice finds the Pod
/// already there and keeps it, or the Secret and uses it; releasing deletes Pod and Secret,
/// either being gone is not an error.
package struct KubernetesProvider: ComputeProvider {
    package let name = "kubernetes"
    package let github: GitHubAppClient
    package let kubernetes: KubernetesClient
    package let image: String

    package init(github: GitHubAppClient, kubernetes: KubernetesClient, image: String) {
        self.github = github
        self.kubernetes = kubernetes
        self.image = image
    }

    /// The Pod's and the runner's name: the job's key, DNS-safe.
    package static func podName(_ job: RunnerJob) -> String { "tenki-\(job.installationID)-\(job.jobID)-\(job.runAttempt)" }

    /// CPU and memory from SKU ids like `x64-4c-8gb` or `macos-m4-6c` (nil when the id says nothing).
    package static func resources(sku: String?) -> RunnerPodResources? {
        guard let sku else { return nil }
        var cpu: String?
        var memory: String?
        for part in sku.split(separator: "-") {
            if part.hasSuffix("c"), let n = Int(part.dropLast()) { cpu = String(n) }
            if part.hasSuffix("gb"), let n = Int(part.dropLast(2)) { memory = "\(n)Gi" }
        }
        guard let cpu, let memory else { return nil }
        return RunnerPodResources(cpu: cpu, memory: memory)
    }

    package func provision(_ job: RunnerJob) async throws -> String {
        let pod = KubernetesProvider.podName(job)
        if try await kubernetes.getPod(pod) != nil { return pod }
        let parts = job.repository.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw HostError(.internal, "job \(job.key): repository '\(job.repository)' is not owner/name") }
        // A Secret left by an attempt that died before its Pod holds the runner's configuration
        // already: GitHub registers a runner name once, so it is used rather than asked again.
        if try await kubernetes.secretData(pod)?[KubernetesClient.jitConfigSecretKey]?.isEmpty ?? true {
            let scope = GitHubRunnerScope.repository(owner: parts[0], name: parts[1])
            let config: GitHubJITRunnerConfig
            do {
                config = try await github.jitRunnerConfig(installation: job.installationID, scope: scope, name: pod, labels: job.labels)
            } catch let error as GitHubAPIError where error.kind == .status && error.status == 409 {
                // Registered by an attempt that died before keeping its configuration: unregister
                // that runner (it never ran: no Pod had its configuration) and register again.
                try await github.removeRunner(installation: job.installationID, scope: scope, name: pod)
                config = try await github.jitRunnerConfig(installation: job.installationID, scope: scope, name: pod, labels: job.labels)
            }
            let labels = ["tenki.dev/workspace": job.workspaceID, KubernetesClient.managedByLabel: "tenki"]
            try await kubernetes.applySecret(pod, stringData: [KubernetesClient.jitConfigSecretKey: config.encodedJITConfig], labels: labels)
        }
        let manifest = try KubernetesClient.runnerPodManifest(
            name: pod, jobID: "\(job.installationID).\(job.jobID).\(job.runAttempt)", image: image, jitConfig: "", jitConfigSecret: pod,
            labels: ["tenki.dev/workspace": job.workspaceID], resources: KubernetesProvider.resources(sku: job.sku))
        do {
            try await kubernetes.createPod(manifest)
        } catch let error as KubernetesError where error.status == 409 {
            // Made by an earlier attempt that did not record it: the same runner.
        }
        return pod
    }

    package func release(_ job: RunnerJob, handle: String) async throws {
        let name = handle.isEmpty ? KubernetesProvider.podName(job) : handle
        try await kubernetes.deletePod(name)
        try await kubernetes.deleteSecret(name)
    }
}
