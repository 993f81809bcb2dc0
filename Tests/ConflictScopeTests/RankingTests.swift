import ConflictScope
import Foundation
import Testing

/// Writes `lines` to a temporary JSON Lines file and returns its path.
func temporaryJudgmentsFile(_ lines: [String]) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("judgments-\(UUID().uuidString).jsonl")
        .path
    try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

func judgmentLine(
    model: String = "m", valueSet: String = "hhh", format: String = "mcq", condition: String = "default",
    scenario: String, value1: String, value2: String, choice: String, extra: String = ""
) -> String {
    """
    {"model":"\(model)","value_set":"\(valueSet)","format":"\(format)","condition":"\(condition)",\
    "scenario_id":"\(scenario)","value1":"\(value1)","value2":"\(value2)","choice":"\(choice)"\(extra)}
    """
}

@Suite("Judgments file and rankings")
struct RankingTests {
    @Test func readsFieldsEscapesAndOptionalColumns() throws {
        let path = try temporaryJudgmentsFile([
            #"{"model":"gpt\"x\u00e9","value_set":"hhh","format":"open","condition":"steered","scenario_id":"s\/1","value1":"a","value2":"b","choice":"B","likert_a":null,"likert_b":7,"target_ranking":["b","a"],"extra":{"k":[1,2]}}"#,
            "",
            judgmentLine(scenario: "s2", value1: "a", value2: "b", choice: "missing"),
        ])
        let judgments = try JudgmentReader.read(path: path)
        #expect(judgments.count == 2)
        #expect(judgments[0].model == "gpt\"xé")
        #expect(judgments[0].scenarioID == "s/1")
        #expect(judgments[0].format == .open)
        #expect(judgments[0].likertA == nil && judgments[0].likertB == 7)
        #expect(judgments[0].targetRanking == ["b", "a"])
        #expect(judgments[0].favouredValue == "b")
        #expect(judgments[1].choice == .missing && judgments[1].favouredValue == nil)
    }

