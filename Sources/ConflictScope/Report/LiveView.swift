import Foundation

/// What the live view of a running sweep shows (`run --serve PORT`): progress per stage against the plan,
/// calls, failures and unusable answers, spend against the budget, and the rankings so far.
public struct LiveSnapshot: Sendable {
    public var sweep: String
    public var elapsedSeconds: Double
    /// This run's calls by stage.
    public var byStage: [Stage: CallCounters.Counts]
    /// The plan's calls by stage (an upper bound: every scenario kept, every round run).
    public var plannedCalls: [Stage: Int]
    public var spentUSD: Double
    public var budgetUSD: Double?
    /// The default condition's rankings fitted on the judgments stored so far (point estimates).
    public var rankings: [GroupRanking]

    public init(
        sweep: String, elapsedSeconds: Double, byStage: [Stage: CallCounters.Counts], plannedCalls: [Stage: Int],
        spentUSD: Double, budgetUSD: Double?, rankings: [GroupRanking]
    ) {
        self.sweep = sweep
        self.elapsedSeconds = elapsedSeconds
        self.byStage = byStage
        self.plannedCalls = plannedCalls
        self.spentUSD = spentUSD
        self.budgetUSD = budgetUSD
        self.rankings = rankings
    }

    /// Calls answered so far (made, from the store, or failed).
    public var callsDone: Int { byStage.values.reduce(0) { $0 + $1.made + $1.cached + $1.failed } }
    public var callsPlanned: Int { plannedCalls.values.reduce(0, +) }

    /// Seconds left at the pace so far, against the plan; nil before any call.
    public var etaSeconds: Double? {
        guard callsDone > 0, elapsedSeconds > 0 else { return nil }
        return Double(max(0, callsPlanned - callsDone)) * elapsedSeconds / Double(callsDone)
    }

    /// The rankings so far of a sweep's store, as point estimates (a bootstrap per refresh would cost
    /// more than the view is worth).
    public static func rankings(store: ResultStore, options: RankingOptions) throws -> [GroupRanking] {
        var options = options
        options.resamples = 0
        let judgments = try store.judgments().filter { $0.condition == "default" }
        return try RankingReport(judgments: judgments, options: options).rankings
    }

    public var json: JSONValue {
        .object([
            ("sweep", .string(sweep)), ("elapsed_s", .number(elapsedSeconds)),
            ("eta_s", etaSeconds.map(JSONValue.number) ?? .null),
            (
                "stages",
                .object(
                    Stage.allCases.compactMap { stage in
                        let counts = byStage[stage] ?? CallCounters.Counts()
                        guard plannedCalls[stage] != nil || byStage[stage] != nil else { return nil }
                        return (
                            stage.rawValue,
                            .object([
                                ("planned", .int(plannedCalls[stage] ?? 0)), ("made", .int(counts.made)),
                                ("cached", .int(counts.cached)), ("failed", .int(counts.failed)),
                                ("invalid", .int(counts.invalid)),
                            ])
                        )
                    })
            ),
            (
                "budget",
                .object([("spent_usd", .number(spentUSD)), ("limit_usd", budgetUSD.map(JSONValue.number) ?? .null)])
            ),
            ("rankings", .array(rankings.map(\.json))),
        ])
    }

    /// One self-contained page that reloads itself every `refreshSeconds` (it is served while the sweep runs).
    public func html(refreshSeconds: Int = 2) -> String {
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        func duration(_ seconds: Double) -> String {
            let whole = Int(seconds.rounded())
            return whole >= 3600
                ? "\(whole / 3600) h \(whole % 3600 / 60) min"
                : whole >= 60 ? "\(whole / 60) min \(whole % 60) s" : "\(whole) s"
        }
        var rows = ""
        for stage in Stage.allCases where plannedCalls[stage] != nil || byStage[stage] != nil {
            let counts = byStage[stage] ?? CallCounters.Counts()
            let done = counts.made + counts.cached + counts.failed
            let planned = plannedCalls[stage] ?? 0
            let share = planned == 0 ? 0 : min(100, 100 * done / planned)
            rows += """
                <tr data-stage="\(stage.rawValue)"><td>\(stage.rawValue)</td><td>\(done) / \(planned)</td>\
                <td><div class="bar"><div style="width:\(share)%"></div></div></td>\
                <td>\(counts.made)</td><td>\(counts.cached)</td><td>\(counts.failed)</td><td>\(counts.invalid)</td></tr>

                """
        }
        var rankingRows = ""
        for ranking in rankings.sorted(by: {
            ($0.model, $0.valueSet, $0.format.rawValue) < ($1.model, $1.valueSet, $1.format.rawValue)
        }) {
            let order = ranking.values.sorted { $0.rank < $1.rank }.map { escape($0.value) }.joined(separator: " &gt; ")
            rankingRows += """
                <tr><td>\(escape(ranking.model))</td><td>\(escape(ranking.valueSet))</td>\
                <td>\(ranking.format.rawValue)</td><td>\(ranking.n)</td><td>\(order)</td></tr>

                """
        }
        let budget =
            budgetUSD.map { String(format: "$%.2f of $%.2f", spentUSD, $0) }
            ?? String(format: "$%.2f (no budget set)", spentUSD)
        let state = etaSeconds.map { "about \(duration($0)) left at this pace" } ?? "starting"
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="\(refreshSeconds)">
            <title>\(escape(sweep)): live</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
            table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
            td, th { padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; text-align: left; }
            .bar { width: 12em; height: 0.8em; background: #eee; } .bar div { height: 100%; background: #4a7; }
            </style></head>
            <body>
            <h1>Sweep \(escape(sweep))</h1>
            <p id="state">\(duration(elapsedSeconds)) elapsed; \(callsDone) of at most \(callsPlanned) calls; \(state).</p>
            <p id="spend">Spend: \(budget).</p>
            <h2>Progress per stage</h2>
            <table id="stages"><tr><th>stage</th><th>calls / planned</th><th></th><th>made</th><th>from the store</th>\
            <th>failed</th><th>unusable</th></tr>
            \(rows)</table>
            <h2>Rankings so far (default condition, point estimates)</h2>
            <table id="rankings"><tr><th>model</th><th>value set</th><th>format</th><th>judgments</th><th>first to last</th></tr>
            \(rankingRows)</table>
            </body></html>

            """
    }
}
