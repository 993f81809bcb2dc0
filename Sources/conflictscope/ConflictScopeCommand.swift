import ArgumentParser

@main
struct ConflictScopeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conflictscope",
        abstract: "Measure how language models prioritise competing values when they conflict.",
        subcommands: [RankCommand.self]
    )
}
