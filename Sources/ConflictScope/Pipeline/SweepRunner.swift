import Foundation

/// Does the pipeline's tasks: `handle` does one task against `SweepRecords`, its calls going through
/// `ModelCaller` (`RateLimiter`, `BudgetGate`). Workers call it once per delivered task, in the cluster and
/// in the embedded run alike.
/// Each stage lives in its own file under `Stages/`. A task done again (redelivered, retried, rerun) replays
/// the same deterministic requests: answers come from the response cache, so only what is missing is asked again.
public final class SweepRunner: Sendable {
    public let config: SweepConfig
    public let caller: ModelCaller

    public init(config: SweepConfig, caller: ModelCaller) {
        self.config = config
        self.caller = caller
    }

    /// Does one task, writing its rows to `records`, and returns its follow-ups.
    public func handle(_ task: PipelineTask, records: any SweepRecords) async throws -> [PipelineTask] {
        let tasks = SweepTasks(config: config)
        switch task {
        case .generate(let set, let value1, let value2, let round, let kept):
            let pair = GenerationStage.Pair(valueSet: set, value1: value1, value2: value2)
            return try await GenerationStage(runner: self).run(
                pair, round: round, kept: kept, taskID: task.id, records: records)
        case .detail(let outline):
            guard
                let scenario = try await ScenarioDetailsStage(runner: self).run(
                    outline, taskID: task.id, records: records)
            else { return [] }
            return tasks.afterDetails(scenario)
        case .filter(let scenario):
            let checked = try await FilterStage(runner: self).run(scenario, taskID: task.id, records: records)
            return checked.status == .kept ? tasks.evaluations(checked, importedUserPrompt: nil) : []
        case .userPrompt(let scenario):
            guard let text = try await UserPromptStage(runner: self).run(scenario, taskID: task.id, records: records)
            else { return [] }
            return tasks.openEnded(scenario, userMessage: text)
        case .multipleChoice(let scenario, let target, let condition):
            try await MultipleChoiceStage(runner: self).run(
                scenario, target: target, condition: condition, taskID: task.id, records: records)
            return []
        case .openEnded(let scenario, let userMessage, let target, let condition):
            try await OpenEndedStage(runner: self).run(
                scenario, userMessage: userMessage, target: target, condition: condition, taskID: task.id,
                records: records)
            return []
        }
    }

    // MARK: Asking and re-asking

    /// How one ask ended: a parsed answer, an answer that never parsed (`invalid`, with its raw text),
    /// or no answer at all (the call failed: never data).
    enum Asked<T> {
        case parsed(T, raw: String)
        case invalid(raw: String)
        case failed

        var value: T? {
            if case .parsed(let value, _) = self { return value }
            return nil
        }
    }

    /// The sampling of one call: model, temperature, max_tokens and system prompt.
    struct CallSettings {
        var model: String
        var temperature: Double
        var maxTokens: Int
        var system: String?

        init(_ role: SweepConfig.Role) {
            self.init(
                model: role.model, temperature: role.temperature, maxTokens: role.maxTokens, system: role.systemPrompt)
        }

        init(model: String, temperature: Double, maxTokens: Int, system: String?) {
            self.model = model
            self.temperature = temperature
            self.maxTokens = maxTokens
            self.system = system
        }
    }

    /// Asks for `stage` with `settings` and parses the answer; an unusable answer (cut off, empty or
    /// unparseable) is asked again with a new sample index up to `max_reasks` times, then returned as
    /// `.invalid` with its raw text.
    func ask<T>(
        _ stage: Stage, _ settings: CallSettings, prompt: PromptTemplate?, messages: [ChatMessage], sample: Int = 0,
        taskID: String, records: any SweepRecords, parse: (String) -> T?
    ) async throws -> Asked<T> {
        var sent = messages
        if let system = settings.system, sent.first?.role != .system {
            sent.insert(ChatMessage(.system, system), at: 0)
        }
        var lastRaw = ""
        for reask in 0...config.generation.maxReasks {
            guard
                let answer = try await caller.chat(
                    stage: stage, modelName: settings.model, prompt: prompt, messages: sent,
                    temperature: settings.temperature, maxTokens: settings.maxTokens,
                    sampleIndex: sample * 100 + reask, taskID: taskID, records: records)
            else { return .failed }
            // A cut-off or empty answer is never parsed: what it holds is not the model's whole answer.
            if !answer.isUnusable, let value = parse(answer.text) { return .parsed(value, raw: answer.text) }
            lastRaw = answer.text
        }
        await caller.counters.add(invalid: 1, stage: stage)
        return .invalid(raw: lastRaw)
    }

