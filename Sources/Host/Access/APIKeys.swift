import Foundation
import SQL
import TenkiCrypto

/// Who a key speaks for. Fixed roles; what each may do is `AccessRules.grants`.
package enum APIRole: String, Codable, Sendable, CaseIterable {
    case ops, sales, finance, member
}

/// An API key as stored: never the secret, only its SHA-256.
package struct APIKey: Codable, Sendable, Equatable {
    package let id: String
    package let name: String
    package let role: APIRole
    /// The one workspace a `member` key is bound to (nil for the operator roles).
    package let workspaceID: String?
    package let createdAt: Int64
    package let expiresAt: Int64?
    package let lastUsedAt: Int64?
    package let revokedAt: Int64?

    enum CodingKeys: String, CodingKey {
        case id, name, role, workspaceID = "workspace_id", createdAt = "created_at", expiresAt = "expires_at", lastUsedAt = "last_used_at"
        case revokedAt = "revoked_at"
    }

    /// Whether the key may be used at `nowMs`.
    package func isLive(at nowMs: Int64) -> Bool { revokedAt == nil && (expiresAt.map { nowMs < $0 } ?? true) }

    /// Whether a use at `nowMs` is recorded: at most once a minute (a write per request would be
    /// a commit per request).
    package func useIsDue(at nowMs: Int64) -> Bool { (lastUsedAt ?? 0) < nowMs - 60_000 }
}

/// The key of the request being handled, for the handler (set by `AccessMiddleware`; nil on
/// open routes and outside requests). Finance's actions record its name as `initiated_by`.
package enum RequestIdentity {
    @TaskLocal package static var key: APIKey?
}

/// A key just made: the only time its secret text exists outside the caller's hands.
package struct NewAPIKey: Sendable {
    package let key: APIKey
    /// `tk_<id>_<secret>`: shown once, stored nowhere.
    package let token: String

    /// The key's fields and `"key"`: the token, as `tenki keys create --json` and `POST /keys` show it.
    package func shown() throws -> [String: Any] {
        var object = try JSONSerialization.jsonObject(with: JSONCoding.encoder().encode(key)) as? [String: Any] ?? [:]
        object["key"] = token
        return object
    }
}

