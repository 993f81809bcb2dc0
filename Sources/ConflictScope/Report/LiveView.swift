import Foundation

/// What the live view of a running sweep shows (`run --serve PORT`, and `GET /` on a cluster role's metrics
/// port): progress per stage against the plan, calls, failures and unusable answers, spend against the
/// budget, each rate-limited model's use, and the rankings so far.
public struct LiveSnapshot: Sendable {
    /// Tasks of one stage in the store's task table (cluster sweeps).
    public struct TaskProgress: Sendable, Equatable {
        public var done: Int
        public var total: Int

        public init(done: Int, total: Int) {
            self.done = done
            self.total = total
        }
    }

    public var sweep: String
    /// Whose view this is: "this run", "the whole sweep (aggregator)", "this worker", ...
    public var scope = "this run"
    public var elapsedSeconds: Double
    /// This run's calls by stage.
    public var byStage: [Stage: CallCounters.Counts]
    /// The plan's calls by stage (an upper bound: every scenario kept, every round run).
    public var plannedCalls: [Stage: Int]
    public var spentUSD: Double
    public var budgetUSD: Double?
    /// The default condition's rankings fitted on the judgments stored so far (point estimates).
    public var rankings: [GroupRanking]
    /// Each rate-limited model's limits and what its account was admitted this minute and the last.
    public var rateLimits: [String: ModelRateLimit] = [:]
    public var rateUse: [String: RateUse] = [:]
    /// Tasks done and registered per stage, when the sweep has a task table (cluster); progress and the
    /// ETA then count tasks rather than calls.
    public var tasks: [Stage: TaskProgress]?

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

    /// The plan's calls by stage for `config` (what `plannedCalls` holds).
    public static func plannedCalls(_ config: SweepConfig) -> [Stage: Int] {
        var planned: [Stage: Int] = [:]
        for load in SweepPlan(config: config).stages { planned[load.stage, default: 0] += load.calls }
        return planned
    }

    /// Calls answered so far (made, from the store, or failed).
    public var callsDone: Int { byStage.values.reduce(0) { $0 + $1.made + $1.cached + $1.failed } }
    public var callsPlanned: Int { plannedCalls.values.reduce(0, +) }

    /// Seconds left at the pace so far: against the task table when there is one, else against the plan's
    /// calls; nil before anything was done.
    public var etaSeconds: Double? {
        let (done, total) =
            tasks.map { tasks in tasks.values.reduce((0, 0)) { ($0.0 + $1.done, $0.1 + $1.total) } }
            ?? (callsDone, callsPlanned)
        guard done > 0, elapsedSeconds > 0 else { return nil }
        return Double(max(0, total - done)) * elapsedSeconds / Double(done)
    }

    /// Each limited model's use as (model, limits, use), by model name.
    private var rateRows: [(model: String, limit: ModelRateLimit, use: RateUse)] {
        rateLimits.keys.sorted().map { ($0, rateLimits[$0]!, rateUse[$0] ?? RateUse()) }
    }

    /// The rankings so far of a sweep's store as point estimates (a bootstrap per refresh would cost more than
    /// the view is worth), refitted at most every five seconds once there are any.
    public struct StoredRankings: Sendable {
        private var rankings: [GroupRanking] = []
        private var fittedAt: ContinuousClock.Instant?

        public init() {}

        public mutating func current(store: ResultStore, options: RankingOptions) -> [GroupRanking] {
            let due = rankings.isEmpty || fittedAt.map { ContinuousClock.now - $0 > .seconds(5) } ?? true
            guard due else { return rankings }
            var options = options
            options.resamples = 0
            if let judgments = try? store.judgments().filter({ $0.condition == "default" }),
                let fitted = try? RankingReport(judgments: judgments, options: options).rankings
            {
                rankings = fitted
                fittedAt = .now
            }
            return rankings
        }
    }

