import Foundation
import Spawn

/// A third-party-style peer process on loopback (Python's http.server), started for one test.
package final class PeerServer: Sendable {
    package let process: ChildProcess
    package let port: Int
    private let stdin: ChildPipe

    package var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Starts `Tests/TestSupport/peers/echo_server.py`, over TLS when a certificate is given.
    package static func echo(tlsCertificate: String? = nil, tlsKey: String? = nil) throws -> PeerServer {
        var arguments: [String] = []
        if let tlsCertificate, let tlsKey { arguments += ["--tls", tlsCertificate, tlsKey] }
        return try start(script: "echo_server.py", arguments: arguments)
    }

    /// Starts `Tests/TestSupport/peers/<script>` with python3 and waits for its `READY <port>` line.
    /// The peer exits when this object goes away (its stdin closes).
    package static func start(script: String, arguments: [String] = []) throws -> PeerServer {
        let path = Fixtures.packageRoot + "/Tests/TestSupport/peers/" + script
        let out = try ChildPipe()
        let input = try ChildPipe()
        let process = try ChildProcess.start(
            "/usr/bin/env", ["python3", path] + arguments, stdin: .descriptor(input.readEnd), stdout: .descriptor(out.writeEnd))
        input.closeRead()
        out.closeWrite()
        defer { out.closeRead() }
        var line: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        while !line.contains(UInt8(ascii: "\n")) {
            let count = read(out.readEnd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { throw MissingDependency(description: "peer \(script) exited before it was ready (python3 missing?)") }
            line += buffer[0..<count]
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("READY "), let port = Int(text.dropFirst(6).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw MissingDependency(description: "peer \(script) said: \(text)")
        }
        return PeerServer(process: process, port: port, stdin: input)
    }

    init(process: ChildProcess, port: Int, stdin: ChildPipe) {
        self.process = process
        self.port = port
        self.stdin = stdin
    }

    deinit {
        stdin.closeWrite()
        process.send(SIGTERM)
        process.waitUntilExit()
    }
}

/// A self-signed certificate for 127.0.0.1 made with the openssl command.
package enum SelfSignedCertificate {
    package static func make(in directory: String) throws -> (certificate: String, key: String) {
        let cert = directory + "/cert.pem"
        let key = directory + "/key.pem"
        let result = try ChildProcess.run(
            "/usr/bin/env",
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            ])
        guard result.status == 0 else { throw MissingDependency(description: "openssl req failed: \(result.stderrText)") }
        return (cert, key)
    }
}
