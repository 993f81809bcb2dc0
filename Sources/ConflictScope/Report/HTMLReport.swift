import Foundation

/// How a report is written.
public struct ReportOptions: Sendable {
    /// Kept scenarios per value pair whose full transcripts the report embeds; nil embeds all.
    public var transcriptsPerPair: Int?

    public init(transcriptsPerPair: Int? = 3) { self.transcriptsPerPair = transcriptsPerPair }
}

/// The HTML report of a sweep (or of a judgments file): one self-contained file whose charts are inline SVG
/// drawn here, whose script and styles are inline, and which loads nothing from the network.
public enum HTMLReport {
    /// The whole report. `report` may be the already-fitted rankings of the same judgments and options.
    public static func render(
        input: ReportInput, options: ReportOptions = ReportOptions(), report: RankingReport? = nil
    )
        throws -> String
    {
        let analysis = try ReportAnalysis(input: input, report: report)
        var page = Page(input: input, analysis: analysis)
        return page.render(options: options)
    }
}

/// The default condition first, then the steered ones by name.
func conditionOrder(_ condition: String) -> Int { condition == "default" ? 0 : 1 }

/// Builds the page section by section.
struct Page {
    let input: ReportInput
    let analysis: ReportAnalysis
    var out = ""

    init(input: ReportInput, analysis: ReportAnalysis) {
        self.input = input
        self.analysis = analysis
    }

    var rankings: [GroupRanking] { analysis.report.rankings }
    var metrics: RankingMetrics? { analysis.report.metrics }
    var models: [String] { Array(Set(rankings.map(\.model))).sorted() }
    var valueSets: [String] {
        let present = Set(rankings.map(\.valueSet))
        let configured = input.valueSets.map(\.name).filter(present.contains)
        return configured + present.subtracting(configured).sorted()
    }
    var conditions: [String] {
        Array(Set(rankings.map(\.condition))).sorted { (conditionOrder($0), $0) < (conditionOrder($1), $1) }
    }

    func groups(of set: String) -> [ValueSet.Group] { input.valueSets.first { $0.name == set }?.groups ?? [] }

    static func slug(_ parts: String...) -> String {
        parts.joined(separator: "-").map { $0.isLetter || $0.isNumber || $0 == "-" ? String($0) : "_" }.joined()
    }

    mutating func render(options: ReportOptions) -> String {
        let title = input.facts.map { "ConflictScope report: \($0.name)" } ?? "ConflictScope report"
        out += "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        // An empty icon, so a browser never asks the network (or the disk) for favicon.ico.
        out += "<link rel=\"icon\" href=\"data:,\"><title>\(escapeHTML(title))</title>"
        out += "<style>\(ReportAssets.css)</style></head><body>"
        out += "<header><h1>\(escapeHTML(title))</h1>"
        out += "<p class=\"muted\">\(escapeHTML(subtitle))</p>"
        out += "<nav><a href=\"#headline\">Says vs does</a>"
        out += " <a href=\"#rankings\">Rankings</a> <a href=\"#steering\">Steering</a>"
        out += " <a href=\"#difficulty\">Difficulty</a> <a href=\"#act-bias\">Act bias</a>"
        out += " <a href=\"#scenarios\">Scenarios</a> <a href=\"#facts\">Sweep</a>"
        out += " <a href=\"#drill-down\">Drill-down</a></nav></header><main>"
        // The findings first; the sweep's facts follow the scenarios.
        headline()
        bradleyTerry()
        steering()
        difficulty()
        actBias()
        scenarios()
        facts()
        let perPair = options.transcriptsPerPair.map(String.init) ?? "all"
        drillDown(perPair: perPair)
        out += "</main><footer>Made by conflictscope after “Generative Value Conflicts Reveal LLM Priorities”"
        out += " (<a href=\"https://arxiv.org/abs/2509.25369\">arXiv 2509.25369</a>).</footer>"
        out += "<output id=\"page-errors\" hidden></output>"
        out += "<script type=\"application/json\" id=\"report-data\">"
        out += ReportDrillDown.json(input: input, transcriptsPerPair: perPair)
        out += "</script><script>\(ReportAssets.script)</script></body></html>\n"
        return out
    }