    public var json: JSONValue {
        .object([
            ("sweep", .string(sweep)), ("scope", .string(scope)), ("elapsed_s", .number(elapsedSeconds)),
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
                                ("tasks_done", tasks?[stage].map { .int($0.done) } ?? .null),
                                ("tasks_total", tasks?[stage].map { .int($0.total) } ?? .null),
                            ])
                        )
                    })
            ),
            (
                "budget",
                .object([("spent_usd", .number(spentUSD)), ("limit_usd", budgetUSD.map(JSONValue.number) ?? .null)])
            ),
            (
                "rate_limits",
                .array(
                    rateRows.map { row in
                        .object([
                            ("model", .string(row.model)), ("account", .string(row.limit.account)),
                            ("rpm", row.limit.requestsPerMinute.map { .int($0) } ?? .null),
                            ("tpm", row.limit.tokensPerMinute.map { .int($0) } ?? .null),
                            ("requests_this_minute", .int(row.use.requests)),
                            ("tokens_this_minute", .int(row.use.tokens)),
                            ("requests_last_minute", .int(row.use.previousRequests)),
                            ("tokens_last_minute", .int(row.use.previousTokens)),
                        ])
                    })
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
        for stage in Stage.allCases where plannedCalls[stage] != nil || byStage[stage] != nil || tasks?[stage] != nil {
            let counts = byStage[stage] ?? CallCounters.Counts()
            let (done, planned) =
                tasks.map { ($0[stage]?.done ?? 0, $0[stage]?.total ?? 0) }
                ?? (counts.made + counts.cached + counts.failed, plannedCalls[stage] ?? 0)
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
        func perMinute(_ used: Int, _ limit: Int?) -> String {
            guard let limit, limit > 0 else { return "\(used)" }
            return "\(used) of \(limit) (\(100 * used / limit)%)"
        }
        var rateRowsHTML = ""
        for row in rateRows {
            rateRowsHTML += """
                <tr data-model="\(escape(row.model))"><td>\(escape(row.model))</td><td>\(escape(row.limit.account))</td>\
                <td>\(perMinute(row.use.previousRequests, row.limit.requestsPerMinute))</td>\
                <td>\(perMinute(row.use.previousTokens, row.limit.tokensPerMinute))</td>\
                <td>\(perMinute(row.use.requests, row.limit.requestsPerMinute))</td>\
                <td>\(perMinute(row.use.tokens, row.limit.tokensPerMinute))</td></tr>

                """
        }
        let rateSection =
            rateRows.isEmpty
            ? "<p id=\"rate-limits\">No model has a rate limit in the config.</p>"
            : """
            <table id="rate-limits"><tr><th>model</th><th>account</th><th>requests last minute</th>\
            <th>tokens last minute</th><th>requests this minute</th><th>tokens this minute</th></tr>
            \(rateRowsHTML)</table>
            """
        let progressHeader = tasks == nil ? "calls / planned" : "tasks done / registered"
        let progressLine =
            tasks == nil
            ? "\(callsDone) of at most \(callsPlanned) calls"
            : "\(tasks!.values.reduce(0) { $0 + $1.done }) of \(tasks!.values.reduce(0) { $0 + $1.total }) tasks done"
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
            <p id="scope">Seen by \(escape(scope)).</p>
            <p id="state">\(duration(elapsedSeconds)) elapsed; \(progressLine); \(state).</p>
            <p id="spend">Spend: \(budget).</p>
            <h2>Progress per stage</h2>
            <table id="stages"><tr><th>stage</th><th>\(progressHeader)</th><th></th><th>made</th><th>from the store</th>\
            <th>failed</th><th>unusable</th></tr>
            \(rows)</table>
            <h2>Rate-limit use</h2>
            \(rateSection)
            <h2>Rankings so far (default condition, point estimates)</h2>
            <table id="rankings"><tr><th>model</th><th>value set</th><th>format</th><th>judgments</th><th>first to last</th></tr>
            \(rankingRows)</table>
            </body></html>

            """
    }
}
