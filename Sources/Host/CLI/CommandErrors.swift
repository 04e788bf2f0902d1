import ArgumentParser
import Foundation

/// The one place a command's error becomes what `tenki` prints and exits with: a host error
/// its message and `HostError.exitCode`; any other error of a command its description (an
/// operator may see internals) and the exit code `HostError(error)` gives it; the argument
/// parser's own (bad flags, `--help`, an `ExitCode`) as the parser reports them.
package enum CommandErrors {
    /// The error to hand `exit(withError:)`, after printing what it must to standard error.
    package static func reported<Root: ParsableCommand>(_ error: any Error, by root: Root.Type) -> any Error {
        let answer: HostError
        let text: String
        switch error {
        case let error as HostError:
            (answer, text) = (error, error.message)
        case is ExitCode, is CleanExit, is ValidationError:
            return error
        default:
            guard root.exitCode(for: error) == .failure else { return error }
            (answer, text) = (HostError(error), "\(error)")
        }
        FileHandle.standardError.write(Data("error: \(text)\n".utf8))
        return ExitCode(answer.exitCode)
    }
}
