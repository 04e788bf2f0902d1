import Foundation

/// CPU and memory of a runner Pod, in Kubernetes quantities (`"2"`, `"500m"`, `"4Gi"`); requests
/// equal limits, so the Pod is Guaranteed and gets what the SKU sold.
package struct RunnerPodResources: Sendable, Equatable {
    package var cpu: String
    package var memory: String

    package init(cpu: String, memory: String) {
        self.cpu = cpu
        self.memory = memory
    }
}

extension KubernetesClient {
    /// Label keys every runner Pod carries.
    package static let jobIDLabel = "tenki.dev/job-id"
    package static let managedByLabel = "app.kubernetes.io/managed-by"
    package static let componentLabel = "app.kubernetes.io/component"
    /// The environment variable the actions runner reads as its `--jitconfig` argument.
    package static let jitConfigEnvironmentVariable = "ACTIONS_RUNNER_INPUT_JITCONFIG"
    /// The key of the just-in-time configuration in a runner's Secret.
    package static let jitConfigSecretKey = "jitconfig"
    /// GitHub cancels a self-hosted runner's job after 5 days; the Pod never outlives that.
    package static let runnerPodMaxRuntimeSeconds = 5 * 24 * 3600

    /// The JSON manifest of an ephemeral actions-runner Pod: one container `runner` running
    /// `/home/runner/run.sh` with the just-in-time configuration in
    /// `ACTIONS_RUNNER_INPUT_JITCONFIG`, `restartPolicy: Never` (the runner takes one job and
    /// exits), no service-account token mounted (the job gets no cluster credentials), and labels
    /// naming the Tenki job. Throws for a name or label Kubernetes would refuse.
    /// With `jitConfigSecret`, the variable is read from that Secret's `jitconfig` key instead
    /// (`jitConfig` is then not used): the credential stays out of the Pod's spec.
    package static func runnerPodManifest(
        name: String, jobID: String, image: String, jitConfig: String, jitConfigSecret: String? = nil,
        labels: [String: String] = [:], resources: RunnerPodResources? = nil,
        activeDeadlineSeconds: Int = runnerPodMaxRuntimeSeconds
    ) throws -> [UInt8] {
        let operation = "build runner pod manifest"
        _ = try checkedName(name, operation: operation)
        guard !image.isEmpty, !image.contains(where: \.isWhitespace) else {
            throw KubernetesError(status: 0, reason: "BadRequest", message: "image '\(image)' is not an image reference", operation: operation)
        }
        if let jitConfigSecret { _ = try checkedName(jitConfigSecret, operation: operation) }
        guard jitConfigSecret != nil || !jitConfig.isEmpty else {
            throw KubernetesError(status: 0, reason: "BadRequest", message: "the JIT configuration is empty", operation: operation)
        }
        var allLabels = labels
        allLabels[jobIDLabel] = jobID
        allLabels[managedByLabel] = "tenki"
        allLabels[componentLabel] = "runner"
        for (key, value) in allLabels where !isLabelValue(value) {
            throw KubernetesError(
                status: 0, reason: "BadRequest",
                message: "label \(key)='\(value)' is not a valid label value (≤ 63 of [A-Za-z0-9-_.])", operation: operation)
        }
        var container: [String: Any] = [
            "name": "runner",
            "image": image,
            "command": ["/home/runner/run.sh"],
            "env": [
                jitConfigSecret.map { secret -> [String: Any] in
                    ["name": jitConfigEnvironmentVariable, "valueFrom": ["secretKeyRef": ["name": secret, "key": jitConfigSecretKey]]]
                } ?? ["name": jitConfigEnvironmentVariable, "value": jitConfig]
            ],
        ]
        if let resources {
            let quantities = ["cpu": resources.cpu, "memory": resources.memory]
            container["resources"] = ["requests": quantities, "limits": quantities]
        }
        let pod: [String: Any] = [
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": ["name": name, "labels": allLabels],
            "spec": [
                "restartPolicy": "Never",
                "automountServiceAccountToken": false,
                "activeDeadlineSeconds": max(1, min(activeDeadlineSeconds, runnerPodMaxRuntimeSeconds)),
                "containers": [container],
            ] as [String: Any],
        ]
        return Array(try JSONSerialization.data(withJSONObject: pod, options: [.sortedKeys]))
    }

    /// A label value: empty, or up to 63 of `[A-Za-z0-9-_.]` starting and ending alphanumeric.
    static func isLabelValue(_ value: String) -> Bool {
        if value.isEmpty { return true }
        guard value.count <= KubernetesLimits.labelValueMaxCharacters else { return false }
        let alphanumeric: (Character) -> Bool = { $0.isASCII && ($0.isLetter || $0.isNumber) }
        guard let first = value.first, let last = value.last, alphanumeric(first), alphanumeric(last) else { return false }
        return value.allSatisfy { alphanumeric($0) || $0 == "-" || $0 == "_" || $0 == "." }
    }
}