/// API keys in the database: `tk_<id>_<secret>` with a public 12-character id to find the row
/// and a 160-bit secret whose SHA-256 is compared in constant time.
package struct APIKeyStore: Sendable {
    package let database: any Database

    package init(database: any Database) { self.database = database }

    static let migrations: [Migration] = [
        Migration(
            3, "api keys",
            sql: """
                CREATE TABLE api_keys (
                    id TEXT PRIMARY KEY,
                    secret_sha256 TEXT NOT NULL,
                    name TEXT NOT NULL,
                    role TEXT NOT NULL,
                    workspace_id TEXT,
                    created_at BIGINT NOT NULL,
                    expires_at BIGINT,
                    last_used_at BIGINT,
                    revoked_at BIGINT
                );
                CREATE INDEX api_keys_workspace ON api_keys (workspace_id, created_at);
                """)
    ]

    /// Lower-case base-32 without padding: ids and secrets that survive any shell or header.
    static func base32(_ bytes: [UInt8]) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)
        var out: [UInt8] = []
        var buffer = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | Int(byte)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[(buffer >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        if bits > 0 { out.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func hash(_ secret: Substring) -> String {
        Hex.encode(Digest.sha256(Array(secret.utf8)))
    }

    /// What an unknown id's secret is compared against, so that path does the same work.
    static let placeholderHash = Array(hash("unknown-key-placeholder-000000000"[...]).utf8)

    /// Makes a key. A `member` key needs a workspace (an id); the other roles take none.
    package func create(name: String, role: APIRole, workspaceID: String?, expiresAt: Int64?, nowMs: Int64) async throws -> NewAPIKey {
        guard !name.isEmpty, name.count <= 100 else { throw HostError(.badRequest, "a key's name is 1-100 characters") }
        if role == .member && workspaceID == nil { throw HostError(.badRequest, "a member key needs --workspace") }
        if role != .member && workspaceID != nil { throw HostError(.badRequest, "only a member key is bound to a workspace") }
        if let expiresAt, expiresAt <= nowMs { throw HostError(.badRequest, "the expiry is in the past") }
        let id = Self.base32(Digest.randomBytes(8)).prefix(12)
        let secret = Self.base32(Digest.randomBytes(20))
        let key = APIKey(
            id: String(id), name: name, role: role, workspaceID: workspaceID, createdAt: nowMs, expiresAt: expiresAt, lastUsedAt: nil,
            revokedAt: nil)
        _ = try await database.execute(
            """
            INSERT INTO api_keys (id, secret_sha256, name, role, workspace_id, created_at, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """,
            [
                .text(key.id), .text(Self.hash(secret[...])), .text(name), .text(role.rawValue), SQLValue(workspaceID), .integer(nowMs),
                expiresAt.map(SQLValue.integer) ?? .null,
            ])
        return NewAPIKey(key: key, token: "tk_\(id)_\(secret)")
    }

    /// The live key `token` names, or nil for anything else (malformed, unknown, wrong secret,
    /// expired, revoked): callers cannot tell those apart, and neither can the timing.
    package func authenticate(_ token: String, nowMs: Int64) async throws -> APIKey? {
        let parts = token.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "tk", parts[1].count == 12, parts[2].count == 32 else { return nil }
        let presented = Array(Self.hash(parts[2]).utf8)
        guard let row = try await database.read({ try $0.queryOne("SELECT * FROM api_keys WHERE id = $1", [.text(String(parts[1]))]) }) else {
            // An unknown id compares against a fixed hash all the same.
            _ = Digest.constantTimeEqual(presented, Self.placeholderHash)
            return nil
        }
        let key = try Self.key(from: row)
        guard Digest.constantTimeEqual(presented, Array(try row.string("secret_sha256").utf8)), key.isLive(at: nowMs) else { return nil }
        return key
    }

    /// Records a use (callers ask `useIsDue` first).
    package func touch(_ key: APIKey, nowMs: Int64) async throws {
        _ = try await database.execute("UPDATE api_keys SET last_used_at = $1 WHERE id = $2", [.integer(nowMs), .text(key.id)])
    }

    /// Keys, newest first; those of one workspace when `workspaceID` is given.
    package func list(workspaceID: String? = nil) async throws -> [APIKey] {
        let rows =
            if let workspaceID {
                try await database.query("SELECT * FROM api_keys WHERE workspace_id = $1 ORDER BY created_at DESC, id", [.text(workspaceID)])
            } else {
                try await database.query("SELECT * FROM api_keys ORDER BY created_at DESC, id")
            }
        return try rows.map(Self.key(from:))
    }

    package func key(id: String) async throws -> APIKey? {
        try await database.query("SELECT * FROM api_keys WHERE id = $1", [.text(id)]).first.map(Self.key(from:))
    }

    /// Revokes a key (again is a no-op); returns it as it now is, nil when there is none.
    @discardableResult
    package func revoke(id: String, nowMs: Int64) async throws -> APIKey? {
        _ = try await database.execute("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL", [.integer(nowMs), .text(id)])
        return try await key(id: id)
    }

    static func key(from row: SQLRow) throws -> APIKey {
        guard let role = APIRole(rawValue: try row.string("role")) else { throw HostError(.internal, "api key with an unknown role") }
        return APIKey(
            id: try row.string("id"), name: try row.string("name"), role: role, workspaceID: try row.optionalString("workspace_id"),
            createdAt: try row.int("created_at"), expiresAt: try row.optionalInt("expires_at"), lastUsedAt: try row.optionalInt("last_used_at"),
            revokedAt: try row.optionalInt("revoked_at"))
    }
}
