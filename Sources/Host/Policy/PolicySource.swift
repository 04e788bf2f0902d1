import Foundation
import TenkiCrypto

/// One policy file: its path relative to the policy root (`pricing.lua`, `contracts/acme.lua`)
/// and its text.
package struct PolicyFile: Sendable, Equatable {
    package let path: String
    package let source: String

    package init(path: String, source: String) {
        self.path = path
        self.source = source
    }
}

/// Where policy files come from. The engine only asks for the current files; a directory is
/// the first source, and a bundle stored in the database (for replicas) can be another.
package protocol PolicySource: Sendable {
    var description: String { get }
    func read() throws -> [PolicyFile]
}

/// Every `*.lua` file under a directory, sorted by path.
package struct DirectoryPolicySource: PolicySource {
    package let root: String
    package var description: String { root }

    package init(root: String) { self.root = root }

    package func read() throws -> [PolicyFile] {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw HostError(.badConfiguration, "policy root '\(root)' is not a directory")
        }
        guard let enumerator = manager.enumerator(atPath: root) else { return [] }
        var files: [PolicyFile] = []
        for case let path as String in enumerator where path.hasSuffix(".lua") {
            let full = (root as NSString).appendingPathComponent(path)
            let size = (try? manager.attributesOfItem(atPath: full)[.size] as? Int) ?? 0
            guard size <= PolicyLimits.maxFileBytes else {
                throw HostError(.badConfiguration, "\(path): larger than \(PolicyLimits.maxFileBytes) bytes")
            }
            guard let text = try? String(contentsOfFile: full, encoding: .utf8) else {
                throw HostError(.badConfiguration, "\(path): cannot be read as UTF-8 text")
            }
            files.append(PolicyFile(path: path, source: text))
        }
        guard files.count <= PolicyLimits.maxFiles else {
            throw HostError(.badConfiguration, "more than \(PolicyLimits.maxFiles) policy files under \(root)")
        }
        return files.sorted { $0.path < $1.path }
    }
}

/// Limits of the policy engine, kept together.
package enum PolicyLimits {
    package static let maxFileBytes = 1 << 20
    package static let maxFiles = 1_000
    /// VM instructions one decision may execute.
    package static let evaluationInstructions: Int64 = 5_000_000
    /// Wall-clock cap of one decision.
    package static let evaluationWallClockNanoseconds: Int64 = 250_000_000
    /// Memory one worker's Lua state may hold beyond the loaded policies.
    package static let stateMemoryBytes = 64 << 20
    /// How often the directory is checked for changes.
    package static let reloadPollMilliseconds = 200
}

/// A policy set's version: the first 12 hex digits of SHA-256 over every path and text.
package func policyVersion(of files: [PolicyFile]) -> String {
    var bytes: [UInt8] = []
    for file in files {
        bytes += Array(file.path.utf8) + [0] + Array(file.source.utf8) + [0]
    }
    return String(Hex.encode(Digest.sha256(bytes)).prefix(12))
}
