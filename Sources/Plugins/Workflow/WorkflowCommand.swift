import ArgumentParser
import Foundation
import Host

/// `tenki workflow start | list | describe | signal | cancel | result | schedule`: the
/// operators' verbs (Temporal CLI's shape) on the configured database.
struct WorkflowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflow", abstract: "Start, inspect, signal and cancel durable workflows; manage schedules.",
        subcommands: [
            Start.self, List.self, Describe.self, Query.self, Signal.self, Cancel.self, Result.self, Schedule.self, Types.self, Scripts.self,
        ])

    /// Opens the host without running anything, and returns its workflow engine.
    static func engine(_ options: HostOptions) async throws -> (TenkiHost, WorkflowEngine) {
        let host = try await options.openHost()
        let plugin = try host.require(WorkflowPlugin.self)
        return (host, plugin.engine)
    }

    /// `JSON` text, or `@FILE` to read it from a file.
    static func json(_ argument: String, what: String) throws -> [UInt8] {
        var text = argument
        if argument.hasPrefix("@") {
            let path = String(argument.dropFirst())
            guard let contents = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw HostError(.badRequest, "cannot read \(what) file '\(path)'")
            }
            text = contents
        }
        return try WorkflowJSON.validate(text, what: what)
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a run (an existing --id returns that run instead).")
        @OptionGroup var options: HostOptions
        @Option(help: "Task queue (default: the type's own).") var taskQueue: String?
        @Option(help: "Workflow type.") var type: String
        @Option(help: "Input: JSON text or @FILE.") var input = "null"
        @Option(help: "Workflow id (idempotency key). Default: a new UUID.") var id: String?
        @Option(help: "Fail the run if it has not ended after this long (90s, 15m, 2h, 3d).") var timeout: String?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            var duration: Duration?
            if let timeout {
                guard let parsed = WorkflowDurations.parse(timeout) else {
                    throw HostError(.badRequest, "bad --timeout '\(timeout)' (e.g. 90s, 15m, 2h, 3d)")
                }
                duration = parsed
            }
            let input = try WorkflowCommand.json(self.input, what: "--input")
            let (host, engine) = try await WorkflowCommand.engine(options)
            let started = try await engine.start(type: type, input: input, id: id, taskQueue: taskQueue, timeout: duration)
            if json {
                var object = WorkflowViews.run(started.run)
                object["created"] = started.created
                print(WorkflowViews.text(object, pretty: true))
            } else {
                print(
                    "\(started.created ? "started" : "exists (not started again)"): \(started.run.id)  \(started.run.type)  "
                        + "\(started.run.status.rawValue)"
                )
            }
            await host.database.close()
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List runs, newest first.")
        @OptionGroup var options: HostOptions
        @Option(help: "Only this workflow type.") var type: String?
        @Option(help: "Only this status: pending, running, sleeping, completed, failed, cancelled.") var status: String?
        @Option(help: "At most this many.") var limit = WorkflowLimits.defaultListRuns
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            var parsed: WorkflowStatus?
            if let status {
                guard let value = WorkflowStatus(rawValue: status) else {
                    throw HostError(
                        .badRequest, "--status must be one of \(WorkflowStatus.allCases.map(\.rawValue).joined(separator: ", ")); got '\(status)'")
                }
                parsed = value
            }
            let (host, engine) = try await WorkflowCommand.engine(options)
            let runs = try await engine.list(type: type, status: parsed, limit: limit)
            if json {
                print(WorkflowViews.text(runs.map { WorkflowViews.run($0) }, pretty: true))
            } else {
                runs.forEach { print(WorkflowViews.line($0)) }
            }
            await host.database.close()
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A run with its steps (attempts, errors, timings), children and state.")
        @OptionGroup var options: HostOptions
        @Argument(help: "Workflow id.") var id: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let (host, engine) = try await WorkflowCommand.engine(options)
            let description = try await engine.describe(id: id)
            print(json ? WorkflowViews.text(WorkflowViews.description(description), pretty: true) : WorkflowViews.describeText(description))
            await host.database.close()
        }
    }

    struct Query: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The state a run published (ctx.setState), all keys or one.")
        @OptionGroup var options: HostOptions
        @Argument(help: "Workflow id.") var id: String
        @Argument(help: "One key (default: every key, as one JSON object).") var key: String?

        func run() async throws {
            let (host, engine) = try await WorkflowCommand.engine(options)
            let state = try await engine.describe(id: id).state
            await host.database.close()
            if let key {
                guard let value = state.first(where: { $0.key == key })?.value else {
                    throw HostError(.notFound, "workflow '\(id)' has published no state '\(key)'")
                }
                print(WorkflowViews.text(WorkflowViews.json(value)))
            } else {
                var object: [String: Any] = [:]
                for (k, value) in state { object[k] = WorkflowViews.json(value) }
                print(WorkflowViews.text(object))
            }
        }
    }

    struct Signal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send a named JSON signal to a run that has not ended.")
        @OptionGroup var options: HostOptions
        @Argument(help: "Workflow id.") var id: String
        @Argument(help: "Signal name.") var name: String
        @Option(help: "Payload: JSON text or @FILE.") var input = "null"

        func run() async throws {
            let payload = try WorkflowCommand.json(input, what: "--input")
            let (host, engine) = try await WorkflowCommand.engine(options)
            try await engine.signal(id: id, name: name, payload: payload)
            print("signal \(name) sent to \(id)")
            await host.database.close()
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a run and its unfinished children.")
        @OptionGroup var options: HostOptions
        @Argument(help: "Workflow id.") var id: String

        func run() async throws {
            let (host, engine) = try await WorkflowCommand.engine(options)
            let cancelled = try await engine.cancel(id: id)
            print(cancelled.isEmpty ? "\(id) had already ended" : "cancelled: \(cancelled.joined(separator: ", "))")
            await host.database.close()
        }
    }

    struct Result: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A run's output. Exit 0 completed (prints the output), 1 failed or cancelled, 75 not ended yet.")
        @OptionGroup var options: HostOptions
        @Argument(help: "Workflow id.") var id: String
        @Flag(help: "Wait until the run ends.") var wait = false
        @Option(help: "With --wait, give up after this many seconds.") var waitSeconds = 300

        func run() async throws {
            let (host, engine) = try await WorkflowCommand.engine(options)
            var run = try await engine.run(id: id)
            let deadline = Date().addingTimeInterval(Double(waitSeconds))
            while wait && !run.status.isFinished && Date() < deadline {
                try await Task.sleep(nanoseconds: 200_000_000)
                run = try await engine.run(id: id)
            }
            await host.database.close()
            switch run.status {
            case .completed:
                print(WorkflowViews.text(WorkflowViews.json(run.output)))
            case .failed, .cancelled:
                throw HostError(.failed, "\(id) \(run.status.rawValue): \(run.error ?? "")")
            default:
                throw HostError(.notFinished, "\(id) is \(run.status.rawValue)")
            }
        }
    }

    struct Types: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Workflow types this tenki runs, task queues with their limits, and Lua scripts refused at load.")
        @OptionGroup var options: HostOptions

        func run() async throws {
            let host = try await options.openHost()
            for type in host.workflows.types {
                guard let definition = host.workflows.definition(type) else { continue }
                print("type   \(type)  queue \(definition.taskQueue)\(definition.timeout.map { "  timeout \($0)" } ?? "")")
            }
            for queue in host.workflows.queues { print("queue  \(queue.name)  at most \(queue.maxConcurrentRuns) running") }
            let plugin = host.plugin(WorkflowPlugin.self)
            for error in plugin?.scripts.errors ?? [] { print("refused  \(error)") }
            await host.database.close()
            if let errors = plugin?.scripts.errors, !errors.isEmpty { throw HostError(.rejected, "\(errors.count) script(s) refused") }
        }
    }

    struct Scripts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The Lua scripts under scripts_root as a reload would take them: files, version hash, scripts, errors.",
            discussion: "A running tenki shows the set it serves, with its last rejected change, at GET /workflow-scripts.")
        @OptionGroup var options: HostOptions
        @Flag(help: "Print the status as JSON.") var json = false

        func run() async throws {
            let host = try await options.openHost()
            await host.database.close()
            let plugin = try host.require(WorkflowPlugin.self)
            let status = plugin.scriptRegistry.status
            if json {
                print(try JSONCoding.text(status, pretty: true))
            } else {
                print("root     \(status.root)")
                print("version  \(status.version)")
                for file in status.files { print("file     \(file)") }
                for script in status.scripts {
                    let on = script.on.isEmpty ? "-" : script.on.joined(separator: ",")
                    print("script   \(script.type)  on \(on)\(script.match ? "  match" : "")  queue \(script.taskQueue)")
                }
                for error in status.refused { print("refused  \(error)") }
            }
            if !status.refused.isEmpty { throw HostError(.rejected, "\(status.refused.count) script(s) refused") }
        }
    }

    struct Schedule: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cron schedules (5 fields, UTC) that start a workflow at every tick, once however many replicas run.",
            subcommands: [Create.self, ListSchedules.self, Delete.self])

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "create", abstract: "Create or replace a schedule.")
            @OptionGroup var options: HostOptions
            @Argument(help: "Schedule name.") var name: String
            @Option(help: "Cron expression, e.g. '0 3 1 * *' (03:00 UTC on the 1st).") var cron: String
            @Option(help: "Workflow type.") var type: String
            @Option(help: "Input: JSON text or @FILE.") var input = "null"
            @Option(help: "Task queue (default: the type's own).") var taskQueue: String?

            func run() async throws {
                let payload = try WorkflowCommand.json(input, what: "--input")
                let (host, engine) = try await WorkflowCommand.engine(options)
                let schedule = try await engine.createSchedule(name: name, cron: cron, type: type, input: payload, taskQueue: taskQueue)
                print("schedule \(schedule.name): \(schedule.cron.text) → \(schedule.workflowType), next \(Timestamp.iso(ms: schedule.nextTickMs))")
                await host.database.close()
            }
        }

        struct ListSchedules: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "list", abstract: "List schedules.")
            @OptionGroup var options: HostOptions
            @Flag(help: "Print JSON.") var json = false

            func run() async throws {
                let (host, engine) = try await WorkflowCommand.engine(options)
                let schedules = try await engine.schedules()
                if json {
                    print(WorkflowViews.text(schedules.map(WorkflowViews.schedule), pretty: true))
                } else {
                    for s in schedules {
                        print("\(s.name)  \(s.cron.text)  \(s.workflowType)  queue \(s.taskQueue)  next \(Timestamp.iso(ms: s.nextTickMs))")
                    }
                }
                await host.database.close()
            }
        }

        struct Delete: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a schedule (runs it started stay).")
            @OptionGroup var options: HostOptions
            @Argument(help: "Schedule name.") var name: String

            func run() async throws {
                let (host, engine) = try await WorkflowCommand.engine(options)
                try await engine.deleteSchedule(name: name)
                print("schedule \(name) deleted")
                await host.database.close()
            }
        }
    }
}
