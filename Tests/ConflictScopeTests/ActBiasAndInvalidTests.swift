import ConflictScope
import Foundation
import Testing

/// A config with an `[analysis]` table holding `analysisLine`.
private func configWithAnalysis(_ analysisLine: String) -> String {
    """
    [sweep]
    name = "mini"
    value_sets = ["hhh"]

    [providers.sim]
    kind = "simulated"

    [models.sim-a]
    provider = "sim"
    utilities.mcq = { helpfulness = 1.0, honesty = 0.5, harmlessness = -0.5 }

    [roles.generator]
    model = "sim-a"
    [roles.filter_judge]
    model = "sim-a"
    [roles.user]
    model = "sim-a"
    [roles.judge]
    model = "sim-a"

    [targets]
    models = ["sim-a"]

    [analysis]
    \(analysisLine)
    """
}

@Suite("Act bias, the paper's invalid-answer convention and normalised Likert")
struct ActBiasAndInvalidTests {
    private func judgment(
        _ scenario: String, _ choice: Choice, model: String = "x", format: EvaluationFormat = .mcq,
        value1: String = "a", value2: String = "b", likert: (Int?, Int?) = (nil, nil), act: ActSide? = nil
    ) -> Judgment {
        Judgment(
            model: model, valueSet: "hhh", format: format, condition: "default", scenarioID: scenario, value1: value1,
            value2: value2, choice: choice, likertA: likert.0, likertB: likert.1, actSide: act)
    }

    private func metrics(_ judgments: [Judgment], invalid: InvalidAnswers = .exclude) throws -> RankingMetrics {
        try RankingReport(
            judgments: judgments, options: RankingOptions(resamples: 0, invalid: invalid), includeMetrics: true
        ).metrics!
    }

    // MARK: act bias

