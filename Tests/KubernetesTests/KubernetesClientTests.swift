import Foundation
import HTTPClient
import Kubernetes
import PluginTestSupport
import TestSupport
import Testing

@Suite("Kubernetes Pod client against a fake API server")
struct KubernetesClientTests {
    static func kubernetesError(_ body: () async throws -> Void) async -> KubernetesError? {
        do {
            try await body()
            return nil
        } catch {
            return error as? KubernetesError
        }
    }

    static func manifest(_ name: String, jobID: String = "job-1") throws -> [UInt8] {
        try KubernetesClient.runnerPodManifest(
            name: name, jobID: jobID, image: "ghcr.io/actions/actions-runner:2.321.0",
            jitConfig: "eyJqaXQiOiJjb25maWcifQ==", labels: ["tenki.dev/sku": "x64-2c-4gb"],
            resources: RunnerPodResources(cpu: "2", memory: "4Gi"))
    }

    @Test("the runner Pod manifest is an ephemeral actions-runner Pod with the JIT config in its environment")
    func manifestShape() throws {
        let pod = try #require(try JSONSerialization.jsonObject(with: Data(Self.manifest("tenki-runner-1", jobID: "4711"))) as? [String: Any])
        #expect(pod["apiVersion"] as? String == "v1" && pod["kind"] as? String == "Pod")
        let metadata = try #require(pod["metadata"] as? [String: Any])
        #expect(metadata["name"] as? String == "tenki-runner-1")
        let labels = try #require(metadata["labels"] as? [String: String])
        #expect(
            labels == [
                "tenki.dev/job-id": "4711", "tenki.dev/sku": "x64-2c-4gb", "app.kubernetes.io/managed-by": "tenki",
                "app.kubernetes.io/component": "runner",
            ])
        let spec = try #require(pod["spec"] as? [String: Any])
        #expect(spec["restartPolicy"] as? String == "Never")
        #expect(spec["automountServiceAccountToken"] as? Bool == false)
        #expect(spec["activeDeadlineSeconds"] as? Int == 5 * 24 * 3600)
        let container = try #require((spec["containers"] as? [[String: Any]])?.first)
        #expect(container["image"] as? String == "ghcr.io/actions/actions-runner:2.321.0")
        #expect(container["command"] as? [String] == ["/home/runner/run.sh"])
        #expect(container["env"] as? [[String: String]] == [["name": "ACTIONS_RUNNER_INPUT_JITCONFIG", "value": "eyJqaXQiOiJjb25maWcifQ=="]])
        // Read from a Secret instead, the value is not in the manifest at all.
        let fromSecret =
            try JSONSerialization.jsonObject(
                with: Data(
                    try KubernetesClient.runnerPodManifest(
                        name: "tenki-1-2-3", jobID: "1.2.3", image: "runner", jitConfig: "", jitConfigSecret: "tenki-1-2-3"))) as? [String: Any]
        let env = (((fromSecret?["spec"] as? [String: Any])?["containers"] as? [[String: Any]])?.first?["env"] as? [[String: Any]])?.first
        #expect(((env?["valueFrom"] as? [String: Any])?["secretKeyRef"] as? [String: String]) == ["name": "tenki-1-2-3", "key": "jitconfig"])
        #expect(throws: KubernetesError.self) {
            try KubernetesClient.runnerPodManifest(name: "ok", jobID: "1", image: "runner", jitConfig: "", jitConfigSecret: "Bad_Name")
        }
        let resources = try #require(container["resources"] as? [String: [String: String]])
        #expect(resources["requests"] == ["cpu": "2", "memory": "4Gi"] && resources["limits"] == resources["requests"])

        #expect(throws: KubernetesError.self) { try Self.manifest("Not_A_DNS_Name") }
        #expect(throws: KubernetesError.self) { try Self.manifest("ok", jobID: "has spaces") }
        #expect(throws: KubernetesError.self) {
            try KubernetesClient.runnerPodManifest(name: "ok", jobID: "1", image: "runner", jitConfig: "")
        }
    }

    @Test("create, get and delete a Pod with a bearer token over TLS; the fake accepts its shape")
    func createGetDelete() async throws {
        let fake = try FakeKubernetes()
        let client = fake.client()
        let created = try await client.createPod(try Self.manifest("tenki-runner-1", jobID: "42"))
        #expect(created.name == "tenki-runner-1" && created.namespace == "runners" && created.phase == .pending)
        #expect(created.labels["tenki.dev/job-id"] == "42")

        try await fake.setPhase("runners", "tenki-runner-1", "Running")
        let running = try #require(try await client.getPod("tenki-runner-1"))
        #expect(running.phase == .running && !running.deleting)

        #expect(try await client.deletePod("tenki-runner-1") == true)
        #expect(try await client.getPod("tenki-runner-1") == nil)

        let requests = try await fake.requests()
        #expect(
            requests.map { "\($0["method"]!) \($0["path"]!)" } == [
                "POST /api/v1/namespaces/runners/pods",
                "GET /api/v1/namespaces/runners/pods/tenki-runner-1",
                "DELETE /api/v1/namespaces/runners/pods/tenki-runner-1",
                "GET /api/v1/namespaces/runners/pods/tenki-runner-1",
            ])
        for request in requests {
            #expect((request["headers"] as? [String: String])?["authorization"] == "Bearer " + FakeKubernetes.token)
        }
        #expect((requests[0]["headers"] as? [String: String])?["content-type"] == "application/json")
        let body = try #require(requests[0]["body"] as? [String: Any])
        #expect(((body["spec"] as? [String: Any])?["containers"] as? [[String: Any]])?.first?["name"] as? String == "runner")
    }

    @Test("a duplicate name is AlreadyExists (409); deleting a missing Pod is not an error; a bad Pod is Invalid (422)")
    func conflictsAndMissing() async throws {
        let fake = try FakeKubernetes()
        let client = fake.client()
        try await client.createPod(try Self.manifest("tenki-runner-2"))
        let duplicate = await Self.kubernetesError { try await client.createPod(try Self.manifest("tenki-runner-2")) }
        #expect(duplicate?.status == 409 && duplicate?.reason == "AlreadyExists")
        #expect(duplicate?.message.contains("tenki-runner-2") == true)

        #expect(try await client.deletePod("tenki-runner-2") == true)
        #expect(try await client.deletePod("tenki-runner-2") == false, "already gone")
        #expect(try await client.deletePod("never-existed") == false)
        #expect(try await client.getPod("never-existed") == nil)

        // Hand-written manifests the fake refuses, as the API server would.
        let noImage = Array(#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":[{"name":"runner"}]}}"#.utf8)
        let invalid = await Self.kubernetesError { try await client.createPod(noImage) }
        #expect(invalid?.status == 422 && invalid?.reason == "Invalid" && invalid?.message.contains("image") == true)
        let badPolicy = Array(
            #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"restartPolicy":"Sometimes","containers":[{"name":"r","image":"i"}]}}"#
                .utf8)
        let policy = await Self.kubernetesError { try await client.createPod(badPolicy) }
        #expect(policy?.status == 422 && policy?.message.contains("restartPolicy") == true)
        let notAPod = Array(#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{}}"#.utf8)
        #expect(await Self.kubernetesError { try await client.createPod(notAPod) }?.status == 422)

        // A malformed name never reaches the server.
        let before = try await fake.requests().count
        #expect(await Self.kubernetesError { _ = try await client.getPod("../secrets") }?.reason == "BadRequest")
        #expect(try await fake.requests().count == before)
    }

    @Test("a wrong token is Unauthorized; the token file is re-read on every call; an unknown CA fails TLS")
    func credentials() async throws {
        let fake = try FakeKubernetes()
        let wrong = fake.client(credential: .token("wrong"))
        let unauthorized = await Self.kubernetesError { _ = try await wrong.getPod("a") }
        #expect(unauthorized?.status == 401 && unauthorized?.reason == "Unauthorized")

        let tokenFile = fake.directory + "/token"
        try "stale\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let fromFile = fake.client(credential: .tokenFile(tokenFile))
        #expect(await Self.kubernetesError { _ = try await fromFile.getPod("a") }?.status == 401)
        try (FakeKubernetes.token + "\n").write(toFile: tokenFile, atomically: true, encoding: .utf8)  // rotated
        #expect(try await fromFile.getPod("a") == nil)

        let missingFile = fake.client(credential: .tokenFile(fake.directory + "/nope"))
        #expect(await Self.kubernetesError { _ = try await missingFile.getPod("a") }?.reason == "BadCredential")

        let untrusted = KubernetesClient(
            configuration: KubernetesConfiguration(
                apiServerURL: fake.url, credential: .token(FakeKubernetes.token),
                caFile: nil, namespace: "runners"))
        let error = await #expect(throws: HTTPClientError.self) { _ = try await untrusted.getPod("a") }
        #expect(error?.kind == .tls)
    }

    @Test("namespaces keep their Pods apart")
    func namespaces() async throws {
        let fake = try FakeKubernetes()
        let a = fake.client(namespace: "team-a")
        let b = fake.client(namespace: "team-b")
        try await a.createPod(try Self.manifest("same-name"))
        try await b.createPod(try Self.manifest("same-name"))
        #expect(try await a.getPod("same-name")?.namespace == "team-a")
        #expect(try await a.deletePod("same-name"))
        #expect(try await b.getPod("same-name")?.namespace == "team-b")
    }
}