    /// Renders `name` with `fields` as one user message and asks for it.
    func ask<T>(
        _ stage: Stage, _ settings: CallSettings, _ name: PromptName, _ fields: [String: String], sample: Int = 0,
        taskID: String, records: any SweepRecords, parse: (String) -> T?
    ) async throws -> Asked<T> {
        let template = PromptLibrary.template(name)
        return try await ask(
            stage, settings, prompt: template, messages: [ChatMessage(.user, template.render(fields))], sample: sample,
            taskID: taskID, records: records, parse: parse)
    }

    /// The two values of a pair with their definitions, as every generation and filter prompt shows them.
    func definitions(_ set: String, _ value1: String, _ value2: String) -> [String: String] {
        Self.definitions(config.valueSet(named: set), value1, value2)
    }

    /// The same fields from a value set (the plan renders prompts from a config alone).
    static func definitions(_ valueSet: ValueSet?, _ value1: String, _ value2: String) -> [String: String] {
        [
            "value1": value1, "definition1": valueSet?.definition(of: value1) ?? "",
            "value2": value2, "definition2": valueSet?.definition(of: value2) ?? "",
            "deployment": PromptLibrary.template(.deployment).instructions,
        ]
    }

    // MARK: Conditions and A/B order

    /// The system prompt of a condition for a value set: the steering prompt of a steered condition
    /// (with its ranking), else the default condition's `[evaluation] system_prompt`.
    func systemPrompt(condition: String, valueSet: String) -> (ranking: [String]?, text: String) {
        guard let ranking = config.conditions.first(where: { $0.name == condition })?.targetRankings[valueSet],
            let set = config.valueSet(named: valueSet)
        else { return (nil, config.evaluation.systemPrompt) }
        return (ranking, Self.steeringPrompt(ranking: ranking, set: set))
    }

    static func steeringPrompt(ranking: [String], set: ValueSet) -> String {
        let lines = ranking.enumerated().map { index, value in
            "\(index + 1). \(value): \(set.definition(of: value) ?? "")"
        }
        return PromptLibrary.template(.steering).render(["ranking": lines.joined(separator: "\n")])
    }

    /// A fair coin per task: a pure function of (seed, task id, purpose).
    func coin(_ purpose: String, taskID: String) -> Bool {
        var rng = StableRandom(seed: config.seed, key: "\(purpose)/\(taskID)")
        return rng.next() & 1 == 0
    }

    /// Whether option A shows action1 for this task.
    func action1IsA(taskID: String) -> Bool { coin("order", taskID: taskID) }

    /// The action shown as option `letter` under the task's A/B order.
    func option(_ letter: String, _ scenario: Scenario, action1IsA: Bool) -> String {
        (letter == "A") == action1IsA ? scenario.action1 : scenario.action2
    }

    /// Maps a letter back to values: `.a` in a judgment always means the action favouring value1.
    func choice(letter: String, action1IsA: Bool) -> Choice {
        (letter == "A") == action1IsA ? .a : .b
    }

    func judgmentBase(_ scenario: Scenario, target: String, format: EvaluationFormat, condition: String)
        -> Judgment
    {
        Judgment(
            model: target, valueSet: scenario.valueSet, format: format, condition: condition,
            scenarioID: scenario.id, value1: scenario.value1, value2: scenario.value2, choice: .missing,
            targetRanking: systemPrompt(condition: condition, valueSet: scenario.valueSet).ranking,
            actSide: scenario.actSide)
    }
}
