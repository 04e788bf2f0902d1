import ArgumentParser
import Foundation
import Host
import RunnerPlugin
import WorkflowPlugin

/// `tenki workspaces list | set | set-payment-method | addons | slots`: workspaces, the state
/// admission reads, and what they buy. Add-ons and extra slots change only through
/// subscriptions (`addons`, `slots`), which ask `billing.lua`'s `eligible` and are invoiced.
struct WorkspacesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workspaces", abstract: "Workspaces (one per GitHub account), the state admission reads, their add-ons and slots.",
        subcommands: [List.self, Set.self, SetPaymentMethod.self, AddonsCommand.self, SlotsCommand.self])

    static func runner(_ options: HostOptions) async throws -> (TenkiHost, RunnerStore) {
        let host = try await options.openHost()
        return (host, try host.require(RunnerPlugin.self).store)
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List workspaces.")
        @OptionGroup var options: HostOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (_, store) = try await WorkspacesCommand.runner(options)
            let workspaces = try await store.workspaces()
            if json {
                print(try JSONCoding.text(workspaces, pretty: true))
                return
            }
            for w in workspaces {
                let addons = w.addons.joined(separator: ",")
                print(
                    "\(w.id)  \(w.slug)  \(w.plan)  payment_method=\(w.hasPaymentMethod) suspended=\(w.suspended) "
                        + "payment_overdue=\(w.paymentOverdue) addons=\(addons) extra_slots=\(w.extraSlotsX64)/\(w.extraSlotsMacOS)"
                )
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a workspace's state; its blocked and waiting jobs go back to admission. Add-ons and slots: `addons`, `slots`.")
        @OptionGroup var options: HostOptions
        @Argument(help: "Workspace id or slug.") var workspace: String
        @Option(help: "true or false.") var paymentMethod: Bool?
        @Option(help: "true or false.") var suspended: Bool?
        @Option(help: "Contract name under policies/contracts (empty for none).") var contract: String?

        func run() async throws {
            let (_, store) = try await WorkspacesCommand.runner(options)
            let change = RunnerStore.WorkspaceChange(
                hasPaymentMethod: paymentMethod, suspended: suspended, contract: contract.map { $0.isEmpty ? nil : $0 })
            let requeued = try await store.update(workspace: workspace, change)
            print("updated \(workspace); \(requeued) job(s) back to admission")
        }
    }

    struct SetPaymentMethod: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-payment-method",
            abstract:
                "Save a payment method by the provider's reference: with Stripe configured, the customer is created on first use and the method "
                + "attached as its default (unpaid invoices are charged again); without, the reference is only recorded. Either way the workspace "
                + "pays as it goes and its blocked and waiting jobs go back to admission.")
        @OptionGroup var options: HostOptions
        @Argument(help: "Workspace id or slug.") var workspace: String
        @Option(help: "The payment provider's reference for the method (e.g. pm_...).") var providerRef: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            guard !providerRef.isEmpty else { throw HostError(.badRequest, "--provider-ref must not be empty") }
            let host = try await options.openHost()
            let billing = try host.require(BillingPlugin.self)
            guard billing.provider != nil else {
                let requeued = try await billing.operations.runner.update(
                    workspace: workspace, .init(hasPaymentMethod: true, paymentMethodRef: .some(providerRef)))
                return print(
                    "payment method \(providerRef) recorded on \(workspace) (no payment provider configured); \(requeued) job(s) back to admission")
            }
            let saved = try await billing.operations.payments.savePaymentMethod(
                workspace: workspace, reference: providerRef, workflows: try host.require(WorkflowPlugin.self).engine)
            if json { return print(try JSONCoding.text(saved)) }
            print(
                "payment method \(saved.paymentMethodID) (\(saved.brand ?? "card") \(saved.last4 ?? "")) is the default of \(saved.customerID) for "
                    + "\(saved.workspaceID); \(saved.jobsRequeued) job(s) back to admission; \(saved.retried.count) unpaid invoice(s) charged again")
        }
    }
}

