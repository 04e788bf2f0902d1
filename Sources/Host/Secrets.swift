import Foundation
import TenkiCrypto

/// Secrets the host makes for itself when none is configured, kept in the data directory
/// (mode 0600) so `tenki serve` runs with nothing set and the CLI signs with the same value.
package enum HostSecrets {
    /// The GitHub webhook secret: configured, or `<data_dir>/github-webhook-secret`, created
    /// with 32 random bytes on first use.
    package static func githubWebhookSecret(_ configuration: HostConfiguration) throws -> String {
        if let configured = configuration.githubWebhookSecret { return configured }
        return try fileSecret(named: "github-webhook-secret", in: configuration.dataDir)
    }

    static func fileSecret(named name: String, in directory: String) throws -> String {
        let path = (directory as NSString).appendingPathComponent(name)
        if let existing = try? String(contentsOfFile: path, encoding: .utf8) {
            let trimmed = existing.trimmingCharacters(in: .whitespacesAndNewlines)
            if !trimmed.isEmpty { return trimmed }
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let secret = Hex.encode(Digest.randomBytes(32))
        guard
            FileManager.default.createFile(
                atPath: path, contents: Data((secret + "\n").utf8),
                attributes: [.posixPermissions: 0o600])
        else {
            throw HostError(.badConfiguration, "cannot write \(path)")
        }
        return secret
    }
}
