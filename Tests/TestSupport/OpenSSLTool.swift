import Foundation
import Spawn

/// The `openssl` command, as an independent second opinion on what TenkiCrypto does.
package enum OpenSSLTool {
    /// Runs `openssl arguments...` with `input` on stdin; returns its exit status and stdout.
    @discardableResult
    package static func run(_ arguments: [String], input: [UInt8] = []) throws -> (status: Int32, output: [UInt8]) {
        let result: ChildOutput
        do {
            result = try ChildProcess.run("/usr/bin/env", ["openssl"] + arguments, input: input)
        } catch {
            throw MissingDependency(description: "cannot run openssl: \(error)")
        }
        if result.status == 127 { throw MissingDependency(description: "the openssl command is not installed") }
        return (result.status, result.stdout)
    }

    /// Like `run`, but a non-zero exit is an error naming the command.
    @discardableResult
    package static func require(_ arguments: [String], input: [UInt8] = []) throws -> [UInt8] {
        let (status, output) = try run(arguments, input: input)
        guard status == 0 else { throw MissingDependency(description: "openssl \(arguments.joined(separator: " ")) exited with \(status)") }
        return output
    }
}

/// A 2048-bit RSA key pair made with the openssl command: the private key in the asked format
/// and the public key (SubjectPublicKeyInfo PEM) beside it.
package struct TestRSAKeyPair: Sendable {
    package enum Format: Sendable { case pkcs1, pkcs8 }
    package let privateKeyPath: String
    package let publicKeyPath: String
    package var privateKeyPEM: String { (try? String(contentsOfFile: privateKeyPath, encoding: .utf8)) ?? "" }

    package static func make(in directory: String, format: Format, name: String = "app") throws -> TestRSAKeyPair {
        let privatePath = directory + "/\(name)-private.pem"
        let publicPath = directory + "/\(name)-public.pem"
        switch format {
        case .pkcs1: try OpenSSLTool.require(["genrsa", "-traditional", "-out", privatePath, "2048"])
        case .pkcs8: try OpenSSLTool.require(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", privatePath])
        }
        try OpenSSLTool.require(["pkey", "-in", privatePath, "-pubout", "-out", publicPath])
        return TestRSAKeyPair(privateKeyPath: privatePath, publicKeyPath: publicPath)
    }

    /// One PKCS#1 pair per test process, made on first use (key generation is slow).
    package static let shared: Result<TestRSAKeyPair, any Error> = Result {
        try make(in: try TemporaryDirectory.make(prefix: "tenki-rsa"), format: .pkcs1)
    }
}
