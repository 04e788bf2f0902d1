import Foundation
import Lua

/// A compiled, immutable policy set: what one version of the policy root contained, from when
/// it was in force, and which file answers for each policy at a given time.
package final class PolicySet: Sendable {
    package let version: String
    package let files: [PolicyFile]
    /// When this set started serving (its activation).
    package let loadedAt: Date
    /// Scheduled changes: policy path → files that replace it from a UTC time (Unix seconds),
    /// the base file first with `Int64.min`.
    package let schedule: [String: [ScheduledFile]]

    package struct ScheduledFile: Sendable, Equatable {
        package let effectiveFrom: Int64
        package let path: String
    }

    init(files: [PolicyFile], loadedAt: Date, schedule: [String: [ScheduledFile]] = [:]) {
        self.files = files
        self.version = policyVersion(of: files)
        self.loadedAt = loadedAt
        self.schedule = schedule
    }

    /// The file that answers for `path` at `time` (Unix seconds); `path` itself when nothing
    /// is scheduled for it.
    func resolve(_ path: String, at time: Int64?) -> String {
        guard let time, let entries = schedule[path] else { return path }
        return entries.last { $0.effectiveFrom <= time }?.path ?? path
    }

    /// Files that are policies (the rest, under `lib/`, are only for `require`).
    var policyPaths: [String] { files.map(\.path).filter { !$0.hasPrefix("lib/") } }
}

/// One Lua state with one policy set loaded, owned by one thread. Never shared, never used
/// across an `await`: an evaluation runs start to end on the thread that owns the worker.
final class PolicyWorker {
    let set: PolicySet
    let state: LuaState
    private var functions: [String: LuaReference] = [:]
    /// A worker whose evaluation tripped a limit is thrown away (docs/ARCHITECTURE.md §7, rule 4).
    var poisoned = false

    init(set: PolicySet) throws {
        self.set = set
        state = try LuaState(sandboxed: true)
        try state.openMoneyAndDate()
        state.useGenerationalGC()
        try state.run(PolicyPrelude.source, chunkName: "=prelude")
        for file in set.files {
            try state.call("__tenki_add_source", [.string(file.path), .string(file.source)])
        }
        state.limits = LuaLimits(
            memoryBytes: PolicyLimits.stateMemoryBytes, instructions: PolicyLimits.evaluationInstructions,
            wallClockNanoseconds: PolicyLimits.evaluationWallClockNanoseconds)
        for path in set.policyPaths {
            let type = try state.call("__tenki_module_type", [.string(path)])
            guard type.first == "table" else {
                throw PolicyError(
                    file: path, line: nil,
                    message: "a policy must return a table of functions and data (returned \(type.first?.stringValue ?? "nothing"))")
            }
        }
    }

    /// Whether `path` exports a function `name`.
    func exports(_ path: String, _ name: String) throws -> Bool {
        try state.call("__tenki_export_type", [.string(path), .string(name)]).first == "function"
    }

    /// Calls `path`'s exported function with one table argument.
    func call(_ path: String, _ name: String, _ input: LuaValue) throws -> LuaValue {
        try call(path, name) { reference in try state.call(reference, [input]).first ?? .nil }
    }

    /// Calls `path`'s exported function with an argument written straight onto the stack.
    func call(_ path: String, _ name: String, writing: (LuaWriter) throws -> Void) throws -> LuaValue {
        try call(path, name) { reference in try state.call(reference, writing: writing) }
    }

    /// Calls with an argument written onto the stack and reads the result in place.
    func call<T>(_ path: String, _ name: String, writing: (LuaWriter) throws -> Void, reading: (LuaReader) throws -> T) throws -> T {
        try call(path, name) { reference in try state.call(reference, writing: writing, reading: reading) }
    }

    private func call<T>(_ path: String, _ name: String, _ invoke: (LuaReference) throws -> T) throws -> T {
        let key = path + "#" + name
        let reference: LuaReference
        if let cached = functions[key] {
            reference = cached
        } else {
            guard try exports(path, name) else {
                throw PolicyError(file: path, line: nil, message: "does not export a function '\(name)'")
            }
            reference = try state.callToReference("__tenki_export", [.string(path), .string(name)])
            functions[key] = reference
        }
        do {
            return try invoke(reference)
        } catch let error as LuaError {
            if [.instructionBudget, .timeLimit, .memory].contains(error.kind) { poisoned = true }
            throw error
        }
    }

    /// Reads a data field of a policy (e.g. `examples`, `effective_from`).
    func field(_ path: String, _ name: String) throws -> LuaValue {
        try state.call("__tenki_field", [.string(path), .string(name)]).first ?? .nil
    }
}

/// A policy problem a person fixes: which file, which line when known, and why.
package struct PolicyError: Error, CustomStringConvertible, Sendable, Equatable {
    package let file: String
    package let line: Int?
    package let message: String

    package init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    package init(_ error: LuaError, defaultFile: String) {
        file = error.chunk ?? defaultFile
        line = error.line
        message = error.message
    }

    package var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}
