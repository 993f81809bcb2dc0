import ArgumentParser

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
}