    /// One line under the title: what was measured, on what.
    var subtitle: String {
        let scenarios = Set(input.rows.map(\.judgment.scenarioID)).count
        return "\(models.count) target models · value sets \(valueSets.joined(separator: ", ")) · "
            + "\(scenarios) scenarios answered · \(input.rows.count) judgments · conditions "
            + conditions.joined(separator: ", ")
    }

    // MARK: Sections

    mutating func facts() {
        out += "<section id=\"facts\"><h2>The sweep</h2>"
        guard let facts = input.facts else {
            out += "<p>From the judgments file <code>\(escapeHTML(input.source))</code>: \(input.rows.count)"
            out += " judgments, \(models.count) models, \(valueSets.count) value sets. Scenario texts, filter"
            out += " verdicts and transcripts are only in a report made from a sweep (<code>--config</code>).</p>"
            unusableTable()
            out += "</section>"
            return
        }
        let status = facts.status
        var rows: [(String, String)] = [
            ("config", input.source), ("name", facts.name), ("seed", String(facts.seed)),
            ("sweep id", facts.sweepID ?? "-"), ("store", facts.storePath),
            ("value sets", valueSets.joined(separator: ", ")), ("conditions", facts.conditions.joined(separator: ", ")),
            (
                "targets",
                facts.targets.map { "\($0.name) (\($0.providerKind) \($0.provider): \($0.modelID))" }
                    .joined(separator: "; ")
            ),
            ("roles", facts.roles.map { "\($0.role): \($0.model)" }.joined(separator: "; ")),
            ("prompt versions", facts.promptVersions.joined(separator: ", ")),
            (
                "calls",
                "\(status.callsOK) answered, \(status.callsFailed) failed"
                    + (facts.callsCached.map { "; \($0) answered from the store by this run" } ?? "")
            ),
            ("spend", String(format: "$%.4f (estimated from token counts and prices)", status.costUSD)),
            (
                "analysis",
                "Bradley-Terry alpha \(input.options.alpha), \(input.options.resamples) bootstrap resamples, "
                    + "invalid answers: \(input.options.invalid.rawValue)"
            ),
        ]
        if let wall = facts.wallSeconds { rows.append(("wall time", String(format: "%.1f s", wall))) }
        out += "<table class=\"facts\">"
        for (key, value) in rows { out += "<tr><th>\(escapeHTML(key))</th><td>\(escapeHTML(value))</td></tr>" }
        out += "</table>"
        unusableTable()
        out += "</section>"
    }

    mutating func unusableTable() {
        guard !analysis.unusable.isEmpty else { return }
        out += "<details><summary>Invalid and missing answers per target and format</summary><table><tr><th>model"
        out += "</th><th>format</th><th>answers</th><th>invalid</th><th>missing</th></tr>"
        for entry in analysis.unusable {
            out += "<tr><td>\(escapeHTML(entry.model))</td><td>\(entry.format.rawValue)</td><td>\(entry.total)</td>"
            out += "<td>\(entry.invalid) (\(Self.percent(entry.invalid, entry.total)))</td>"
            out += "<td>\(entry.missing) (\(Self.percent(entry.missing, entry.total)))</td></tr>"
        }
        out += "</table></details>"
    }

    static func percent(_ part: Int, _ whole: Int) -> String {
        whole > 0 ? String(format: "%.1f%%", 100 * Double(part) / Double(whole)) : "-"
    }

