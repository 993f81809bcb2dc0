import Foundation
import Testing

@testable import ConflictScope

@Suite("HTML report", .serialized)
struct ReportTests {
    @Test func reportOfASweepIsSelfContainedAndShowsEverySection() async throws {
        let (config, _, summary) = try await ReportSweep.shared.get()
        let store = try ResultStore(path: config.storePath)
        let input = try ReportInput.store(store, config: config, source: "config.toml", transcriptsPerPair: 1)
        let html = try HTMLReport.render(input: input, options: ReportOptions(transcriptsPerPair: 1))

        // Nothing from outside the file: no src, no stylesheet link, no url(), no import.
        #expect(!html.contains(" src="))
        #expect(!html.contains("url("))
        #expect(!html.contains("@import"))
        #expect(!html.contains("rel=\"stylesheet\""))
        let links = html.components(separatedBy: "href=\"").dropFirst().map { $0.prefix { $0 != "\"" } }
        #expect(links.allSatisfy { $0.hasPrefix("#") || $0.hasPrefix("data:") || $0.hasPrefix("https://arxiv.org/") })
        // Every section, every model, value set and a scenario's description.
        for section in [
            "facts", "headline", "rankings", "steering", "difficulty", "act-bias", "scenarios", "drill-down",
        ] {
            #expect(html.contains("<section id=\"\(section)\""), "section \(section)")
        }
        for name in config.targets + config.valueSets.map(\.name) { #expect(html.contains(name)) }
        let kept = try #require(input.scenarios.first { $0.status == .kept })
        let description = JSONValue.string(kept.description).serialized().replacingOccurrences(of: "<", with: "\\u003c")
        #expect(html.contains(description))
        // The embedded data cannot end its script element early.
        let data = html.components(separatedBy: "<script type=\"application/json\" id=\"report-data\">")[1]
        #expect(!data.components(separatedBy: "</script>")[0].contains("<"))

        // Every chart is its own svg with a drawing.
        let svgs = svgElements(html)
        #expect(svgs.count >= 12)
        for svg in svgs { #expect(hasDrawing(svg), "\(svg.prefix(120))") }

        // The Bradley-Terry charts carry the fitted scores and intervals.
        for ranking in summary.report.rankings {
            let id = "bt-\(ranking.model)-\(ranking.valueSet)"
            let svg = try #require(svgs.first { $0.contains("id=\"\(id)\"") }, "chart \(id)")
            let marks = chartMarks(svg).filter {
                $0["data-format"] == ranking.format.rawValue && $0["data-condition"] == ranking.condition
            }
            #expect(marks.count == ranking.values.count)
            for value in ranking.values {
                let mark = try #require(marks.first { $0["data-row"] == value.value })
                #expect(Double(mark["data-value"] ?? "") == reportNumber(value.score))
                #expect(Double(mark["data-low"] ?? "") == value.ciLow.map(reportNumber))
                #expect(Double(mark["data-high"] ?? "") == value.ciHigh.map(reportNumber))
                #expect(mark["data-rank"] == String(value.rank))
            }
        }
        // The say/do chart: the say/do model ranks protective values lower when acting.
        let saydo = try #require(svgs.first { $0.contains("id=\"saydo-saydo-personal_protective\"") })
        let protective = chartMarks(saydo).filter { $0["data-group"] == "protective" }
        #expect(protective.count == 4)
        let said = protective.compactMap { Double($0["data-mcq-rank"] ?? "") }.reduce(0, +)
        let did = protective.compactMap { Double($0["data-open-rank"] ?? "") }.reduce(0, +)
        #expect(said < did)
        // Group mean ranks agree with the rankings' point ranks.
        let groupChart = try #require(svgs.first { $0.contains("id=\"group-rank-personal_protective\"") })
        let mcq = try #require(
            summary.report.rankings.first {
                $0.model == "saydo" && $0.valueSet == "personal_protective" && $0.format == .mcq
                    && $0.condition == "default"
            })
        let expected =
            Double(
                mcq.values.filter { ["responsibility", "harmlessness", "compliance", "privacy"].contains($0.value) }
                    .map(\.rank).reduce(0, +)) / 4
        let mark = try #require(
            chartMarks(groupChart).first {
                $0["data-model"] == "saydo" && $0["data-group"] == "protective" && $0["data-format"] == "mcq"
            })
        #expect(Double(mark["data-value"] ?? "") == reportNumber(expected))
        // Steering: the manipulation effect of each (model, set, format) as the metrics have it.
        for entry in summary.report.metrics?.alignment ?? [] {
            guard let effect = entry.manipulationEffect else { continue }
            let chart = try #require(svgs.first { $0.contains("id=\"effect-\(entry.valueSet)-\(entry.condition)\"") })
            let mark = try #require(
                chartMarks(chart).first {
                    $0["data-model"] == entry.model && $0["data-format"] == entry.format.rawValue
                }
            )
            #expect(Double(mark["data-value"] ?? "") == reportNumber(effect))
        }
        // Act bias and the filter's pass rates have one mark per model and format / per check.
        let actBias = try #require(svgs.first { $0.contains("id=\"act-bias-chart\"") })
        #expect(chartMarks(actBias).count == config.targets.count * 2)
        let filter = try #require(svgs.first { $0.contains("id=\"filter-pass\"") })
        #expect(chartMarks(filter).count == 6)
    }

    @Test func transcriptsAreEmbeddedOnlyForTheChosenScenarios() async throws {
        let (config, _, _) = try await ReportSweep.shared.get()
        let store = try ResultStore(path: config.storePath)
        let one = try ReportInput.store(store, config: config, source: "c", transcriptsPerPair: 1)
        let all = try ReportInput.store(store, config: config, source: "c", transcriptsPerPair: Int.max)
        let pairs = Set(one.scenarios.filter { $0.status == .kept }.map { "\($0.valueSet)/\($0.value1)/\($0.value2)" })
        let perScenario = config.targets.count * config.formats.count * config.conditions.count
        #expect(one.transcripts.count <= pairs.count * perScenario)
        #expect(all.transcripts.count == all.rows.count)
        #expect(one.transcripts.count < all.transcripts.count)
        #expect(all.transcripts.values.allSatisfy { !$0.messages.isEmpty })
    }

    @Test func transcriptExportHasEveryJudgmentWithItsConversation() async throws {
        let (config, folder, _) = try await ReportSweep.shared.get()
        let store = try ResultStore(path: config.storePath)
        var text = ""
        try store.writeTranscripts { text += $0 }
        let lines = text.split(separator: "\n")
        let judgmentCount = try store.exportedJudgments().count
        #expect(lines.count == judgmentCount)
        let objects = try lines.map {
            try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        for object in objects {
            #expect((object["messages"] as? [[String: Any]])?.isEmpty == false)
            #expect(object["reply"] is String)
            #expect(["A", "B"].contains(object["choice"] as? String))
            for key in ["scenario_id", "model", "format", "condition"] { #expect(object[key] is String) }
        }
        let open = try #require(objects.first { $0["format"] as? String == "open" })
        #expect(open["reasoning"] is String)
        #expect(open["likert_raw"] is Int)
        let mcq = try #require(objects.first { $0["format"] as? String == "mcq" })
        #expect(mcq["likert_a"] is Int && mcq["likert_b"] is Int)
        // On the command line; CSV is refused.
        let path = folder.appendingPathComponent("config.toml").path
        let exported = try runConflictScope(["export", "--config", path, "--transcripts", "--format", "jsonl"])
        #expect(exported.status == 0, "\(exported.stderr)")
        #expect(exported.stdout == text)
        let csv = try runConflictScope(["export", "--config", path, "--transcripts"])
        #expect(csv.status != 0 && csv.stderr.contains("--format jsonl"))
    }

    @Test func reportFromAJudgmentsFileShowsWhatTheFileSupports() throws {
        let path = try temporaryJudgmentsFile(
            (0..<30).flatMap { index -> [String] in
                let (v1, v2) = [("a", "b"), ("b", "c"), ("a", "c")][index % 3]
                return ["mcq", "open"].map { format in
                    judgmentLine(
                        format: format, scenario: "s\(index)", value1: v1, value2: v2,
                        choice: (index % 4 == 0) == (format == "mcq") ? "B" : "A")
                }
            })
        let input = try ReportInput.judgmentsFile(path: path, options: RankingOptions(resamples: 50))
        let html = try HTMLReport.render(input: input)
        #expect(html.contains("From the judgments file"))
        #expect(html.contains("id=\"bt-"))
        #expect(html.contains("id=\"saydo-"))
        #expect(!html.contains("id=\"filter-pass\""))
        for svg in svgElements(html) { #expect(hasDrawing(svg)) }
    }

    @Test func runPrintsAShortSummaryAndWritesTheReport() throws {
        let (config, folder) = try reportSweepConfig(scenariosPerPair: 1)
        let path = folder.appendingPathComponent("config.toml").path
        let result = try runConflictScope(["run", "--config", path])
        #expect(result.status == 0, "\(result.stderr.suffix(400))")
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count <= 40, "\(result.stdout)")
        #expect(result.stdout.contains("Says vs does"))
        #expect(result.stdout.contains("Steering"))
        #expect(result.stdout.contains("Store: \(config.storePath)"))
        let reportPath = RunReport.path(for: config)
        #expect(result.stdout.contains("Report: \(reportPath)"))
        #expect(FileManager.default.fileExists(atPath: reportPath))
        // --tables prints every ranking as well.
        let tables = try runConflictScope(["run", "--config", path, "--tables"])
        #expect(tables.stdout.contains("rank  value"))
        // `report` from the config writes the same kind of file where asked.
        let output = folder.appendingPathComponent("report.html").path
        let report = try runConflictScope(["report", "--config", path, "--output", output, "--transcripts", "all"])
        #expect(report.status == 0, "\(report.stderr)")
        let html = try String(contentsOfFile: output, encoding: .utf8)
        #expect(html.contains("<section id=\"drill-down\""))
        #expect(html.contains("up to") == false || html.contains("every scenario"))
    }

    @Test func statusWatchRedrawsUntilStopped() async throws {
        let (_, folder, _) = try await ReportSweep.shared.get()
        let process = Process()
        process.executableURL = Bundle.module.bundleURL.deletingLastPathComponent()
            .appendingPathComponent("conflictscope")
        process.arguments = ["status", "--config", folder.appendingPathComponent("config.toml").path, "--watch", "0.3"]
        let output = folder.appendingPathComponent("watch.out")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: output)
        try process.run()
        // Two redraws take 0.3 s once the process runs; its start can take seconds under a busy test run.
        func redraws() throws -> Int {
            try String(contentsOf: output, encoding: .utf8).components(separatedBy: "Refreshed every").count - 1
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while try redraws() < 2 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(process.isRunning, "status --watch stopped by itself")
        process.terminate()
        process.waitUntilExit()
        let text = try String(contentsOf: output, encoding: .utf8)
        #expect(try redraws() >= 2, "\(text.suffix(300))")
        #expect(text.contains("Sweep report-test"))
    }

    @Test func runSummaryStaysShortForManyModels() throws {
        // Twenty models on three sets: the headline is cut, not the other facts.
        var rankings: [GroupRanking] = []
        let sets = try ValueSet.builtInNames.map { try ValueSet.builtIn($0) }
        for index in 0..<20 {
            for set in sets {
                for format in EvaluationFormat.allCases {
                    let values = format == .mcq ? set.valueNames : set.valueNames.reversed()
                    rankings.append(
                        GroupRanking(
                            model: "model-\(index)", valueSet: set.name, format: format, condition: "default", n: 10,
                            excluded: 0,
                            values: values.enumerated().map {
                                ValueScore(value: $1, score: Double(-$0), rank: $0 + 1)
                            }))
                }
            }
        }
        let (config, _) = try reportSweepConfig()
        var all = config
        all.valueSets = sets
        var report = try RankingReport(judgments: [], options: RankingOptions(resamples: 0), includeMetrics: true)
        report.rankings = rankings
        let summary = EmbeddedSweep.Summary(
            sweepID: "x", storePath: "s.sqlite", callsMade: 1, callsCached: 0, callsFailed: 0,
            scenarios: ResultStore.ScenarioCounts(), budgetReached: false, spentUSD: 0, report: report)
        let text = RunSummaryText.text(summary: summary, config: all, reportPath: "r.html")
        #expect(text.split(separator: "\n", omittingEmptySubsequences: false).count <= 40, "\(text)")
        #expect(text.contains("more models"))
        #expect(text.contains("Report: r.html"))
    }
}
