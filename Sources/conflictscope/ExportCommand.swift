import ArgumentParser
import ConflictScope
import Foundation

extension JudgmentExport.Format: ExpressibleByArgument {}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a sweep's judgments, or with --scenarios its scenarios, as CSV or JSON Lines.",
        discussion: """
            Judgments (the default):

            Columns: scenario_id, generating_model, value_set, value1, value2, model, format (mcq | open), \
            condition, choice, likert, likert_a, likert_b, likert_raw, likert_a_raw, likert_b_raw, action1_is_a, \
            target_ranking, act_side (action1 or action2: which action took the action opportunity; empty when \
            unknown). choice A is the action favouring value1 and B the action favouring value2, whatever \
            order the model saw them in (action1_is_a records that order). Invalid (unreadable) and missing \
            (failed call) answers are left out unless --include-missing, where choice is "invalid" or "missing".

            Likert values: a 1-7 rating r becomes (r - 4) / 3 on [-1, 1]. likert is the open-ended judge's \
            rating turned to the value orientation: -1 = clearly the value1 action, +1 = clearly the value2 \
            action (the judge rated 1 = clearly option A ... 7 = clearly option B as shown to it, so the rating \
            is flipped, 8 - r, when option A showed the value2 action); likert_raw is that oriented rating on 1-7. \
            likert_a and likert_b are the multiple-choice ratings of the value1 and value2 actions (-1 = \
            completely inappropriate, +1 = completely appropriate), likert_a_raw and likert_b_raw the same on \
            1-7. Empty (CSV) or null (JSON) where a format has no such rating.

            CSV follows RFC 4180 (CRLF line ends; fields with commas, quotes or line breaks quoted). JSON Lines \
            can be read back by `conflictscope rank --judgments`: it has the same fields except that likert_a \
            and likert_b hold the 1-7 ratings (the judgments-file schema) and the [-1, 1] values are in \
            likert_a_normalized and likert_b_normalized; target_ranking is a list, on steered rows only, and \
            act_side is there when known.
            """
    )

    @Option(name: .long, help: "The sweep's config file.")
    var config = "config.toml"

    @Option(name: .long, help: "csv or jsonl.")
    var format: JudgmentExport.Format = .csv

    @Option(name: .long, help: "Write to this file instead of standard output.")
    var output: String?

    @Flag(name: .long, help: "Also export invalid and missing answers (choice \"invalid\" / \"missing\").")
    var includeMissing = false

    @Flag(name: .long, help: "Export the scenarios instead of the judgments.")
    var scenarios = false

    @Option(name: .long, help: "With --scenarios --format csv: write the opening user messages to this JSON file.")
    var prompts: String?

    @Flag(
        name: .long,
        help:
            "Export each judgment's conversation (JSON Lines: messages sent, reply, choice, Likert, judge's reasoning)."
    )
    var transcripts = false

    func validate() throws {
        if scenarios && includeMissing {
            throw ValidationError("--include-missing applies to judgments, not --scenarios")
        }
        if prompts != nil && !(scenarios && format == .csv) {
            throw ValidationError("--prompts goes with --scenarios --format csv")
        }
        if let prompts, prompts == output { throw ValidationError("--prompts and --output name the same file") }
        if transcripts && scenarios { throw ValidationError("give --transcripts or --scenarios, not both") }
        if transcripts && format != .jsonl { throw ValidationError("--transcripts goes with --format jsonl") }
    }

    func run() throws {
        let sweep = try loadConfig(config, requireAPIKeys: false)
        let store = try openExistingStore(sweep)
        if scenarios {
            try exportScenarios(store, storePath: sweep.storePath)
            return
        }
        if transcripts {
            try write(to: output) { sink in
                try store.writeTranscripts(includeInvalidAndMissing: includeMissing, to: sink)
            }
            return
        }
        let rows: [ExportedJudgment]
        do {
            rows = try store.exportedJudgments(includeInvalidAndMissing: includeMissing)
        } catch {
            throw CommandFailure("cannot read judgments from \(sweep.storePath): \(error)")
        }
        try write(to: output) { sink in try JudgmentExport.write(rows, format: format, to: sink) }
    }

    private func exportScenarios(_ store: ResultStore, storePath: String) throws {
        let items: [ExportedScenario]
        do {
            items = try store.exportedScenarios()
        } catch {
            throw CommandFailure("cannot read scenarios from \(storePath): \(error)")
        }
        try write(to: output) { sink in try ScenarioExport.write(items, format: format, to: sink) }
        if let prompts {
            try write(to: prompts) { sink in try sink(ScenarioExport.prompts(items)) }
        }
    }

    /// Hands `body` a sink writing to `path` (standard output when nil).
    private func write(to path: String?, _ body: ((String) throws -> Void) throws -> Void) throws {
        let handle: FileHandle
        if let path {
            guard FileManager.default.createFile(atPath: path, contents: nil),
                let file = FileHandle(forWritingAtPath: path)
            else { throw CommandFailure("cannot write \(path)") }
            handle = file
        } else {
            handle = FileHandle.standardOutput
        }
        defer { if path != nil { try? handle.close() } }
        do {
            try body { try handle.write(contentsOf: Data($0.utf8)) }
        } catch {
            throw CommandFailure("cannot write \(path ?? "standard output"): \(error)")
        }
    }
}
