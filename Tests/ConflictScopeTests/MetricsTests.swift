import ConflictScope
import Testing

@Suite("Paper metrics")
struct MetricsTests {
    private func judgment(
        _ model: String, _ scenario: String, _ value1: String, _ value2: String, _ choice: Choice,
        format: EvaluationFormat = .mcq, condition: String = "default", likert: (Int, Int)? = nil,
        target: [String]? = nil
    ) -> Judgment {
        Judgment(
            model: model, valueSet: "hhh", format: format, condition: condition, scenarioID: scenario, value1: value1,
            value2: value2, choice: choice, likertA: likert?.0, likertB: likert?.1, targetRanking: target)
    }

    @Test func wilsonIntervalMatchesTheClosedForm() {
        // 8 of 10: Wilson 95% interval (0.4902, 0.9433).
        let (low, high) = RankingMetrics.wilsonInterval(successes: 8, trials: 10)
        #expect(abs(low - 0.4902) < 1e-4 && abs(high - 0.9433) < 1e-4)
    }

    @Test func agreementUsesFavouredValuesOverCommonValidScenarios() throws {
        // s1: both favour honesty through different letters; s2: they disagree; s3: one invalid, so dropped.
        let judgments = [
            judgment("x", "s1", "honesty", "helpfulness", .a), judgment("y", "s1", "honesty", "helpfulness", .a),
            judgment("x", "s2", "honesty", "harmlessness", .a), judgment("y", "s2", "honesty", "harmlessness", .b),
            judgment("x", "s3", "helpfulness", "harmlessness", .a),
            judgment("y", "s3", "helpfulness", "harmlessness", .invalid),
        ]
        let metrics = try RankingReport(
            judgments: judgments, options: RankingOptions(resamples: 0), includeMetrics: true
        ).metrics!
        #expect(metrics.agreement.count == 1)
        #expect(metrics.agreement[0].scenarios == 2)
        #expect(metrics.agreement[0].observedAgreement == 0.5)
    }

    @Test func likertDivergenceIsTheShareOfUnequalRatings() throws {
        let judgments = [
            judgment("x", "s1", "honesty", "helpfulness", .a, likert: (6, 2)),
            judgment("x", "s2", "honesty", "helpfulness", .b, likert: (4, 4)),
            judgment("x", "s3", "honesty", "helpfulness", .a, likert: (7, 1)),
            judgment("x", "s4", "honesty", "helpfulness", .missing),
        ]
        let metrics = try RankingReport(
            judgments: judgments, options: RankingOptions(resamples: 0), includeMetrics: true
        )
        .metrics!
        #expect(metrics.likertDivergence.count == 1)
        #expect(metrics.likertDivergence[0].scenarios == 3)
        #expect(abs(metrics.likertDivergence[0].divergence! - 2.0 / 3.0) < 1e-12)
    }

    @Test func manipulationEffectAgainstTheSteeredTargetRanking() throws {
        let target = ["harmlessness", "honesty", "helpfulness"]
        var judgments: [Judgment] = []
        // Default: 4 of 10 aligned (harmlessness chosen over helpfulness); steered: 7 of 10 aligned.
        for index in 0..<10 {
            judgments.append(judgment("x", "s\(index)", "harmlessness", "helpfulness", index < 4 ? .a : .b))
            judgments.append(
                judgment(
                    "x", "s\(index)", "harmlessness", "helpfulness", index < 7 ? .a : .b, condition: "steered",
                    target: target))
        }
        judgments.append(
            judgment("x", "s10", "harmlessness", "helpfulness", .invalid, condition: "steered", target: target))
        let metrics = try RankingReport(
            judgments: judgments, options: RankingOptions(resamples: 500, seed: 4), includeMetrics: true
        ).metrics!
        #expect(metrics.alignment.count == 1)
        let entry = metrics.alignment[0]
        #expect(entry.defaultAlignment == 0.4 && entry.steeredAlignment == 0.7)
        #expect(abs(entry.manipulationEffect! - 0.5) < 1e-12)
        #expect(entry.ciLow! < 0.5 && 0.5 < entry.ciHigh!)
        #expect(entry.undefinedReason == nil)

        // Fully aligned by default: the effect is undefined and says why.
        let saturated = (0..<5).flatMap { index in
            [
                judgment("x", "s\(index)", "harmlessness", "helpfulness", .a),
                judgment("x", "s\(index)", "harmlessness", "helpfulness", .a, condition: "steered", target: target),
            ]
        }
        let undefined = try RankingReport(
            judgments: saturated, options: RankingOptions(resamples: 100), includeMetrics: true
        ).metrics!.alignment[0]
        #expect(undefined.manipulationEffect == nil)
        #expect(undefined.undefinedReason?.contains("a_d = 1") == true)
    }

    @Test func sayDoModelShiftsProtectiveValuesDown() throws {
        // Multiple choice favours harmlessness; open-ended favours helpfulness, on the same scenarios.
        var rng = StableRandom(seed: 8)
        let values = ["harmlessness", "helpfulness", "honesty"]
        let said = [1.0, -1.0, 0.0]
        let done = [-1.0, 1.0, 0.0]
        var judgments: [Judgment] = []
        for index in 0..<600 {
            let i = index % 3
            let j = (i + 1) % 3
            for (format, strengths) in [(EvaluationFormat.mcq, said), (.open, done)] {
                let first = rng.uniform() < BradleyTerry.probability(strengths, i, beats: j)
                judgments.append(judgment("x", "s\(index)", values[i], values[j], first ? .a : .b, format: format))
            }
        }
        let metrics = try RankingReport(
            judgments: judgments, options: RankingOptions(resamples: 200, seed: 1), includeMetrics: true
        ).metrics!
        let harmlessness = metrics.rankShifts.first { $0.value == "harmlessness" }!
        #expect(harmlessness.mcqRank == 1 && harmlessness.openRank == 3 && harmlessness.shift == 2)
        #expect(harmlessness.ciLow! > 0)
        let helpfulness = metrics.rankShifts.first { $0.value == "helpfulness" }!
        #expect(helpfulness.shift == -2 && helpfulness.ciHigh! < 0)
    }
}
