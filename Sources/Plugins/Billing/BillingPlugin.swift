import ArgumentParser
import Foundation
import Host
import Hummingbird
import LedgerPlugin
import RunnerPlugin
import SQL
import ServiceLifecycle
import WorkflowPlugin

/// Billing: invoices per workspace and month from the stored per-job charges and `billing.lua`'s
/// monthly lines, storage snapshots, promotional credits, add-on and slot subscriptions (what is
/// active projected into the runner's workspace row), and Stripe's signed door,
/// `POST /webhooks/stripe` (events verified, stored durably and deduplicated by event id before
/// the 2xx, then dispatched on the event bus as `stripe.<type>`).
package struct BillingPlugin: Plugin {
    package static let name = "billing"
    /// The `source` of the bus events Stripe's webhooks publish.
    package static let eventSource = "stripe"
    /// The `source` of billing's own events (`invoice.issued`, `payment.failed`, ...).
    package static let billingEventSource = "billing"
    package static var dependencies: [any Plugin.Type] { [LedgerPlugin.self, WorkflowPlugin.self, RunnerPlugin.self] }
    package static var migrations: [Migration] { StripeEventStore.migrations + InvoiceStore.migrations + Payments.migrations }
    package static var commands: [any ParsableCommand.Type] {
        [InvoicesCommand.self, StorageCommand.self, WorkspacesCommand.self, CreditsCommand.self, BillingCommand.self]
    }

    let ingress: StripeWebhookIngress?
    let context: HostContext
    package let invoices: InvoiceStore
    /// What the billing workflows work with.
    package let operations: BillingServices
    /// Stripe, when `stripe_secret_key_file` is set; nil leaves payments unconfigured.
    package let provider: (any PaymentProvider)?
    package let subscriptionStore: SubscriptionStore
    package let credits: PromoCreditDesk
    let workflowClient: any WorkflowClient

    package init(context: HostContext) async throws {
        self.context = context
        invoices = InvoiceStore(database: context.database)
        let ledger = try context.plugins.require(LedgerPlugin.self).store
        let runner = try context.plugins.require(RunnerPlugin.self).store
        let provider = try StripeProvider.configured(context.configuration, http: context.httpClient)
        self.provider = provider
        operations = BillingServices(
            invoices: invoices,
            payments: Payments(
                database: context.database, ledger: ledger, runner: runner, policies: context.policies, provider: provider, events: context.events),
            runner: runner, ledger: ledger, policies: context.policies)
        subscriptionStore = SubscriptionStore(database: context.database, policies: context.policies)
        workflowClient = try context.plugins.require(WorkflowPlugin.self).engine
        credits = PromoCreditDesk(context: context, ledger: ledger, engine: try context.plugins.require(WorkflowPlugin.self).engine)
        ingress = try context.configuration.stripeWebhookSecretFile.map { path in
            StripeWebhookIngress(secret: Array(try BillingPlugin.secret(path).utf8), database: context.database, events: context.events)
        }
        context.events.registerPayloadLoader(source: BillingPlugin.eventSource) { db, eventID in
            try StripeEventStore.body(db, eventID: eventID)
        }
    }

    /// The runbook's five workflows and dunning, on `BILLING_TASK_QUEUE`.
    package var workflows: [WorkflowDefinition] {
        BillingWorkflows.definitions(operations) + [credits.definition]
    }

    package var workflowTaskQueues: [WorkflowTaskQueue] {
        [WorkflowTaskQueue(BillingWorkflows.taskQueue, maxConcurrentRuns: BillingLimits.billingQueueConcurrentRuns)]
    }

    /// The monthly cycle: 00:00 UTC on the 1st, for the month before.
    package var workflowSchedules: [WorkflowScheduleDefinition] {
        [
            try! WorkflowScheduleDefinition(
                name: BillingWorkflows.scheduleName, cron: BillingWorkflows.scheduleCron, type: BillingWorkflows.scheduleType, input: ScheduleInput(),
                taskQueue: BillingWorkflows.taskQueue)
        ]
    }

    /// Stripe's payment events, applied to payments and invoices.
    package var subscriptions: [EventSubscription] {
        [operations.payments.stripeSubscription(workflows: workflowClient, logger: context.logger)]
    }

    package var services: [any Service] { [SubscriptionSweeper(store: subscriptionStore, logger: context.logger)] }

    /// The signing secret in `path`, trimmed; an unreadable or empty file fails the start.
    static func secret(_ path: String) throws -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw HostError(.badConfiguration, "cannot read stripe_webhook_secret_file \(path)")
        }
        let secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !secret.isEmpty else { throw HostError(.badConfiguration, "stripe_webhook_secret_file \(path) is empty") }
        return secret
    }

    package func addRoutes(to routes: HostRoutes) {
        BillingRoutes(invoices: invoices, policies: context.policies, workspaces: context.workspaces).add(to: routes)
        SubscriptionRoutes(subscriptions: subscriptionStore, workspaces: context.workspaces).add(to: routes)
        PromoCreditRoutes(desk: credits, workspaces: context.workspaces).add(to: routes)
        let ingress = self.ingress
        let logger = context.logger
        routes.post("/webhooks/stripe", .open) { request, _ -> Response in
            guard let ingress else {
                throw HostError(.unavailable, "Stripe webhooks are not configured: set stripe_webhook_secret_file")
            }
            var request = request
            let buffer = try await request.collectBody(atMost: BillingLimits.stripeWebhookMaxBodyBytes)
            do {
                let signature = request.headers.first { $0.name.canonicalName == "stripe-signature" }?.value
                switch try await ingress.receive(signature: signature, body: Array(buffer.readableBytesView), now: Date()) {
                case .accepted(let id):
                    return JSONResponse.raw(.ok, "{\"event_id\":\(JSONScanner.quote(id)),\"status\":\"accepted\"}")
                case .duplicate(let id):
                    return JSONResponse.raw(.ok, "{\"event_id\":\(JSONScanner.quote(id)),\"status\":\"duplicate\"}")
                }
            } catch let error as HostError {
                logger.notice("stripe webhook rejected", metadata: ["code": .string(error.reason)])
                throw error
            }
        }
    }
}

/// The billing plugin's limits.
package enum BillingLimits {
    /// Largest Stripe event body taken (Stripe's events are a few KiB; a full object graph
    /// stays far below this).
    package static let stripeWebhookMaxBodyBytes = 1 << 20
    /// How far a `Stripe-Signature` timestamp may be from now (Stripe's libraries' default).
    package static let stripeSignatureToleranceSeconds: Int64 = 300
    /// Longest event id or type kept.
    package static let stripeEventFieldMaxCharacters = 255
    /// Cycle children one schedule run keeps unfinished at once.
    package static let cycleFanOut = 32
    /// Workspaces one schedule run bills before it continues as new (2 recorded calls each).
    package static let cycleWorkspacesPerRun = 500
    /// Runs of `BILLING_TASK_QUEUE` executing at once across replicas.
    package static let billingQueueConcurrentRuns = 64
}
