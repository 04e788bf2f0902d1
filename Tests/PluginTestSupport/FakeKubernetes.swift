import Foundation
import HTTPClient
import Kubernetes
import TestSupport

/// `Tests/TestSupport/peers/fake_kubernetes.py` over TLS with a self-signed certificate, for one test.
package struct FakeKubernetes {
    package static let token = "k8s-test-token-\(UUID().uuidString.prefix(8))"
    package let peer: PeerServer
    package let directory: String
    package let certificate: String
    package let http = HTTPClient()

    package init() throws {
        directory = try TemporaryDirectory.make(prefix: "tenki-k8s")
        let (certificate, key) = try SelfSignedCertificate.make(in: directory)
        self.certificate = certificate
        peer = try PeerServer.start(script: "fake_kubernetes.py", arguments: ["--token", Self.token, "--tls", certificate, key])
    }

    package var url: String { "https://127.0.0.1:\(peer.port)" }

    package func client(
        namespace: String = "runners", credential: KubernetesConfiguration.Credential = .token(FakeKubernetes.token)
    )
        -> KubernetesClient
    {
        KubernetesClient(
            configuration: KubernetesConfiguration(
                apiServerURL: url + "/", credential: credential, caFile: certificate,
                namespace: namespace))
    }

    package func requests() async throws -> [[String: Any]] {
        let response = try await http.send(OutboundRequest(url: url + "/_fake/requests", caBundlePath: certificate))
        return try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]] ?? []
    }

    package func setPhase(_ namespace: String, _ name: String, _ phase: String) async throws {
        let response = try await http.send(
            OutboundRequest(
                method: "POST", url: url + "/_fake/pods/\(namespace)/\(name)/phase",
                body: Array("{\"phase\":\"\(phase)\"}".utf8), caBundlePath: certificate))
        guard response.status == 200 else { throw MissingDependency(description: "fake kubernetes phase: \(response.bodyText)") }
    }
}
