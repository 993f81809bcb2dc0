import ArgumentParser
import ConflictScope
import Foundation

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import scenarios (the paper's released CSV, or our `export --scenarios`) and user prompts.",
        discussion: """
            Scenario files are CSV (RFC 4180) with a header naming at least scenario_id, description, value1, \
            value2, action1, action2 and keep_scenario (True/False/true/false/1/0). Read when present: context, \
            user_prompt (the user profile: a JSON object {"persona", "background", "goal"}; other text is kept \
            whole as the persona), check_results (stored as-is), generating_model, and our template, act_side, \
            domain, consequence1 and consequence2. Column order is free and other columns are ignored.

            value1 and value2 may hold value names or the values' definition texts (the paper's released files \
            hold definitions); each row goes to the first configured value set that has both. When neither \
            resolves, a paper id <generator>_<v1>_<v2>_<v1>-<v2>-<template>-<n> names the values. The template \
            comes from the template column (our names or the paper's codes coc_mild, coc, cc_mild, cc), else from \
            such an id; the act side from act_side, else from the template.

            --prompts names a JSON object {"<scenario_id>": "<opening message>"}; empty messages are not stored. \
            A kept scenario without a message gets one from the user model when the sweep runs. Scenarios are \
            stored as import/<scenario_id>: kept when keep_scenario says so; otherwise undecided when \
            check_results is a JSON object with no failed and some undecided (null) check, else rejected. Every \
            file is checked before anything is written, so an error (reported as FILE:LINE: and the column) \
            leaves the store untouched; importing the same data again changes nothing. With \
            scenarios_per_pair = 0, `run` evaluates the imported kept scenarios without generating new ones.
            """
    )

    @Option(name: .long, help: "The sweep's config file.")
    var config = "config.toml"

    @Option(name: .long, help: "A scenario CSV file (repeat for several).")
    var scenarios: [String] = []

    @Option(name: .long, help: "JSON file mapping scenario ids to opening user messages.")
    var prompts: String?

    func validate() throws {
        guard !scenarios.isEmpty else { throw ValidationError("give at least one --scenarios FILE.csv") }
    }

    func run() throws {
        let sweep = try loadConfig(config, requireAPIKeys: false)
        do {
            // Everything is read and validated before the store is opened or written.
            let loaded = try PaperImport.load(scenarioFiles: scenarios, promptsFile: prompts, config: sweep)
            let store = try ResultStore(path: sweep.storePath)
            _ = try store.bindSweep(sweep)
            let summary = try PaperImport.write(loaded, to: store)
            print(summary.line)
        } catch {
            throw CommandFailure(error)
        }
    }
}
