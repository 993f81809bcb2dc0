import ArgumentParser
import ConflictScope
import Foundation

/// How many transcripts per value pair a report embeds: a number or `all`.
struct TranscriptLimit: ExpressibleByArgument {
    var perPair: Int?

    init?(argument: String) {
        if argument == "all" {
            perPair = nil
        } else if let count = Int(argument), count >= 0 {
            perPair = count
        } else {
            return nil
        }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a sweep's results as one self-contained HTML file (charts, tables, scenario drill-down).",
        discussion: """
            The file loads nothing from the network: charts are inline SVG and the scenario drill-down reads an \
            embedded JSON block. From --config it shows the sweep's facts, the say/do headline, Bradley-Terry \
            scores, steering, difficulty, act bias, the scenarios and every answer; from --judgments only what a \
            judgments file supports (no scenario texts, filter verdicts or transcripts).
            """
    )

    @Option(name: .long, help: "The sweep's config file (default config.toml).")
    var config: String?

    @Option(name: .long, help: "Make the report from a judgments file (JSON Lines, as `rank` reads) instead.")
    var judgments: String?

    @Option(name: .long, help: "The HTML file to write.")
    var output = "report.html"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Scenarios per value pair whose full transcripts are embedded, or all (the rest: export --transcripts).",
            valueName: "N|all"))
    var transcripts = TranscriptLimit(argument: "3")!

    @Option(name: .long, help: "Bootstrap resamples for intervals (default: the config's, or 1000).")
    var bootstrap: Int?

    func validate() throws {
        if config != nil && judgments != nil { throw ValidationError("give --config or --judgments, not both") }
        if let bootstrap, bootstrap < 0 { throw ValidationError("--bootstrap must be >= 0") }
    }

    func run() throws {
        let input: ReportInput
        if let judgments {
            var options = RankingOptions()
            if let bootstrap { options.resamples = bootstrap }
            do {
                input = try ReportInput.judgmentsFile(path: judgments, options: options)
            } catch {
                throw CommandFailure("\(error)")
            }
        } else {
            let path = config ?? "config.toml"
            var sweep = try loadConfig(path, requireAPIKeys: false)
            if let bootstrap { sweep.analysis.resamples = bootstrap }
            let store = try openExistingStore(sweep)
            do {
                input = try ReportInput.store(
                    store, config: sweep, source: path, transcriptsPerPair: transcripts.perPair ?? Int.max)
            } catch {
                throw CommandFailure("cannot read \(sweep.storePath): \(error)")
            }
        }
        let html: String
        do {
            html = try HTMLReport.render(input: input, options: ReportOptions(transcriptsPerPair: transcripts.perPair))
        } catch {
            throw CommandFailure("\(error)")
        }
        do {
            try Data(html.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
        } catch {
            throw CommandFailure("cannot write \(output): \(error.localizedDescription)")
        }
        print("Report: \(output) (\(html.utf8.count / 1024) KB)")
    }
}