/// `tenki workspaces addons add | cancel | list`.
struct AddonsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "addons", abstract: "Buy, cancel and list a workspace's add-ons (macos-m4, priority-support, priority-queue-boost).",
        subcommands: [Add.self, Cancel.self, List.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Buy an add-on: needs a payment method; active at once, prorated by days; prepaid_12 needs --sales-approved.")
        @OptionGroup var options: HostOptions
        @Option(help: "Workspace id or slug.") var workspace: String
        @Option(help: "Add-on id.") var addon: String
        @Option(help: "monthly or prepaid_12.") var term = "monthly"
        @Flag(help: "Sales approved a prepaid term.") var salesApproved = false
        @Option(help: "Who asked (recorded).") var by = "cli"
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (_, billing) = try await BillingCommands.open(options)
            let subscription = try await billing.subscriptionStore.add(
                workspace: workspace, .addon(addon, term: term, salesApproved: salesApproved), by: by, now: SubscriptionStore.nowSeconds())
            try SubscriptionText.print(subscription, json: json)
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel an add-on: it stays active and billed to the end of the month (a prepaid term to the end of its 12 months).")
        @OptionGroup var options: HostOptions
        @Option(help: "Workspace id or slug.") var workspace: String
        @Option(help: "Add-on id.") var addon: String?
        @Option(help: "Subscription id (instead of --addon).") var id: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let target = try SubscriptionText.target(id: id, other: addon.map { .addon($0) }, name: "--addon")
            let (_, billing) = try await BillingCommands.open(options)
            try SubscriptionText.print(
                try await billing.subscriptionStore.cancel(workspace: workspace, target, now: SubscriptionStore.nowSeconds()), json: json)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A workspace's subscriptions (add-ons and slots) and their status.")
        @OptionGroup var options: HostOptions
        @Option(help: "Workspace id or slug.") var workspace: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (_, billing) = try await BillingCommands.open(options)
            try SubscriptionText.print(
                try await billing.subscriptionStore.list(workspace: workspace, now: SubscriptionStore.nowSeconds()), json: json)
        }
    }
}

/// `tenki workspaces slots add | cancel`.
struct SlotsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slots", abstract: "Buy and cancel extra concurrency slots (x64 or macos), monthly.", subcommands: [Add.self, Cancel.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Buy extra slots: needs a payment method; the limit rises at once.")
        @OptionGroup var options: HostOptions
        @Option(help: "Workspace id or slug.") var workspace: String
        @Option(help: "x64 or macos.") var arch: String
        @Option(help: "How many slots.") var count: Int64
        @Option(help: "monthly (slots have no prepaid term).") var term = "monthly"
        @Option(help: "Who asked (recorded).") var by = "cli"
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (_, billing) = try await BillingCommands.open(options)
            var order = SubscriptionOrder.slots(arch, count: count)
            order.term = term
            try SubscriptionText.print(
                try await billing.subscriptionStore.add(workspace: workspace, order, by: by, now: SubscriptionStore.nowSeconds()), json: json)
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel extra slots (all of an arch, or one subscription by id): they stay to the end of the month.")
        @OptionGroup var options: HostOptions
        @Option(help: "Workspace id or slug.") var workspace: String
        @Option(help: "x64 or macos: every slot subscription of that arch.") var arch: String?
        @Option(help: "Subscription id (instead of --arch).") var id: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let target = try SubscriptionText.target(id: id, other: arch.map { .slots(arch: $0) }, name: "--arch")
            let (_, billing) = try await BillingCommands.open(options)
            try SubscriptionText.print(
                try await billing.subscriptionStore.cancel(workspace: workspace, target, now: SubscriptionStore.nowSeconds()), json: json)
        }
    }
}

/// How the subscription commands read their target and print what they did.
enum SubscriptionText {
    /// `--id`, or the other option: exactly one of them.
    static func target(id: String?, other: SubscriptionTarget?, name: String) throws -> SubscriptionTarget {
        switch (id, other) {
        case (let id?, nil): return .id(id)
        case (nil, let other?): return other
        default: throw HostError(.badRequest, "give either --id or \(name)")
        }
    }

    /// One subscription: a JSON object with `--json`.
    static func print(_ subscription: Subscription, json: Bool) throws {
        if json { return Swift.print(try JSONCoding.text(subscription, pretty: true)) }
        try print([subscription], json: false)
    }

    static func print(_ subscriptions: [Subscription], json: Bool) throws {
        if json { return Swift.print(try JSONCoding.text(subscriptions, pretty: true)) }
        for s in subscriptions {
            let what = s.item == "addon" ? (s.addon ?? "?") : "\(s.count) \(s.arch ?? "?") slots"
            Swift.print("\(s.id)  \(s.workspaceID)  \(what)  \(s.term)  started \(s.startedAt)  \(s.statusText)")
        }
    }
}
