import ArgumentParser
import Foundation
import Host
import TenkiCrypto

/// `tenki webhooks list | show | redeliver | sign`.
struct WebhooksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhooks", abstract: "Inspect and replay stored GitHub webhook deliveries.",
        subcommands: [List.self, Show.self, Redeliver.self, Stats.self, Sign.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List deliveries, newest first.")
        @OptionGroup var options: HostOptions
        @Option(help: "Only this event type (e.g. workflow_job).") var event: String?
        @Option(help: "At most this many (max \(HostLimits.listMaxRows)).") var limit = 50
        @Flag(help: "Print one JSON array.") var json = false

        func run() async throws {
            let host = try await options.openHost()
            let deliveries = try await GitHubDeliveries.list(host, event: event, limit: limit)
            if json {
                print(try JSONCoding.text(deliveries, pretty: true))
            } else {
                print("DELIVERY".padding(40), "EVENT".padding(32), "STATUS".padding(11), "HANDLED", "RECEIVED")
                for d in deliveries {
                    print(d.deliveryID.padding(40), d.topic.padding(32), d.status.padding(11), String(d.handledCount).padding(7), d.receivedAt)
                }
            }
            await host.database.close()
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one delivery: headers, dispatch state, body.")
        @OptionGroup var options: HostOptions
        @Argument(help: "The X-GitHub-Delivery id.") var deliveryID: String
        @Flag(help: "Print JSON.") var json = false
        @Flag(help: "Print only the raw body, byte for byte.") var body = false

        func run() async throws {
            let host = try await options.openHost()
            defer { Task { await host.database.close() } }
            guard let delivery = try await GitHubDeliveries.find(host, deliveryID: deliveryID),
                let raw = try await GitHubDeliveries.body(host, deliveryID: deliveryID)
            else {
                throw HostError(.notFound, "no delivery \(deliveryID)")
            }
            if body {
                FileHandle.standardOutput.write(Data(raw))
                return
            }
            let headers = try await GitHubDeliveries.headers(host, deliveryID: deliveryID) ?? [:]
            var record: EventRecord?
            if let id = delivery.eventID { record = try await host.events.records(ids: [id])[id] }
            if json {
                struct Detail: Encodable {
                    let delivery: StoredDelivery
                    let headers: [String: String]
                    let dispatch: EventRecord?
                    let body: String
                }
                let detail = Detail(delivery: delivery, headers: headers, dispatch: record, body: String(decoding: raw, as: UTF8.self))
                print(try JSONCoding.text(detail, pretty: true))
            } else {
                print("delivery   \(delivery.deliveryID)")
                print("event      \(delivery.topic)")
                print("status     \(delivery.status) (handled \(delivery.handledCount)x, redelivered \(delivery.redeliveries)x)")
                print("received   \(delivery.receivedAt)")
                if let installation = delivery.installationID { print("install    \(installation)") }
                if let repository = delivery.repository { print("repository \(repository)") }
                print("body       \(delivery.bodyBytes) bytes, sha256 \(delivery.bodySHA256)")
                for (name, value) in headers.sorted(by: { $0.key < $1.key }) { print("header     \(name): \(value)") }
                if let record {
                    print(
                        "inbox      event \(record.id): \(record.status), \(record.attempts) "
                            + "attempt(s)\(record.lastError.map { ", last error: \($0)" } ?? "")"
                    )
                    for handled in record.handledBy { print("handled by \(handled.subscriber) at \(handled.handledAt)") }
                }
            }
        }
    }

    struct Redeliver: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Dispatch a stored delivery again (a running `tenki serve` picks it up).")
        @OptionGroup var options: HostOptions
        @Argument(help: "The X-GitHub-Delivery id.") var deliveryID: String

        func run() async throws {
            let host = try await options.openHost()
            guard let eventID = try await GitHubDeliveries.redeliver(host, deliveryID: deliveryID) else {
                throw HostError(.notFound, "no delivery \(deliveryID)")
            }
            print("redelivered \(deliveryID) as event \(eventID)")
            await host.database.close()
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Count stored deliveries and inbox events by status.")
        @OptionGroup var options: HostOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let host = try await options.openHost()
            let stats = try await GitHubDeliveries.stats(host)
            if json {
                print(try JSONCoding.text(stats))
            } else {
                print("deliveries \(stats.deliveries)")
                for (status, count) in stats.inbox.sorted(by: { $0.key < $1.key }) { print("inbox \(status) \(count)") }
            }
            await host.database.close()
        }
    }

    struct Sign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the X-Hub-Signature-256 value for a file, with the configured secret (for curl tests).")
        @OptionGroup var options: HostOptions
        @Argument(help: "The payload file, signed byte for byte.") var file: String

        func run() async throws {
            let configuration = try options.configuration()
            guard let data = FileManager.default.contents(atPath: file) else { throw HostError(.notFound, "cannot read \(file)") }
            let secret = try HostSecrets.githubWebhookSecret(configuration)
            print(WebhookSignature.gitHubHeader(secret: Array(secret.utf8), body: Array(data)))
        }
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
