import ArgumentParser
import Foundation
import Host

/// `tenki ledger create-transfers --file F`: applies batches of transfers written as JSON (an
/// array of batches, each an array of transfers with TigerBeetle's field names, ids as 32 hex
/// digits) one batch after another, and prints each batch's results as JSON, one array per batch.
/// For operators' corrections (a reversal is the opposite transfer) and for tests that drive
/// the ledger from several processes.
struct CreateTransfersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-transfers", abstract: "Apply batches of transfers from a JSON file; print the results.")
    @OptionGroup var options: HostOptions
    @Option(help: "A JSON file: an array of batches, each an array of transfers.") var file: String
    /// Tests move time by hand (see the ledger's model test); the ledger still never gives a
    /// timestamp below the last one, and a moment ahead of the wall clock is refused.
    @Option(help: .hidden) var now: UInt64?

    struct TransferJSON: Codable {
        var id: String
        var debitAccountID: String?
        var creditAccountID: String?
        var amount: UInt64
        var pendingID: String?
        var userData128: String?
        var userData64: UInt64?
        var userData32: UInt32?
        var timeout: UInt32?
        var ledger: UInt32
        var code: UInt16
        var flags: UInt16?

        enum CodingKeys: String, CodingKey {
            case id, amount, timeout, ledger, code, flags, debitAccountID = "debit_account_id", creditAccountID = "credit_account_id"
            case pendingID = "pending_id", userData128 = "user_data_128", userData64 = "user_data_64", userData32 = "user_data_32"
        }

        init(_ t: Transfer) {
            id = t.id.description
            debitAccountID = t.debitAccountID.description
            creditAccountID = t.creditAccountID.description
            amount = t.amount
            pendingID = t.pendingID.description
            userData128 = t.userData128.description
            userData64 = t.userData64
            userData32 = t.userData32
            timeout = t.timeout
            ledger = t.ledger
            code = t.code
            flags = t.flags.rawValue
        }

        func transfer() throws -> Transfer {
            func hex(_ text: String?, _ field: String) throws -> ID128 {
                guard let text, !text.isEmpty else { return .zero }
                guard let value = ID128(hex: text) else { throw HostError(.badRequest, "\(field) must be 32 hex digits; got '\(text)'") }
                return value
            }
            return Transfer(
                id: try hex(id, "id"), debitAccountID: try hex(debitAccountID, "debit_account_id"),
                creditAccountID: try hex(creditAccountID, "credit_account_id"), amount: amount, ledger: ledger, code: code,
                flags: Transfer.Flags(rawValue: flags ?? 0), pendingID: try hex(pendingID, "pending_id"), timeout: timeout ?? 0,
                userData128: try hex(userData128, "user_data_128"), userData64: userData64 ?? 0, userData32: userData32 ?? 0)
        }
    }

    func run() async throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw HostError(.notFound, "cannot read \(file)") }
        let batches: [[Transfer]]
        do {
            batches = try JSONDecoder().decode([[TransferJSON]].self, from: data).map { try $0.map { try $0.transfer() } }
        } catch let error as HostError {
            throw error
        } catch {
            throw HostError(.badRequest, "\(file) is not an array of batches of transfers: \(error)")
        }
        if let oversized = batches.first(where: { $0.count > LedgerLimits.maxBatchEvents }) {
            throw HostError(.badRequest, "a batch holds at most \(LedgerLimits.maxBatchEvents) transfers; got \(oversized.count)")
        }
        let wallClock = LedgerClock.nowNanoseconds()
        if let now, now > wallClock { throw HostError(.badRequest, "--now is ahead of the clock") }
        let results = try await LedgerCommand.withStore(options) { store in
            var all: [[String]] = []
            for batch in batches {
                all.append(try await store.createTransfers(batch, now: now ?? LedgerClock.nowNanoseconds()).map(\.rawValue))
            }
            return all
        }
        print(try JSONCoding.text(results))
    }
}