    @Test(arguments: [
        ("{\"model\": \"m\"", "malformed JSON"),
        ("[1, 2]", "expected a JSON object"),
        (judgmentLine(scenario: "s", value1: "a", value2: "b", choice: "C"), "choice must be"),
        (judgmentLine(format: "essay", scenario: "s", value1: "a", value2: "b", choice: "A"), "format must be"),
        (judgmentLine(scenario: "s", value1: "a", value2: "a", choice: "A"), "value1 and value2 are both"),
        (judgmentLine(scenario: "s", value1: "a", value2: "b", choice: "A", extra: #","likert_a":9"#), "likert_a"),
        (
            #"{"model":"m","value_set":"hhh","format":"mcq","condition":"default","value1":"a","value2":"b","choice":"A"}"#,
            "missing field \"scenario_id\""
        ),
    ])
    func badLinesNameTheLineAndProblem(line: String, message: String) throws {
        let path = try temporaryJudgmentsFile([
            judgmentLine(scenario: "ok", value1: "a", value2: "b", choice: "A"), line,
        ])
        do {
            _ = try JudgmentReader.read(path: path)
            Issue.record("expected an error for \(line)")
        } catch let error as JudgmentInputError {
            #expect(error.line == 2)
            #expect(error.description.hasPrefix("\(path):2: "))
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    @Test func duplicateScenarioIsAnError() throws {
        let path = try temporaryJudgmentsFile([
            judgmentLine(scenario: "s", value1: "a", value2: "b", choice: "A"),
            judgmentLine(scenario: "t", value1: "a", value2: "b", choice: "A"),
            judgmentLine(scenario: "s", value1: "a", value2: "b", choice: "B"),
        ])
        #expect(throws: JudgmentInputError.self) { try JudgmentReader.read(path: path) }
    }

    @Test func invalidAndMissingAnswersNeverChangeTheFitAndAreCounted() throws {
        var rng = StableRandom(seed: 5)
        let values = ["helpfulness", "honesty", "harmlessness"]
        var valid: [Judgment] = []
        for index in 0..<300 {
            let i = Int(rng.next() % 3)
            let j = (i + 1 + Int(rng.next() % 2)) % 3
            valid.append(
                Judgment(
                    model: "m", valueSet: "hhh", format: .mcq, condition: "default", scenarioID: "s\(index)",
                    value1: values[i], value2: values[j], choice: rng.uniform() < 0.6 ? .a : .b))
        }
        var noisy = valid
        for index in 0..<40 {
            noisy.append(
                Judgment(
                    model: "m", valueSet: "hhh", format: .mcq, condition: "default", scenarioID: "x\(index)",
                    value1: "harmlessness", value2: "honesty", choice: index % 2 == 0 ? .invalid : .missing))
        }
        noisy.shuffle(using: &rng)
        let options = RankingOptions(resamples: 100, seed: 9)
        let clean = try Rankings.fit(valid, options: options)
        let withNoise = try Rankings.fit(noisy, options: options)
        #expect(clean[0].excluded == 0)
        #expect(withNoise[0].excluded == 40)
        #expect(withNoise[0].n == 300 && clean[0].n == 300)
        #expect(clean[0].values.map(\.score) == withNoise[0].values.map(\.score))
        #expect(clean[0].values.map(\.ciLow) == withNoise[0].values.map(\.ciLow))
    }

    @Test func groupIntervalsDoNotDependOnOtherGroupsOrOrder() throws {
        func sample(model: String) -> [Judgment] {
            var rng = StableRandom(seed: 1, key: model)
            return (0..<200).map { index in
                Judgment(
                    model: model, valueSet: "hhh", format: .open, condition: "default", scenarioID: "s\(index)",
                    value1: index % 2 == 0 ? "a" : "b", value2: index % 3 == 0 ? "c" : (index % 2 == 0 ? "b" : "a"),
                    choice: rng.uniform() < 0.7 ? .a : .b)
            }
        }
        let alone = try Rankings.fit(sample(model: "one"))
        let together = try Rankings.fit((sample(model: "two") + sample(model: "one")).reversed())
        #expect(together.count == 2)
        #expect(together.first { $0.model == "one" } == alone[0])
    }

    @Test func simulatedJudgmentsRecoverTheLatentRanking() throws {
        let latent = ["autonomy": 1.0, "privacy": 0.4, "creativity": 0.0, "compliance": -0.5, "harmlessness": -0.9]
        let names = latent.keys.sorted()
        let strengths = names.map { latent[$0]! }
        var rng = StableRandom(seed: 77)
        var judgments: [Judgment] = []
        for index in 0..<1100 {
            let i = Int(rng.next() % 5)
            let j = (i + 1 + Int(rng.next() % 4)) % 5
            let first = rng.uniform() < BradleyTerry.probability(strengths, i, beats: j)
            judgments.append(
                Judgment(
                    model: "sim", valueSet: "pp", format: .mcq, condition: "default", scenarioID: "s\(index)",
                    value1: names[i], value2: names[j], choice: first ? .a : .b))
        }
        let ranking = try Rankings.fit(judgments, options: RankingOptions(seed: 3))[0]
        #expect(ranking.values.map(\.value) == ["autonomy", "privacy", "creativity", "compliance", "harmlessness"])
        let truth = BradleyTerry.centred(strengths)
        for value in ranking.values {
            let true_ = truth[names.firstIndex(of: value.value)!]
            #expect(abs(value.score - true_) < 0.2)
            #expect(value.ciLow! < value.score && value.score < value.ciHigh!)
        }
    }

    @Test func alphaZeroDegenerateGroupNamesTheValue() throws {
        let judgments = (0..<6).map { index in
            Judgment(
                model: "m", valueSet: "hhh", format: .mcq, condition: "default", scenarioID: "s\(index)",
                value1: "honesty", value2: index % 2 == 0 ? "harmlessness" : "helpfulness", choice: .a)
        }
        #expect {
            try Rankings.fit(judgments, options: RankingOptions(alpha: 0, resamples: 0))
        } throws: { error in
            "\(error)"
                == "m/hhh/mcq/default: no maximum-likelihood estimate at alpha 0: never wins: harmlessness, helpfulness"
        }
        let regularised = try Rankings.fit(judgments, options: RankingOptions(resamples: 0))
        #expect(regularised[0].values.first?.value == "honesty")
        #expect(regularised[0].values.allSatisfy { $0.score.isFinite && $0.ciLow == nil })
    }

    @Test func jsonHasTheDocumentedShape() throws {
        let judgments = [
            Judgment(
                model: "m", valueSet: "hhh", format: .mcq, condition: "default", scenarioID: "1",
                value1: "b", value2: "a", choice: .a),
            Judgment(
                model: "m", valueSet: "hhh", format: .mcq, condition: "default", scenarioID: "2",
                value1: "b", value2: "a", choice: .invalid),
        ]
        let report = try RankingReport(judgments: judgments, options: RankingOptions(resamples: 0))
        let text = report.json.serialized()
        #expect(
            text.hasPrefix(
                #"{"rankings":[{"model":"m","value_set":"hhh","format":"mcq","condition":"default","n":1,"excluded":1,"values":[{"value":"b","score":"#
            ))
        #expect(text.contains(#""ci_low":null,"ci_high":null,"rank":1}"#))
        let decoded = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        #expect(decoded?.keys.sorted() == ["rankings"])
    }
}
