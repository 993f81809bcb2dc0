import Foundation

/// `run`'s terminal summary: the say/do headline, the steering effect, counts, failures, spend and where the
/// store and report are, in at most about 40 lines whatever the sweep's size (the full tables: `--tables`).
public enum RunSummaryText {
    /// Models listed line by line before the rest is left to the report.
    static let modelLines = 16

    public static func text(
        summary: EmbeddedSweep.Summary, config: SweepConfig, reportPath: String?, tablesHint: Bool = true
    ) -> String {
        var lines: [String] = []
        let report = summary.report
        let judgments = report.rankings.reduce(0) { $0 + $1.n + $1.excluded }
        let excluded = report.rankings.reduce(0) { $0 + $1.excluded }
        lines.append(
            "Sweep \(config.name) (\(summary.sweepID)): \(summary.callsMade) calls made, \(summary.callsCached) "
                + "answered from the store, \(summary.callsFailed) failed; spend "
                + String(format: "$%.2f", summary.spentUSD) + ".")
        let counts = summary.scenarios
        lines.append(
            "Scenarios: \(counts.outlines) outlines kept, \(counts.kept) scenarios kept by the filter "
                + "(\(counts.rejected) rejected, \(counts.undecided) undecided, \(counts.invalid) unusable).")
        lines.append("Judgments: \(judgments) (\(excluded) invalid or missing, not counted).")
        if let unusable = unusableAnswers(summary.byStage) { lines.append(unusable) }
        if let dead = summary.deadTasks, dead > 0 {
            lines.append(
                "\(dead) tasks died (failed too often, or dead-lettered by the broker): the sweep is incomplete.")
        }
        if summary.budgetReached {
            lines.append("Stopped at the budget (max_cost_usd); raise it and run again to resume.")
        }
        lines.append("")
        lines += sayDo(report: report, config: config)
        lines += steering(report: report)
        lines.append("")
        lines.append("Store: \(summary.storePath)")
        if let reportPath { lines.append("Report: \(reportPath) (open it in a browser)") }
        if tablesHint { lines.append("Every ranking and metric: add --tables (or --json).") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// This run's asks whose answers stayed unusable (cut off, empty or unparseable) after their re-asks, per
    /// stage, as a share of the stage's calls; nil when there were none.
    static func unusableAnswers(_ byStage: [Stage: CallCounters.Counts]) -> String? {
        let parts = Stage.allCases.compactMap { stage -> String? in
            guard let counts = byStage[stage], counts.invalid > 0 else { return nil }
            let calls = counts.made + counts.cached
            return "\(stage.rawValue) \(counts.invalid)/\(calls) ("
                + String(format: "%.1f%%", 100 * Double(counts.invalid) / Double(max(calls, 1))) + ")"
        }
        guard !parts.isEmpty else { return nil }
        return "Unusable answers after re-asks, per stage (of its calls): " + parts.joined(separator: ", ") + "."
    }

    /// One line per model: each value group's mean rank when asked -> when acting, or for a set without
    /// groups the value that moves most.
    static func sayDo(report: RankingReport, config: SweepConfig) -> [String] {
        let byKey = Dictionary(report.rankings.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        let models = Array(Set(report.rankings.map(\.model))).sorted()
        let width = min(24, models.map(\.count).max() ?? 0)
        var lines = ["Says vs does (default condition; rank when asked -> when acting, 1 = put first):"]
        var shown = 0
        for model in models {
            var parts: [String] = []
            for set in config.valueSets {
                guard let mcq = byKey[GroupKey(model: model, valueSet: set.name, format: .mcq, condition: "default")],
                    let open = byKey[GroupKey(model: model, valueSet: set.name, format: .open, condition: "default")]
                else { continue }
                let (mcqRanks, openRanks) = (mcq.ranks, open.ranks)
                if !set.groups.isEmpty {
                    let groups = set.groups.compactMap { group -> String? in
                        let members = group.values.filter { mcqRanks[$0] != nil && openRanks[$0] != nil }
                        guard !members.isEmpty else { return nil }
                        let said = Double(members.reduce(0) { $0 + mcqRanks[$1]! }) / Double(members.count)
                        let did = Double(members.reduce(0) { $0 + openRanks[$1]! }) / Double(members.count)
                        return "\(group.name) " + String(format: "%.1f -> %.1f", said, did)
                    }
                    parts.append("\(set.name): " + groups.joined(separator: ", "))
                } else {
                    let moved = mcq.values.compactMap { value -> (String, Int, Int)? in
                        openRanks[value.value].map { (value.value, value.rank, $0) }
                    }.max { abs($0.2 - $0.1) < abs($1.2 - $1.1) }
                    if let moved, moved.1 != moved.2 {
                        parts.append("\(set.name): \(moved.0) \(moved.1) -> \(moved.2)")
                    } else {
                        parts.append("\(set.name): same order")
                    }
                }
            }
            guard !parts.isEmpty else { continue }
            shown += 1
            if shown > modelLines { continue }
            lines.append(
                "  " + model.padding(toLength: max(width, model.count), withPad: " ", startingAt: 0) + "  "
                    + parts.joined(separator: "; "))
        }
        if shown > modelLines { lines.append("  ... and \(shown - modelLines) more models (see the report)") }
        return shown > 0 ? lines : []
    }

    /// Each model's mean manipulation effect over value sets and formats, wrapped to a few lines.
    static func steering(report: RankingReport) -> [String] {
        let entries = report.metrics?.alignment ?? []
        var effects: [String: [Double]] = [:]
        for entry in entries {
            if let effect = entry.manipulationEffect { effects[entry.model, default: []].append(effect) }
        }
        guard !effects.isEmpty else { return [] }
        let items = effects.keys.sorted().map { model in
            let values = effects[model]!
            return "\(model) " + String(format: "%+.2f", values.reduce(0, +) / Double(values.count))
        }
        let all = effects.values.flatMap { $0 }
        var lines = [
            "",
            "Steering (manipulation effect, mean over value sets and formats; paper's mean +0.145): overall "
                + String(format: "%+.2f", all.reduce(0, +) / Double(all.count)),
        ]
        var line = " "
        for item in items {
            if line.count + item.count > 100 && line.count > 1 {
                lines.append(line)
                line = " "
                if lines.count > 6 { break }
            }
            line += " " + item + ","
        }
        if line.count > 1 { lines.append(String(line.dropLast())) }
        return lines
    }
}

/// The report `run` writes beside its store.
public enum RunReport {
    /// `<store without extension>.html`.
    public static func path(for config: SweepConfig) -> String {
        let store = URL(fileURLWithPath: config.storePath)
        return store.deletingPathExtension().appendingPathExtension("html").path
    }

    /// Writes the report of a finished run, reusing its fitted rankings; returns the path.
    public static func write(
        summary: EmbeddedSweep.Summary, config: SweepConfig, configPath: String, wallSeconds: Double?
    ) throws -> String {
        let store = try ResultStore(path: config.storePath)
        var input = try ReportInput.store(store, config: config, source: configPath, transcriptsPerPair: 3)
        input.facts?.wallSeconds = wallSeconds
        input.facts?.callsCached = summary.callsCached
        let html = try HTMLReport.render(input: input, report: summary.report)
        let path = path(for: config)
        try Data(html.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        return path
    }
}
