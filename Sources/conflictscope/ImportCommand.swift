import ArgumentParser
import ConflictScope
import Foundation

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import the paper's released scenarios and user prompts into a sweep's store.",
        discussion: """
            Scenario files are CSV (RFC 4180) with a header naming at least scenario_id, description, value1, \
            value2, action1, action2 and keep_scenario (True/False/true/false/1/0), and optionally user_prompt, \
            check_results (stored as-is) and generating_model; column order is free and other columns are \
            ignored. --prompts names a JSON object {"<scenario_id>": "<prompt>"} whose prompts win over the \
            CSV's user_prompt column; empty prompts are not stored. Each row goes to the first configured value \
            set that has both of its values. Scenarios are stored as import/<scenario_id>, kept or rejected as \
            keep_scenario says. Every file is checked before anything is written, so an error (reported as \
            FILE:LINE) leaves the store untouched; importing the same data again changes nothing. With \
            scenarios_per_pair = 0, `run` evaluates the imported kept scenarios without generating new ones.
            """
    )

    @Option(name: .long, help: "The sweep's config file.")
    var config = "config.toml"

    @Option(name: .long, help: "A scenario CSV file (repeat for several).")
    var scenarios: [String] = []

    @Option(name: .long, help: "JSON file mapping scenario ids to generated user prompts.")
    var prompts: String?

    func validate() throws {
        guard !scenarios.isEmpty else { throw ValidationError("give at least one --scenarios FILE.csv") }
    }

    func run() throws {
        let sweep = try loadConfig(config)
        do {
            // Everything is read and validated before the store is opened or written.
            let loaded = try PaperImport.load(scenarioFiles: scenarios, promptsFile: prompts, config: sweep)
            let summary = try PaperImport.write(loaded, to: try ResultStore(path: sweep.storePath))
            print(summary.line)
        } catch {
            throw CommandFailure("\(error)")
        }
    }
}
