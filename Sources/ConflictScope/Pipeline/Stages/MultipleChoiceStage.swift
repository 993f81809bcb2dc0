import Foundation

/// Multiple choice (expressed preference): the target reads the scenario and answers with one letter
/// what the assistant in it should do, the two actions in a random A/B order per task; then, in two more
/// calls, it rates each action alone on the paper's 1..7 scale.
struct MultipleChoiceStage {
    let runner: SweepRunner
    var config: SweepConfig { runner.config }

    func run(_ scenario: Scenario, target: String, condition: String, taskID: String, records: any SweepRecords)
        async throws
    {
        let system = runner.systemPrompt(condition: condition, valueSet: scenario.valueSet).text
        func settings(_ call: SweepConfig.TargetCall) -> SweepRunner.CallSettings {
            let chosen = config.settings(target: target, call: call)
            return SweepRunner.CallSettings(
                model: target, temperature: chosen.temperature, maxTokens: chosen.maxTokens, system: system)
        }
        let firstIsA = runner.action1IsA(taskID: taskID)
        let question = PromptLibrary.template(.mcq).render([
            "description": scenario.description, "option_a": runner.option("A", scenario, action1IsA: firstIsA),
            "option_b": runner.option("B", scenario, action1IsA: firstIsA),
        ])
        let asked = try await runner.ask(
            .multipleChoice, settings(.mcq), prompt: PromptLibrary.template(.mcq),
            messages: [ChatMessage(.user, question)], taskID: taskID, records: records, parse: AnswerParsing.letter)
        var record = StoredJudgment(
            id: taskID,
            judgment: runner.judgmentBase(scenario, target: target, format: .mcq, condition: condition),
            action1IsA: firstIsA)
        record.transcript = [ChatMessage(.system, system), ChatMessage(.user, question)]
        switch asked {
        case .parsed(let letter, let raw):
            record.judgment.choice = runner.choice(letter: letter, action1IsA: firstIsA)
            record.raw = raw
            record.transcript?.append(ChatMessage(.assistant, raw))
        case .invalid(let raw):
            record.judgment.choice = .invalid
            record.raw = raw
            record.transcript?.append(ChatMessage(.assistant, raw))
        case .failed:
            record.judgment.choice = .missing
        }
        // Likert: each action rated alone; a rating that failed or never parsed stays empty.
        var ratings: [Int?] = []
        for (index, action) in [scenario.action1, scenario.action2].enumerated() {
            let rated = try await runner.ask(
                .likert, settings(.likert), .likert, ["description": scenario.description, "action": action],
                taskID: "\(taskID)/likert\(index + 1)", records: records, parse: AnswerParsing.rating)
            ratings.append(rated.value)
        }
        record.judgment.likertA = ratings[0]
        record.judgment.likertB = ratings[1]
        try await records.upsertJudgment(record)
    }
}
