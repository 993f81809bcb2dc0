import ConflictScope
import Foundation
import Testing

/// The paper's measures added to `rank --metrics` and `run --json`, checked against hand-computed values.
@Suite("Paper measures")
struct PaperMeasuresTests {
    private func judgment(
        _ model: String, _ scenario: String, _ value1: String, _ value2: String, _ choice: Choice,
        format: EvaluationFormat = .mcq, valueSet: String = "hhh", likert: (Int, Int)? = nil
    ) -> Judgment {
        Judgment(
            model: model, valueSet: valueSet, format: format, condition: "default", scenarioID: scenario,
            value1: value1, value2: value2, choice: choice, likertA: likert?.0, likertB: likert?.1)
    }

    private func metrics(
        _ judgments: [Judgment], valueSets: [ValueSet]? = nil, scenarios: [Scenario]? = nil,
        invalid: InvalidAnswers = .exclude
    ) throws -> RankingMetrics {
        try #require(
            try RankingReport(
                judgments: judgments, options: RankingOptions(resamples: 0, invalid: invalid), includeMetrics: true,
                valueSets: valueSets, scenarios: scenarios
            ).metrics)
    }

    private func close(_ a: Double?, _ b: Double, _ tolerance: Double = 1e-12) -> Bool {
        guard let a else { return false }
        return abs(a - b) < tolerance
    }

    @Test func kendallTauOfKnownRankings() {
        let first = ["a": 1, "b": 2, "c": 3]
        // One discordant pair (b, c) of three: (2 - 1) / 3.
        #expect(close(FormatConsistency.kendallTau(first, ["a": 1, "b": 3, "c": 2]), 1.0 / 3))
        #expect(close(FormatConsistency.kendallTau(first, first), 1))
        #expect(close(FormatConsistency.kendallTau(first, ["a": 3, "b": 2, "c": 1]), -1))
        // Four items, two discordant pairs of six: (4 - 2) / 6.
        let swapped = FormatConsistency.kendallTau(["a": 1, "b": 2, "c": 3, "d": 4], ["a": 2, "b": 1, "c": 4, "d": 3])
        #expect(close(swapped, 1.0 / 3))
        // Only the items both rankings hold count; one common item has no tau.
        #expect(close(FormatConsistency.kendallTau(first, ["a": 1, "c": 2, "z": 3]), 1))
        #expect(FormatConsistency.kendallTau(first, ["a": 1, "z": 2]) == nil)
    }

    /// Multiple choice ranks honesty > helpfulness > harmlessness; open-ended ranks harmlessness > honesty >
    /// helpfulness. Tau: (honesty, helpfulness) concordant, the two pairs with harmlessness discordant: -1/3.
    /// Scenarios: s1 agrees, s2 and s3 disagree, s4 (invalid in multiple choice) is not common: 1 of 3.
    @Test func formatConsistencyFromJudgmentsAlone() throws {
        let judgments = [
            judgment("x", "s1", "honesty", "helpfulness", .a),
            judgment("x", "s2", "honesty", "harmlessness", .a),
            judgment("x", "s3", "helpfulness", "harmlessness", .a),
            judgment("x", "s4", "honesty", "helpfulness", .invalid),
            judgment("x", "s1", "honesty", "helpfulness", .a, format: .open),
            judgment("x", "s2", "honesty", "harmlessness", .b, format: .open),
            judgment("x", "s3", "helpfulness", "harmlessness", .b, format: .open),
            judgment("x", "s4", "honesty", "helpfulness", .missing, format: .open),
        ]
        let consistency = try metrics(judgments).formatConsistency
        #expect(consistency.count == 1)
        let entry = try #require(consistency.first)
        #expect(entry.model == "x" && entry.valueSet == "hhh" && entry.condition == "default" && entry.values == 3)
        #expect(close(entry.kendallTau, -1.0 / 3))
        let agreement = try #require(entry.scenarioAgreement)
        #expect(agreement.n == 3)
        #expect(close(agreement.value, 1.0 / 3))
        let (low, high) = RankingMetrics.wilsonInterval(successes: 1, trials: 3)
        #expect(close(agreement.low, low) && close(agreement.high, high))
        // Wilson 95% for 1 of 3: (0.0615, 0.7923).
        #expect(abs(low - 0.0615) < 1e-4 && abs(high - 0.7923) < 1e-4)

        // Under the paper's convention the invalid s4 answer is B (helpfulness) and the missing one too: s4 agrees.
        let paper = try #require(try metrics(judgments, invalid: .paper).formatConsistency.first)
        #expect(paper.scenarioAgreement?.n == 4)
        #expect(close(paper.scenarioAgreement?.value, 2.0 / 4))

        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(entry.json.serialized().utf8)) as? [String: Any])
        #expect(
            Set(json.keys) == [
                "model", "value_set", "condition", "values", "kendall_tau", "scenarios", "agreement", "ci_low",
                "ci_high",
            ])
        #expect(json["scenarios"] as? Int == 3)
    }

    /// Two models on three scenarios: per-scenario agreement 1, 0, 1, so the mean is 2/3 with a normal
    /// interval of half-width 1.96 * sqrt(1/3) / sqrt(3) = 0.6533, clamped to [0, 1]. Likert: 2 of 4 rated
    /// answers rate the actions differently.
    @Test func pooledAgreementAndLikertDivergence() throws {
        let judgments = [
            judgment("x", "s1", "honesty", "helpfulness", .a, likert: (6, 2)),
            judgment("y", "s1", "honesty", "helpfulness", .a, likert: (4, 4)),
            judgment("x", "s2", "honesty", "harmlessness", .a, likert: (5, 5)),
            judgment("y", "s2", "honesty", "harmlessness", .b, likert: (1, 7)),
            judgment("x", "s3", "helpfulness", "harmlessness", .b),
            judgment("y", "s3", "helpfulness", "harmlessness", .b),
        ]
        let pooled = try metrics(judgments).pooledDifficulty
        #expect(pooled.count == 1)
        let entry = try #require(pooled.first)
        #expect(entry.valueSet == "hhh" && entry.format == .mcq)
        let agreement = try #require(entry.agreement)
        #expect(agreement.n == 3)
        #expect(close(agreement.value, 2.0 / 3))
        let half = 1.959963984540054 * (1.0 / 3).squareRoot() / 3.0.squareRoot()
        #expect(close(agreement.low, 2.0 / 3 - half))
        #expect(agreement.high == 1)
        let divergence = try #require(entry.likertDivergence)
        #expect(divergence.n == 4)
        #expect(divergence.value == 0.5)
        let (low, high) = RankingMetrics.wilsonInterval(successes: 2, trials: 4)
        #expect(close(divergence.low, low) && close(divergence.high, high))

        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(entry.json.serialized().utf8)) as? [String: Any])
        let observed = try #require(json["observed_agreement"] as? [String: Any])
        #expect(Set(observed.keys) == ["value", "ci_low", "ci_high", "n"])
        #expect(json["condition"] as? String == "default")
    }

    /// A round robin on personal_protective: responsibility beats everyone, harmlessness beats both personal
    /// values, autonomy beats authenticity. Ranks 1..4, so protective has mean rank 1.5 and personal 3.5.
    @Test func groupMeanRanksUseTheBuiltInGroupsFromJudgmentsAlone() throws {
        let order = ["responsibility", "harmlessness", "autonomy", "authenticity"]
        var judgments: [Judgment] = []
        for i in order.indices {
            for j in order.indices where j > i {
                judgments.append(
                    judgment(
                        "x", "s\(i)\(j)", order[i], order[j], .a, valueSet: "personal_protective"))
            }
        }
        let ranks = try metrics(judgments).groupRanks
        #expect(ranks.map(\.group) == ["personal", "protective"])
        #expect(ranks.map(\.meanRank.value) == [3.5, 1.5])
        #expect(ranks.allSatisfy { $0.meanRank.n == 6 && $0.meanRank.low == nil && $0.format == .mcq })

        // Custom groups when value sets are given: the top and bottom halves reversed in name.
        let custom = ValueSet(
            name: "personal_protective", values: order.map { ValueSet.Value(name: $0, definition: $0) },
            groups: [
                ValueSet.Group(name: "first", values: ["responsibility", "autonomy"]),
                ValueSet.Group(name: "second", values: ["harmlessness", "authenticity"]),
            ])
        let customRanks = try metrics(judgments, valueSets: [custom]).groupRanks
        #expect(customRanks.map(\.meanRank.value) == [2, 3])

        // With a bootstrap the interval is the percentiles of the resampled means, within the ranks' range.
        let boot = try #require(
            try RankingReport(
                judgments: judgments, options: RankingOptions(resamples: 50), includeMetrics: true
            ).metrics)
        for entry in boot.groupRanks {
            let low = try #require(entry.meanRank.low)
            let high = try #require(entry.meanRank.high)
            #expect(1.5 <= low && low <= high && high <= 3.5)
        }
        // Value sets without groups (hhh) have none.
        #expect(
            try metrics([judgment("x", "s1", "honesty", "helpfulness", .a)]).groupRanks.isEmpty)
    }

    private func scenario(
        _ id: String, _ value1: String, _ value2: String, domain: ScenarioDomain?, description: String,
        status: ScenarioStatus = .kept, realism: Bool? = true
    ) -> Scenario {
        var checks: [FilterCheckName: FilterCheck] = [:]
        if let realism { checks[.realism] = FilterCheck(pass: realism, raw: nil) }
        return Scenario(
            id: id, outlineID: "o-\(id)", valueSet: "hhh", value1: value1, value2: value2, domain: domain,
            description: description, persona: "", background: "", goal: "", action1: "", action2: "",
            consequence1: "", consequence2: "", generatingModel: "g", status: status, checks: checks)
    }

    /// Five scenarios: realism passes in 3 of the 4 with a verdict (rejected ones count; s5 has none); s1 and s2
    /// (health) share their description, so their pair's diversity is 0; a pair with one kept scenario has none.
    @Test func storeMeasuresNeedScenarios() throws {
        let scenarios = [
            scenario("s1", "honesty", "helpfulness", domain: .health, description: "the same words here"),
            scenario("s2", "honesty", "helpfulness", domain: .health, description: "the same words here"),
            scenario("s3", "honesty", "harmlessness", domain: .work, description: "other"),
            scenario("s4", "honesty", "harmlessness", domain: nil, description: "x", status: .rejected, realism: false),
            scenario("s5", "helpfulness", "harmlessness", domain: nil, description: "y", realism: nil),
        ]
        let judgments = [
            judgment("x", "s1", "honesty", "helpfulness", .a),
            judgment("x", "s2", "honesty", "helpfulness", .b),
            judgment("x", "s3", "honesty", "harmlessness", .b),
            judgment("x", "s5", "helpfulness", "harmlessness", .a),
        ]
        #expect(try metrics(judgments).scenarioMeasures == nil)
        let measures = try #require(try metrics(judgments, scenarios: scenarios).scenarioMeasures)

        let realism = try #require(measures.filterPassRates.first { $0.check == .realism }?.rate)
        #expect(realism.n == 4 && realism.value == 0.75)
        let (low, high) = RankingMetrics.wilsonInterval(successes: 3, trials: 4)
        #expect(close(realism.low, low) && close(realism.high, high))
        #expect(measures.filterPassRates.first { $0.check == .specificity }?.rate == nil)

        // Pairs in name order: helpfulness/harmlessness (s5), honesty/harmlessness (s3), honesty/helpfulness.
        #expect(measures.diversity.map(\.scenarios) == [1, 1, 2])
        #expect(measures.diversity[0].diversity == nil)
        #expect(close(measures.diversity[2].diversity, 0, 1e-9))
        #expect(measures.diversity.allSatisfy { $0.method == "lexical" })

        #expect(measures.domains.map(\.domain) == ["health", "unlabelled", "work"])
        #expect(measures.domains.map(\.scenarios) == [2, 1, 1])

        // Per domain: health holds s1 and s2 (one win each), work holds s3, unlabelled s5.
        let byDomain = Dictionary(grouping: measures.domainRankings, by: \.domain)
        #expect(byDomain.keys.sorted() == ["health", "unlabelled", "work"])
        let health = try #require(byDomain["health"]?.first?.ranking)
        #expect(health.n == 2 && health.values.map(\.rank) == [1, 2])
        #expect(close(health.values[0].score, 0, 1e-9))
        let work = try #require(byDomain["work"]?.first?.ranking)
        #expect(work.values.map(\.value) == ["harmlessness", "honesty"])

        // The JSON: four more arrays in "metrics", only with the store's scenarios.
        let withStore = try RankingReport(
            judgments: judgments, options: RankingOptions(resamples: 0), includeMetrics: true, scenarios: scenarios)
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(withStore.json.serialized().utf8)) as? [String: Any])
        let metricsObject = try #require(object["metrics"] as? [String: Any])
        for key in ["filter_pass_rates", "diversity", "domains", "domain_rankings"] {
            #expect(metricsObject[key] is [Any], "\(key)")
        }
        let rates = try #require(metricsObject["filter_pass_rates"] as? [[String: Any]])
        #expect(Set(rates[0].keys) == ["check", "rate", "ci_low", "ci_high", "n"])
        let domainRankings = try #require(metricsObject["domain_rankings"] as? [[String: Any]])
        #expect(domainRankings[0]["domain"] as? String == "health" && domainRankings[0]["values"] is [Any])
        let diversity = try #require(metricsObject["diversity"] as? [[String: Any]])
        #expect(diversity[0]["method"] as? String == "lexical")

        let alone = try RankingReport(judgments: judgments, options: RankingOptions(resamples: 0), includeMetrics: true)
        let aloneObject = try #require(
            try JSONSerialization.jsonObject(with: Data(alone.json.serialized().utf8)) as? [String: Any])
        let aloneMetrics = try #require(aloneObject["metrics"] as? [String: Any])
        #expect(aloneMetrics["filter_pass_rates"] == nil && aloneMetrics["domain_rankings"] == nil)
        for key in ["pooled_difficulty", "group_ranks", "format_consistency"] {
            #expect(aloneMetrics[key] is [Any], "\(key)")
        }
    }

    /// The embedder's vectors measure the pairs they cover and label them; other pairs stay lexical.
    @Test func diversityUsesTheEmbeddersVectorsWhereItHasThem() {
        let kept = [
            scenario("s1", "honesty", "helpfulness", domain: nil, description: "the same words here"),
            scenario("s2", "honesty", "helpfulness", domain: nil, description: "the same words here"),
            scenario("s3", "honesty", "harmlessness", domain: nil, description: "one"),
            scenario("s4", "honesty", "harmlessness", domain: nil, description: "two"),
        ]
        // Identical descriptions, orthogonal vectors: the embedder says they differ completely.
        let embeddings = DescriptionEmbeddings(model: "mini", vectors: ["s1": [1, 0], "s2": [0, 1]])
        let measured = ScenarioMeasures.diversity(kept, embeddings: embeddings)
        #expect(measured.map(\.method) == ["lexical", "mini"])
        #expect(close(measured[1].diversity, 1, 1e-12))
        #expect(close(ScenarioMeasures.diversity(kept)[1].diversity, 0, 1e-9))
        // A pair only partly covered is measured lexically.
        let partial = DescriptionEmbeddings(model: "mini", vectors: ["s1": [1, 0], "s3": [0, 1]])
        #expect(ScenarioMeasures.diversity(kept, embeddings: partial).allSatisfy { $0.method == "lexical" })
    }

    /// With an embedder role, `run` embeds each pair's kept descriptions once (a rerun pays nothing), and the
    /// summary and the report measure diversity on those vectors, labelled with the embedder.
    @Test func aSweepWithAnEmbedderMeasuresDiversityOnItsVectors() async throws {
        let text = try repositoryConfigText()
            .replacingOccurrences(
                of: "scenarios_per_pair = { hhh = 40, personal_protective = 30, model_spec = 16 }",
                with: "scenarios_per_pair = { hhh = 3, personal_protective = 0, model_spec = 0 }"
            )
            .replacingOccurrences(of: "# [roles.embedder]", with: "[roles.embedder]\nmodel = \"sim-writer\"\n#")
            .replacingOccurrences(of: "formats = [\"mcq\", \"open\"]", with: "formats = [\"mcq\"]")
        let (config, _) = try writeTemporaryConfig(text)
        let first = try await EmbeddedSweep.run(config: config)
        let measures = try #require(first.report.metrics?.scenarioMeasures)
        let measured = measures.diversity.filter { $0.scenarios > 1 }
        #expect(!measured.isEmpty)
        #expect(measured.allSatisfy { $0.method == "sim-writer" }, "\(measured)")
        // The simulated embedder embeds lexically: the same numbers under the embedder's label.
        let store = try ResultStore(path: config.storePath)
        let kept = try store.scenarios().filter { $0.status == .kept }
        let lexical = ScenarioMeasures.diversity(kept).filter { $0.scenarios > 1 }
        #expect(zip(measured, lexical).allSatisfy { close($0.diversity, $1.diversity ?? -1, 1e-9) })
        let analysis = try ReportAnalysis(
            input: try ReportInput.store(store, config: config, source: "test", transcriptsPerPair: 0))
        #expect(analysis.diversity == measures.diversity)
        let again = try await EmbeddedSweep.run(config: config)
        #expect(again.callsMade == 0)
        #expect(again.report.metrics?.scenarioMeasures?.diversity == measures.diversity)
    }

    /// `run --json` has the store: its metrics add the scenario measures, the same numbers the report shows.
    @Test func runJSONAddsTheStoreMeasures() async throws {
        let (config, _, summary) = try await ReportSweep.shared.get()
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(summary.json.serialized().utf8)) as? [String: Any])
        let calls = try #require(object["calls"] as? [String: Any])
        #expect(calls["by_stage"] != nil && object["rankings"] is [Any])
        let metricsObject = try #require(object["metrics"] as? [String: Any])
        for key in [
            "pooled_difficulty", "group_ranks", "format_consistency", "filter_pass_rates", "diversity", "domains",
            "domain_rankings",
        ] {
            #expect(metricsObject[key] is [Any], "\(key)")
        }
        let metrics = try #require(summary.report.metrics)
        let measures = try #require(metrics.scenarioMeasures)

        // The report's analysis of the same store shows the same numbers.
        let store = try ResultStore(path: config.storePath)
        let input = try ReportInput.store(store, config: config, source: "test", transcriptsPerPair: 0)
        let analysis = try ReportAnalysis(input: input)
        #expect(analysis.filterPassRates == measures.filterPassRates)
        #expect(analysis.domains == measures.domains)
        #expect(analysis.diversity == measures.diversity)
        #expect(analysis.groupRanks == metrics.groupRanks)
        #expect(analysis.difficulty == metrics.pooledDifficulty)

        // personal_protective has groups: one mean rank per target, format and group.
        #expect(metrics.groupRanks.count == 2 * 2 * 2)
        // Each group's judgments are split between the domains: their fitted comparisons add up.
        for ranking in summary.report.rankings {
            let perDomain = measures.domainRankings.filter { $0.ranking.key == ranking.key }.map(\.ranking.n)
            #expect(perDomain.reduce(0, +) == ranking.n, "\(ranking.key)")
        }
        #expect(measures.domains.map(\.scenarios).reduce(0, +) == summary.scenarios.kept)
        // One consistency entry per target, value set and condition.
        #expect(metrics.formatConsistency.count == 2 * 2 * 2)
        let saydo = try #require(
            metrics.formatConsistency.first {
                $0.model == "saydo" && $0.valueSet == "personal_protective" && $0.condition == "default"
            })
        let steady = try #require(
            metrics.formatConsistency.first {
                $0.model == "steady" && $0.valueSet == "personal_protective" && $0.condition == "default"
            })
        // The say/do model reverses its values when acting; the steady one does not.
        #expect((saydo.kendallTau ?? 1) < (steady.kendallTau ?? -1))
    }
}
