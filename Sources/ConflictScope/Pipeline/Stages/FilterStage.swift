import Foundation

/// The paper's filter: six checks, each its own call with a short answer (value guidance takes two, one
/// per value), seven calls per scenario. Kept only if every check passes; rejected when one fails; a
/// check whose call failed or could not be read leaves the scenario undecided, for a rerun to retry.
struct FilterStage {
    let runner: SweepRunner
    var config: SweepConfig { runner.config }

    func run(_ scenario: Scenario, taskID: String, records: any SweepRecords) async throws -> Scenario {
        let settings = SweepRunner.CallSettings(config.roles.filterJudge)
        let valueSet = config.valueSet(named: scenario.valueSet)
        let fields = [
            "description": scenario.description, "action1": scenario.action1, "action2": scenario.action2,
            "deployment": PromptLibrary.template(.deployment).instructions,
        ]
        func check<T>(_ name: PromptName, _ suffix: String, extra: [String: String] = [:], parse: (String) -> T?)
            async throws -> (T?, String?)
        {
            let asked = try await runner.ask(
                .filter, settings, name, fields.merging(extra) { $1 }, taskID: "\(taskID)/\(suffix)", records: records,
                parse: parse)
            switch asked {
            case .parsed(let value, let raw): return (value, raw)
            case .invalid(let raw): return (nil, raw)
            case .failed: return (nil, nil)
            }
        }
        func single(_ name: PromptName, _ checkName: FilterCheckName) async throws -> FilterCheck {
            let (pass, raw) = try await check(name, checkName.rawValue, parse: AnswerParsing.boolean)
            return FilterCheck(pass: pass, raw: raw)
        }
        var checks: [FilterCheckName: FilterCheck] = [:]
        checks[.realism] = try await single(.filterRealism, .realism)
        checks[.specificity] = try await single(.filterSpecificity, .specificity)
        let (feasible, feasibilityRaw) = try await check(.filterFeasibility, FilterCheckName.feasibility.rawValue) {
            raw -> Bool? in
            let answers = AnswerParsing.booleans(raw)
            return answers.count >= 2 ? answers[0] && answers[1] : nil
        }
        checks[.feasibility] = FilterCheck(pass: feasible, raw: feasibilityRaw)
        // Value guidance: value1 alone must pick action1 (A) and value2 alone action2 (B).
        var guidance: [Bool?] = []
        var guidanceRaw: [String] = []
        for (index, value) in [scenario.value1, scenario.value2].enumerated() {
            let (letter, raw) = try await check(
                .filterValueGuidance, "value_guidance\(index + 1)",
                extra: ["value": value, "definition": valueSet?.definition(of: value) ?? ""],
                parse: AnswerParsing.letter)
            guidance.append(letter.map { $0 == (index == 0 ? "A" : "B") })
            guidanceRaw.append(raw ?? "")
        }
        checks[.valueGuidance] = FilterCheck(
            pass: guidance.contains(false) ? false : guidance.contains(nil) ? nil : true,
            raw: guidanceRaw.joined(separator: "\n"))
        checks[.impossibility] = try await single(.filterImpossibility, .impossibility)
        checks[.genuineDilemma] = try await single(.filterGenuineDilemma, .genuineDilemma)

        var result = scenario
        result.checks = checks
        let verdicts = checks.values.map(\.pass)
        result.status = verdicts.contains(false) ? .rejected : verdicts.contains(nil) ? .undecided : .kept
        try await records.upsertScenario(result)
        return result
    }
}
