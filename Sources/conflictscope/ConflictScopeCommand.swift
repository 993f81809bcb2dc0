import ArgumentParser
import ConflictScope
import Foundation

@main
struct ConflictScopeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conflictscope",
        abstract: "Measure how language models prioritise competing values when they conflict.",
        subcommands: [
            RunCommand.self, RankCommand.self, PlanCommand.self, StatusCommand.self, ExportCommand.self,
            ImportCommand.self, ReportCommand.self, CoordinatorCommand.self, WorkerCommand.self, AggregatorCommand.self,
            SimServerCommand.self,
        ]
    )

    /// As ArgumentParser's own, except that a config describing another sweep than its store's exits 2.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as CommandFailure where failure.exitCode != 1 {
            FileHandle.standardError.write(Data("Error: \(failure)\n".utf8))
            exit(withError: ExitCode(failure.exitCode))
        } catch let mismatch as SweepMismatch {
            FileHandle.standardError.write(Data("Error: \(mismatch)\n".utf8))
            exit(withError: ExitCode(2))
        } catch {
            exit(withError: error)
        }
    }
}
