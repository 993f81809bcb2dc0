import Foundation

/// Open-ended (revealed preference): the target answers the simulated user's message knowing nothing of
/// the scenario; the judge reads the conversation and the two actions and decides which one the replies
/// carry out. While the judge reads the conversation as unresolved and turns remain (`max_turns`), the
/// user model writes the next message.
struct OpenEndedStage {
    let runner: SweepRunner
    var config: SweepConfig { runner.config }

    /// The judge's answer; each field may come as a string, a number or a boolean.
    struct Verdict: Decodable {
        var reasoning: LooseText?
        var resolved: LooseText?
        var action: LooseText?
        var likert: LooseText?

        var letter: String? { action.flatMap { AnswerParsing.letter($0.value) } }
        var isResolved: Bool? { resolved.flatMap { AnswerParsing.boolean($0.value) } }
        var rating: Int? { likert.flatMap { AnswerParsing.rating($0.value) } }
    }

    /// The conversation as the judge and the user model read it.
    static func conversation(_ messages: [ChatMessage]) -> String {
        messages.filter { $0.role != .system }.map { message in
            "\(message.role == .user ? "User" : "Assistant"): \(message.content)"
        }.joined(separator: "\n\n")
    }

    func run(
        _ scenario: Scenario, userMessage: String, target: String, condition: String, taskID: String,
        records: any SweepRecords
    ) async throws {
        let system = runner.systemPrompt(condition: condition, valueSet: scenario.valueSet).text
        let chosen = config.settings(target: target, call: .open)
        let targetSettings = SweepRunner.CallSettings(
            model: target, temperature: chosen.temperature, maxTokens: chosen.maxTokens, system: system)
        let firstIsA = config.evaluation.judgeOrder == .paper ? true : runner.action1IsA(taskID: taskID)
        var record = StoredJudgment(
            id: taskID, judgment: runner.judgmentBase(scenario, target: target, format: .open, condition: condition),
            action1IsA: firstIsA)
        var messages = [ChatMessage(.system, system), ChatMessage(.user, userMessage)]
        turns: for turn in 1...config.evaluation.maxTurns {
            // The target sees only the conversation (and its system prompt): never the scenario.
            let reply = try await runner.ask(
                .openEnded, targetSettings, prompt: nil, messages: messages, taskID: "\(taskID)/reply\(turn)",
                records: records, parse: AnswerParsing.text)
            switch reply {
            case .failed:
                record.judgment.choice = .missing
            case .invalid(let raw):
                record.judgment.choice = .invalid
                record.raw = raw
            case .parsed(let text, _):
                messages.append(ChatMessage(.assistant, text))
            }
            guard case .parsed = reply else { break turns }
            let fields = [
                "conversation": Self.conversation(messages),
                "option_a": runner.option("A", scenario, action1IsA: firstIsA),
                "option_b": runner.option("B", scenario, action1IsA: firstIsA),
            ]
            let verdict = try await runner.ask(
                .judge, SweepRunner.CallSettings(config.roles.judge), .judge, fields, taskID: "\(taskID)/judge\(turn)",
                records: records
            ) { raw -> Verdict? in
                guard let verdict = AnswerParsing.decode(Verdict.self, from: raw), verdict.letter != nil else {
                    return nil
                }
                return verdict
            }
            switch verdict {
            case .parsed(let verdict, let raw):
                record.judgment.choice = runner.choice(letter: verdict.letter!, action1IsA: firstIsA)
                record.likert = verdict.rating
                record.reasoning = verdict.reasoning?.trimmed
                record.raw = raw
                guard verdict.isResolved == false, turn < config.evaluation.maxTurns,
                    let next = try await followUp(
                        scenario, messages: messages, taskID: "\(taskID)/user\(turn + 1)", records: records)
                else { break turns }
                messages.append(ChatMessage(.user, next))
            case .invalid(let raw):
                record.judgment.choice = .invalid
                record.raw = raw
                break turns
            case .failed:
                record.judgment.choice = .missing
                break turns
            }
        }
        record.transcript = messages
        try await records.upsertJudgment(record)
    }

    /// The user's next message in an unresolved conversation (nil when that call failed or never parsed:
    /// the judgment then stands on the turns so far).
    private func followUp(_ scenario: Scenario, messages: [ChatMessage], taskID: String, records: any SweepRecords)
        async throws -> String?
    {
        var fields = UserPromptStage.fields(scenario)
        fields["conversation"] = Self.conversation(messages)
        return try await runner.ask(
            .userPrompts, SweepRunner.CallSettings(config.roles.user), .userFollowup, fields, taskID: taskID,
            records: records, parse: AnswerParsing.text
        ).value
    }
}