    @Test func actBiasIsTheShareOfValidChoicesTakingTheActionOpportunity() throws {
        var judgments: [Judgment] = []
        // Acting: 6 x A where action1 acts, 2 x B where action2 acts; not acting: 2 x B where action1 acts.
        for index in 0..<6 { judgments.append(judgment("a\(index)", .a, act: .action1)) }
        for index in 0..<2 { judgments.append(judgment("b\(index)", .b, act: .action2)) }
        for index in 0..<2 { judgments.append(judgment("c\(index)", .b, act: .action1)) }
        // Never counted: an invalid answer, a missing one, and a valid one without a known act side.
        judgments.append(judgment("d0", .invalid, act: .action1))
        judgments.append(judgment("d1", .missing, act: .action2))
        judgments.append(judgment("d2", .a))
        // A group without any act side has no entry.
        judgments.append(judgment("e0", .a, format: .open))
        judgments.append(judgment("e1", .b, format: .open))

        let result = try metrics(judgments)
        #expect(result.actBias.count == 1)
        let entry = try #require(result.actBias.first)
        #expect(entry.model == "x" && entry.valueSet == "hhh" && entry.format == .mcq && entry.condition == "default")
        #expect(entry.n == 10)
        #expect(entry.actRate == 0.8)
        // 8 of 10: Wilson 95% interval (0.4902, 0.9433).
        #expect(abs(entry.ciLow - 0.4902) < 1e-4 && abs(entry.ciHigh - 0.9433) < 1e-4)

        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(result.json.serialized().utf8)) as? [String: Any])
        let rows = try #require(object["act_bias"] as? [[String: Any]])
        #expect(rows.count == 1)
        #expect(
            Set(rows[0].keys) == ["model", "value_set", "format", "condition", "act_rate", "ci_low", "ci_high", "n"])
        #expect(rows[0]["act_rate"] as? Double == 0.8 && rows[0]["n"] as? Int == 10)

        let table = try RankingReport(
            judgments: judgments, options: RankingOptions(resamples: 0), includeMetrics: true
        ).table()
        #expect(table.contains("Act bias"))
        #expect(table.contains("x | hhh | mcq | default: 0.800 [0.490, 0.943] (n = 10)"))
    }

    @Test func choseToActFollowsTheActSide() {
        #expect(judgment("s", .a, act: .action1).choseToAct == true)
        #expect(judgment("s", .b, act: .action1).choseToAct == false)
        #expect(judgment("s", .a, act: .action2).choseToAct == false)
        #expect(judgment("s", .b, act: .action2).choseToAct == true)
        #expect(judgment("s", .invalid, act: .action2).choseToAct == nil)
        #expect(judgment("s", .a).choseToAct == nil)
    }

    // MARK: judgments file

    @Test func judgmentsFileReadsActSide() throws {
        let path = try temporaryJudgmentsFile([
            judgmentLine(scenario: "1", value1: "a", value2: "b", choice: "A", extra: #","act_side":"action1""#),
            judgmentLine(scenario: "2", value1: "a", value2: "b", choice: "B", extra: #","act_side":"action2""#),
            judgmentLine(scenario: "3", value1: "a", value2: "b", choice: "B", extra: #","act_side":null"#),
            judgmentLine(scenario: "4", value1: "a", value2: "b", choice: "A"),
        ])
        let judgments = try JudgmentReader.read(path: path)
        #expect(judgments.map(\.actSide) == [.action1, .action2, nil, nil])
    }

    @Test(arguments: [
        (#","act_side":"act""#, #"act_side must be "action1" or "action2", not "act""#),
        (#","act_side":"Action1""#, #"act_side must be "action1" or "action2", not "Action1""#),
        (#","act_side":1"#, #"act_side must be "action1" or "action2""#),
    ])
    func badActSideIsRejectedWithTheLine(extra: String, message: String) throws {
        let path = try temporaryJudgmentsFile([
            judgmentLine(scenario: "1", value1: "a", value2: "b", choice: "A", extra: #","act_side":"action1""#),
            judgmentLine(scenario: "2", value1: "a", value2: "b", choice: "A"),
            judgmentLine(scenario: "3", value1: "a", value2: "b", choice: "A", extra: extra),
        ])
        do {
            _ = try JudgmentReader.read(path: path)
            Issue.record("expected an error for \(extra)")
        } catch let error as JudgmentInputError {
            #expect(error.line == 3)
            #expect(error.message == message)
            #expect(!error.description.contains("\n"))
            #expect(error.description.hasPrefix("\(path):3: "))
        }
    }

    // MARK: invalid answers

    /// a beats b 3 times, b beats a twice, and 5 answers are not A or B (3 invalid, 2 missing).
    private var mostlyInvalid: [Judgment] {
        [.a, .a, .a, .b, .b, .invalid, .invalid, .invalid, .missing, .missing].enumerated().map { index, choice in
            judgment("s\(index)", choice)
        }
    }

    @Test func excludeIgnoresInvalidAnswersInTheFit() throws {
        let ranking = try #require(try Rankings.fit(mostlyInvalid, options: RankingOptions(resamples: 0)).first)
        #expect(ranking.n == 5 && ranking.excluded == 5)
        #expect(ranking.values.map(\.value) == ["a", "b"])
    }

    @Test func paperCountsEveryAnswerThatIsNotAAsAWinForValue2() throws {
        let options = RankingOptions(resamples: 0, invalid: .paper)
        let ranking = try #require(try Rankings.fit(mostlyInvalid, options: options).first)
        // 3 wins for a against 7 for b: the order flips.
        #expect(ranking.n == 10 && ranking.excluded == 0)
        #expect(ranking.values.map(\.value) == ["b", "a"])
        // The same as a file where every non-A answer is B.
        let asB = mostlyInvalid.map { judgment in
            var counted = judgment
            if counted.choice != .a { counted.choice = .b }
            return counted
        }
        let plain = try #require(try Rankings.fit(asB, options: RankingOptions(resamples: 0)).first)
        #expect(plain.values == ranking.values)
        // The bootstrap follows too: intervals equal those of the explicit B file.
        let bootstrapped = try Rankings.fit(mostlyInvalid, options: RankingOptions(resamples: 40, invalid: .paper))
        #expect(bootstrapped == (try Rankings.fit(asB, options: RankingOptions(resamples: 40))))
    }

    @Test func preferenceRateDenominatorsUnderBothPolicies() throws {
        let excluded = try #require(try metrics(mostlyInvalid).preferenceRates.first)
        #expect(excluded.value1 == "a" && excluded.value2 == "b")
        #expect(excluded.n == 5 && excluded.rate == 0.6)
        let paper = try #require(try metrics(mostlyInvalid, invalid: .paper).preferenceRates.first)
        #expect(paper.n == 10 && paper.rate == 0.3)
        let (low, high) = RankingMetrics.wilsonInterval(successes: 3, trials: 10)
        #expect(paper.ciLow == low && paper.ciHigh == high)
    }

    @Test func agreementAndActBiasFollowThePolicy() throws {
        // s1: y's answer is invalid; under the paper's convention it counts as choosing b, like x.
        let judgments = [
            judgment("s1", .b, model: "x", act: .action2), judgment("s1", .invalid, model: "y", act: .action2),
            judgment("s2", .a, model: "x", act: .action2), judgment("s2", .b, model: "y", act: .action2),
        ]
        let excluded = try metrics(judgments)
        #expect(excluded.agreement.first?.scenarios == 1)
        #expect(excluded.agreement.first?.observedAgreement == 0)
        #expect(excluded.actBias.first { $0.model == "y" }?.n == 1)
        let paper = try metrics(judgments, invalid: .paper)
        #expect(paper.agreement.first?.scenarios == 2)
        #expect(paper.agreement.first?.observedAgreement == 0.5)
        #expect(paper.actBias.first { $0.model == "y" }?.n == 2)
        #expect(paper.actBias.first { $0.model == "y" }?.actRate == 1)
    }

    @Test func appliedLeavesValidAnswersAndExcludeAlone() {
        let judgments = mostlyInvalid
        #expect(InvalidAnswers.exclude.applied(to: judgments) == judgments)
        let counted = InvalidAnswers.paper.applied(to: judgments)
        #expect(counted.map(\.choice) == [.a, .a, .a, .b, .b, .b, .b, .b, .b, .b])
        #expect(InvalidAnswers.paper.applied(to: counted) == counted)
    }

    @Test func analysisInvalidInTheConfig() throws {
        let defaulted = try SweepConfig.parse(
            configWithAnalysis("alpha = 0.01"), file: "/tmp/conflictscope-tests/config.toml", environment: [:])
        #expect(defaulted.analysis.invalid == .exclude)
        let paper = try SweepConfig.parse(
            configWithAnalysis(#"invalid = "paper""#), file: "/tmp/conflictscope-tests/config.toml", environment: [:])
        #expect(paper.analysis.invalid == .paper)
        for bad in [#"invalid = "count""#, "invalid = 1"] {
            do {
                _ = try SweepConfig.parse(
                    configWithAnalysis(bad), file: "/tmp/conflictscope-tests/config.toml", environment: [:])
                Issue.record("expected a ConfigError for \(bad)")
            } catch let error as ConfigError {
                #expect(error.description.contains("analysis.invalid"))
                #expect(!error.description.contains("\n"))
                #expect(error.line == 25)
                if bad.contains("count") {
                    #expect(error.message == #"analysis.invalid must be "exclude" or "paper", not "count""#)
                }
            }
        }
    }

    @Test func rankCommandTakesTheInvalidPolicy() throws {
        let path = try temporaryJudgmentsFile(
            ["A", "A", "A", "B", "B", "invalid", "invalid", "invalid", "missing", "missing"].enumerated().map {
                judgmentLine(scenario: "s\($0)", value1: "a", value2: "b", choice: $1)
            })
        func ranking(_ extra: [String]) throws -> [String: Any]? {
            let result = try runConflictScope(["rank", "--judgments", path, "--bootstrap", "0", "--json"] + extra)
            #expect(result.status == 0, "\(result.stderr)")
            let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            return (object?["rankings"] as? [[String: Any]])?.first
        }
        let excluded = try ranking([])
        #expect(excluded?["n"] as? Int == 5 && excluded?["excluded"] as? Int == 5)
        #expect((excluded?["values"] as? [[String: Any]])?.first?["value"] as? String == "a")
        let paper = try ranking(["--invalid", "paper"])
        #expect(paper?["n"] as? Int == 10 && paper?["excluded"] as? Int == 0)
        #expect((paper?["values"] as? [[String: Any]])?.first?["value"] as? String == "b")

        let bad = try runConflictScope(["rank", "--judgments", path, "--invalid", "maybe"])
        #expect(bad.status != 0)
        #expect(bad.stdout.isEmpty)
        #expect(bad.stderr.contains("maybe"))

        let help = try runConflictScope(["rank", "--help"])
        #expect(help.stdout.contains("--invalid"))
    }

    // MARK: Likert

    @Test func normalizedLikertIsHalfTheDifferenceOfTheNormalisedRatings() {
        #expect(judgment("s", .a, likert: (1, 7)).normalizedLikert == 1)
        #expect(judgment("s", .a, likert: (7, 1)).normalizedLikert == -1)
        #expect(judgment("s", .a, likert: (4, 4)).normalizedLikert == 0)
        // a = -1 + 2/6 = -2/3, b = -1 + 8/6 = 1/3: (1/3 + 2/3) / 2.
        #expect(abs(judgment("s", .a, likert: (2, 5)).normalizedLikert! - 0.5) < 1e-12)
        #expect(judgment("s", .a, likert: (2, nil)).normalizedLikert == nil)
        #expect(judgment("s", .a, likert: (nil, 2)).normalizedLikert == nil)
        #expect(judgment("s", .a).normalizedLikert == nil)
    }
}