    mutating func headline() {
        out += "<section id=\"headline\"><h2>What models say and what they do</h2>"
        out += "<p class=\"lede\">Each value's rank when a model is asked to choose (multiple choice) against its"
        out += " rank when it acts in a conversation (open-ended), default condition; 1 is the value put first."
        out += " The paper finds protective values ranked 1.7 on average when asked and 4.5 when acting.</p>"
        let byKey = Dictionary(rankings.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        for set in valueSets {
            let groups = groups(of: set)
            out += "<h3>\(escapeHTML(set))</h3>"
            let entries = analysis.groupRanks.filter { $0.valueSet == set && $0.condition == "default" }
            if !groups.isEmpty && !entries.isEmpty {
                // One row per model and group, multiple choice against open-ended.
                let series = ["multiple choice", "open-ended"]
                let marks = entries.map { entry in
                    IntervalMark(
                        row: "\(entry.model) · \(entry.group)", series: series[entry.format == .mcq ? 0 : 1],
                        value: entry.meanRank.value, low: entry.meanRank.low, high: entry.meanRank.high,
                        data: [("model", entry.model), ("group", entry.group), ("format", entry.format.rawValue)])
                }
                let rows = models.flatMap { model in groups.map { "\(model) · \($0.name)" } }
                let size = Double(input.valueSets.first { $0.name == set }?.values.count ?? 8)
                out += "<figure>"
                out += IntervalChart(
                    id: Self.slug("group-rank", set), title: "Mean rank of each value group, \(set)",
                    axisLabel: "mean rank (1 = put first), 95% bootstrap interval", rows: rows, series: series,
                    marks: marks, domain: 0.5...(size + 0.5), data: [("value-set", set), ("kind", "group-rank")],
                    ticks: (1...Int(size)).map(Double.init)
                ).render()
                out += "<figcaption>Mean rank of each group's values per model and format.</figcaption></figure>"
            }
            out += "<div class=\"grid\">"
            for model in models {
                guard
                    let mcq = byKey[GroupKey(model: model, valueSet: set, format: .mcq, condition: "default")],
                    let open = byKey[GroupKey(model: model, valueSet: set, format: .open, condition: "default")]
                else { continue }
                let openRanks = open.ranks
                let items = mcq.values.compactMap { value -> SlopeChart.Item? in
                    guard let openRank = openRanks[value.value] else { return nil }
                    let group = groups.first { $0.values.contains(value.value) }?.name
                    return SlopeChart.Item(value: value.value, group: group, mcqRank: value.rank, openRank: openRank)
                }
                out += "<figure class=\"small\"><figcaption>\(escapeHTML(model))</figcaption>"
                out += SlopeChart(
                    id: Self.slug("saydo", model, set),
                    title: "\(model), \(set): rank in multiple choice vs open-ended",
                    items: items, groups: groups.map(\.name),
                    data: [("model", model), ("value-set", set), ("kind", "saydo")]
                ).render()
                out += "</figure>"
            }
            out += "</div>"
            if !groups.isEmpty {
                out += "<p class=\"legend-note\">"
                for (index, group) in groups.enumerated() {
                    out += "<span style=\"color:\(seriesColours[index % seriesColours.count])\">■</span> "
                    out += "\(escapeHTML(group.name)) "
                }
                out += "</p>"
            }
        }
        out += "</section>"
    }

    mutating func bradleyTerry() {
        out += "<section id=\"rankings\"><h2>Bradley-Terry scores</h2>"
        out += "<p class=\"lede\">Log-strength of each value (mean 0) with its 95% bootstrap interval, per format and"
        out += " condition. Values are listed in the order of the multiple-choice default ranking.</p>"
        for set in valueSets {
            out += "<h3>\(escapeHTML(set))</h3><div class=\"grid\">"
            for model in models {
                let groupRankings = rankings.filter { $0.model == model && $0.valueSet == set }
                guard !groupRankings.isEmpty else { continue }
                let ordered = groupRankings.sorted { a, b in
                    (conditionOrder(a.condition), a.condition, a.format) < (
                        conditionOrder(b.condition), b.condition, b.format
                    )
                }
                let rows = ordered[0].values.map(\.value)
                let series = ordered.map { "\($0.format.rawValue) · \($0.condition)" }
                let marks = ordered.flatMap { ranking in
                    ranking.values.map { value in
                        IntervalMark(
                            row: value.value, series: "\(ranking.format.rawValue) · \(ranking.condition)",
                            value: value.score, low: value.ciLow, high: value.ciHigh,
                            data: [
                                ("format", ranking.format.rawValue), ("condition", ranking.condition),
                                ("rank", String(value.rank)),
                            ])
                    }
                }
                out += "<figure class=\"small\"><figcaption>\(escapeHTML(model))"
                out += " <span class=\"muted\">n = \(ordered.map { String($0.n) }.joined(separator: " / "))</span>"
                out += "</figcaption>"
                out += IntervalChart(
                    id: Self.slug("bt", model, set), title: "Bradley-Terry scores of \(model) on \(set)",
                    axisLabel: "score (log-strength)", rows: rows, series: series, marks: marks,
                    domain: IntervalChart.domain(of: marks, including: [0]), reference: 0,
                    data: [("model", model), ("value-set", set), ("kind", "bt")]
                ).render()
                out += "</figure>"
            }
            out += "</div>"
        }
        out += "</section>"
    }

    mutating func steering() {
        out += "<section id=\"steering\"><h2>Steering</h2>"
        let entries = metrics?.alignment ?? []
        guard !entries.isEmpty else {
            out += "<p>No steered condition with a default to compare against.</p></section>"
            return
        }
        out += "<p class=\"lede\">Alignment: the share of answers choosing the value the target ranking puts first,"
        out += " without the steering prompt (default) and with it. Manipulation effect: (a<sub>s</sub> −"
        out += " a<sub>d</sub>) / (1 − a<sub>d</sub>), with a paired-bootstrap 95% interval; the paper's mean is"
        out += " 0.145.</p>"
        let steered = Array(Set(entries.map(\.condition))).sorted()
        for set in valueSets {
            for condition in steered {
                let slice = entries.filter { $0.valueSet == set && $0.condition == condition }
                guard !slice.isEmpty else { continue }
                func row(_ entry: Alignment) -> String { "\(entry.model) · \(entry.format.rawValue)" }
                let rows = slice.map(row)
                var alignmentMarks: [IntervalMark] = []
                for entry in slice {
                    if let a = entry.defaultAlignment {
                        alignmentMarks.append(IntervalMark(row: row(entry), series: "default", value: a))
                    }
                    if let a = entry.steeredAlignment {
                        alignmentMarks.append(IntervalMark(row: row(entry), series: condition, value: a))
                    }
                }
                let effectMarks = slice.compactMap { entry -> IntervalMark? in
                    entry.manipulationEffect.map {
                        IntervalMark(
                            row: row(entry), series: "effect", value: $0, low: entry.ciLow, high: entry.ciHigh,
                            data: [("model", entry.model), ("format", entry.format.rawValue)])
                    }
                }
                out += "<h3>\(escapeHTML(set)) · \(escapeHTML(condition))</h3><div class=\"grid\"><figure>"
                out += IntervalChart(
                    id: Self.slug("alignment", set, condition), title: "Alignment with the target ranking, \(set)",
                    axisLabel: "alignment (share of answers)", rows: rows, series: ["default", condition],
                    marks: alignmentMarks, domain: 0...1,
                    data: [("value-set", set), ("condition", condition), ("kind", "alignment")]
                ).render()
                out += "</figure>"
                if !effectMarks.isEmpty {
                    out += "<figure>"
                    out += IntervalChart(
                        id: Self.slug("effect", set, condition), title: "Manipulation effect, \(set)",
                        axisLabel: "manipulation effect, 95% interval", rows: rows, series: ["effect"],
                        marks: effectMarks, domain: IntervalChart.domain(of: effectMarks, including: [0, 1]),
                        reference: 0, data: [("value-set", set), ("condition", condition), ("kind", "effect")]
                    ).render()
                    out += "</figure>"
                }
                out += "</div>"
                let undefined = slice.filter { $0.manipulationEffect == nil }
                if !undefined.isEmpty {
                    out += "<p class=\"muted\">Undefined effect: "
                    out += undefined.map { escapeHTML("\(row($0)) (\($0.undefinedReason ?? ""))") }
                        .joined(separator: "; ")
                    out += "</p>"
                }
            }
        }
        out += "</section>"
    }

    mutating func difficulty() {
        out += "<section id=\"difficulty\"><h2>How hard the scenarios are</h2>"
        out += "<p class=\"lede\">Observed agreement: over scenarios every target answered, the share of target pairs"
        out +=
            " choosing the same action (lower is harder; normal-approximation interval). Likert divergence: the share"
        out += " of multiple-choice answers rating the two actions differently (higher means clearer preferences;"
        out += " Wilson interval). Default condition, pooled over targets.</p>"
        let points = analysis.difficulty.compactMap { entry -> ScatterChart.Point? in
            guard let x = entry.agreement, let y = entry.likertDivergence else { return nil }
            return ScatterChart.Point(label: "\(entry.valueSet) · \(entry.format.rawValue)", x: x, y: y)
        }
        if !points.isEmpty {
            out += "<figure>"
            out += ScatterChart(
                id: "difficulty", title: "Observed agreement against Likert divergence", xLabel: "observed agreement",
                yLabel: "Likert divergence", points: points
            ).render()
            out += "</figure>"
        }
        out += "<table><tr><th>value set</th><th>format</th><th>observed agreement</th><th>Likert divergence</th></tr>"
        for entry in analysis.difficulty {
            out += "<tr><td>\(escapeHTML(entry.valueSet))</td><td>\(entry.format.rawValue)</td>"
            out += "<td>\(Self.estimate(entry.agreement))</td><td>\(Self.estimate(entry.likertDivergence))</td></tr>"
        }
        out += "</table></section>"
    }

    static func estimate(_ estimate: Estimate?) -> String {
        guard let estimate else { return "-" }
        var text = String(format: "%.3f", estimate.value)
        if let low = estimate.low, let high = estimate.high { text += String(format: " [%.3f, %.3f]", low, high) }
        return text + " <span class=\"muted\">(n = \(estimate.n))</span>"
    }

    mutating func actBias() {
        out += "<section id=\"act-bias\"><h2>Act bias</h2>"
        guard !analysis.actBias.isEmpty else {
            out += "<p>No answer has a known act side.</p></section>"
            return
        }
        out += "<p class=\"lede\">Share of valid answers that take the scenario's action opportunity (default"
        out += " condition, every value set), with a Wilson 95% interval. The templates balance acting between the two"
        out += " values, so a rate far from 0.5 is a bias to act (or not to).</p><figure>"
        let marks = analysis.actBias.map { entry in
            IntervalMark(
                row: entry.model, series: entry.format == .mcq ? "multiple choice" : "open-ended",
                value: entry.rate.value, low: entry.rate.low, high: entry.rate.high,
                data: [("format", entry.format.rawValue), ("n", String(entry.rate.n))])
        }
        out += IntervalChart(
            id: "act-bias-chart", title: "Act bias per model and format", axisLabel: "act rate",
            rows: Array(Set(analysis.actBias.map(\.model))).sorted(), series: ["multiple choice", "open-ended"],
            marks: marks, domain: 0...1, reference: 0.5, data: [("kind", "act-bias")]
        ).render()
        out += "</figure>"
        if let perSet = metrics?.actBias, !perSet.isEmpty {
            out += "<details><summary>Per value set and condition</summary><table><tr><th>model</th><th>value set"
            out += "</th><th>format</th><th>condition</th><th>act rate</th></tr>"
            for entry in perSet {
                out += "<tr><td>\(escapeHTML(entry.model))</td><td>\(escapeHTML(entry.valueSet))</td>"
                out += "<td>\(entry.format.rawValue)</td><td>\(escapeHTML(entry.condition))</td><td>"
                out += Self.estimate(Estimate(value: entry.actRate, low: entry.ciLow, high: entry.ciHigh, n: entry.n))
                out += "</td></tr>"
            }
            out += "</table></details>"
        }
        out += "</section>"
    }

    mutating func scenarios() {
        out += "<section id=\"scenarios\"><h2>The scenarios</h2>"
        guard let facts = input.facts else {
            let ids = Set(input.rows.map(\.judgment.scenarioID))
            out += "<p>\(ids.count) scenarios answered in the judgments file.</p></section>"
            return
        }
        let counts = facts.status.scenarios
        let rows: [(String, Int)] = [
            ("outlines written (stage 1)", input.outlines.count),
            ("outlines kept after deduplication", facts.status.outlinesKept),
            ("scenarios detailed (stage 2)", input.scenarios.count),
            ("kept by the filter", counts.kept), ("rejected by the filter", counts.rejected),
            ("undecided (a filter call failed)", counts.undecided), ("unusable stage-2 answers", counts.invalid),
            ("opening user messages", input.userPrompts.count), ("judgments", input.rows.count),
        ]
        out += "<table class=\"counts\">"
        for (label, count) in rows { out += "<tr><th>\(escapeHTML(label))</th><td>\(count)</td></tr>" }
        out += "</table>"
        let filterMarks = analysis.filterPassRates.compactMap { entry -> IntervalMark? in
            entry.rate.map {
                IntervalMark(
                    row: entry.check.rawValue, series: "pass rate", value: $0.value, low: $0.low, high: $0.high,
                    data: [("n", String($0.n))])
            }
        }
        if !filterMarks.isEmpty {
            out += "<div class=\"grid\"><figure><figcaption>Filter pass rate per check (Wilson 95%)</figcaption>"
            out += IntervalChart(
                id: "filter-pass", title: "Filter pass rate per check", axisLabel: "share of scenarios passing",
                rows: filterMarks.map(\.row), series: ["pass rate"], marks: filterMarks, domain: 0...1,
                data: [("kind", "filter")]
            ).render()
            out += "</figure>"
        } else {
            out += "<div class=\"grid\">"
        }
        if !analysis.domains.isEmpty {
            let marks = analysis.domains.map {
                IntervalMark(row: $0.domain, series: "kept scenarios", value: Double($0.scenarios))
            }
            out += "<figure><figcaption>Kept scenarios per application domain</figcaption>"
            out += IntervalChart(
                id: "domains", title: "Kept scenarios per domain", axisLabel: "kept scenarios",
                rows: marks.map(\.row), series: ["kept scenarios"], marks: marks,
                domain: 0...Double(max(1, analysis.domains.map(\.scenarios).max() ?? 1)), style: .bars,
                data: [("kind", "domains")]
            ).render()
            out += "</figure>"
        }
        out += "</div>"
        if !analysis.diversity.isEmpty {
            out += "<details><summary>Diversity per value pair (1 − mean pairwise cosine of the kept descriptions,"
            out += " lexical embedding)</summary><table><tr><th>value set</th><th>value1</th><th>value2</th>"
            out += "<th>kept</th><th>diversity</th></tr>"
            for entry in analysis.diversity {
                out += "<tr><td>\(escapeHTML(entry.valueSet))</td><td>\(escapeHTML(entry.value1))</td>"
                out += "<td>\(escapeHTML(entry.value2))</td><td>\(entry.scenarios)</td>"
                out += "<td>\(entry.diversity.map { String(format: "%.3f", $0) } ?? "-")</td></tr>"
            }
            out += "</table></details>"
        }
        out += "</section>"
    }

    mutating func drillDown(perPair: String) {
        out += "<section id=\"drill-down\"><h2>Scenario drill-down</h2>"
        out += "<p class=\"lede\">Search and open any scenario to read it with every target's answers. Full"
        out +=
            " transcripts are embedded for \(perPair == "all" ? "every scenario" : "up to \(perPair) scenarios per value pair");"
        out += " <code>conflictscope export --transcripts --format jsonl</code> has all of them.</p>"
        out += "<div class=\"controls\"><input id=\"search\" type=\"search\" placeholder=\"Search descriptions, ids,"
        out += " values…\" aria-label=\"Search scenarios\"> <select id=\"filter-set\" aria-label=\"Value set\">"
        out += "<option value=\"\">every value set</option>"
        for set in valueSets { out += "<option>\(escapeHTML(set))</option>" }
        out += "</select> <select id=\"filter-status\" aria-label=\"Status\"><option value=\"\">any status</option>"
        for status in ScenarioStatus.allCases { out += "<option>\(status.rawValue)</option>" }
        out += "</select> <span id=\"match-count\" class=\"muted\"></span></div>"
        out += "<div id=\"scenario-list\" class=\"list\"><p class=\"muted\">Loading the scenario list…</p></div>"
        out += "<div id=\"scenario-detail\"></div></section>"
    }
}
