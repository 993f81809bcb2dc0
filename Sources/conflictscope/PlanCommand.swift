import ArgumentParser
import ConflictScope
import Foundation

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Estimate a sweep's calls, tokens, cost and time under its rate limits, without calling anything.",
        discussion: """
            Counts calls per stage and model (generation: value pairs x 4 severity templates x rounds; scenario \
            details, filter and user prompts: one per scenario; multiple choice: scenarios x targets x conditions; \
            open-ended: a target reply and a judge call per scenario, target and condition), assuming every \
            scenario is kept. Input tokens come from the rendered prompts (length / 4) with typical text for what \
            models write; output tokens and cost are upper bounds at each role's max_tokens. The ETA per model is \
            max(calls / rpm, tokens / tpm, calls x latency / concurrency), with 1 s per simulated call and 5 s \
            per real call assumed. Kept scenarios already imported into the store are counted too. The printed \
            assumptions list everything the estimate takes for granted.
            """
    )

    @Option(name: .long, help: "The sweep's config file.")
    var config = "config.toml"

    @Flag(
        name: .long,
        help: "Print one JSON object with stages, models, total_calls, total_cost_usd and eta_minutes.")
    var json = false

    func run() throws {
        let sweep = try loadConfig(config, requireAPIKeys: false)
        var imported = SweepPlan.ImportedScenarios()
        // Imported scenarios are evaluated without generation; read them when a store exists (never create one).
        if FileManager.default.fileExists(atPath: sweep.storePath) {
            do {
                let store = try ResultStore(path: sweep.storePath)
                try store.checkSweep(sweep)
                imported = try store.importedScenarioCounts()
            } catch let mismatch as SweepMismatch {
                throw CommandFailure(mismatch)
            } catch {
                throw CommandFailure("cannot read the store \(sweep.storePath): \(error)")
            }
        }
        let plan = SweepPlan(config: sweep, imported: imported)
        print(json ? plan.json.serialized() : plan.table(), terminator: json ? "\n" : "")
    }
}
