import Foundation

/// The nine pipeline steps of a sweep. `handle` does one task against `SweepRecords`, and its calls go
/// through `ModelCaller` (`RateLimiter`, `BudgetGate`), so the embedded run (`run`, draining a
/// `TaskQueue` in this process) and the cluster's workers (one `handle` per delivered task) share
/// every line of it. Rerunning a sweep replays the same deterministic requests: answers come from
/// earlier call records, so only what is missing is asked again.
public final class SweepRunner: Sendable {
    public let config: SweepConfig
    public let caller: ModelCaller

    /// Targets answer at temperature 0 with these token limits (multiple choice; open-ended reply).
    public static let targetTemperature = 0.0
    public static let multipleChoiceMaxTokens = 512
    public static let replyMaxTokens = 1024

    public init(config: SweepConfig, caller: ModelCaller) {
        self.config = config
        self.caller = caller
    }

    /// Runs (or resumes) the sweep in this process to the end, or until the budget is reached.
    public func run(store: ResultStore, queue: any TaskQueue) async throws {
        _ = try store.sweepID(name: config.name, seed: config.seed)
        let failures = FailureBox()
        await queue.drain(try SweepTasks(config: config).initial(store: store)) { [self] task in
            do {
                return try await handle(task, records: store)
            } catch is ModelCaller.BudgetExhausted {
                return []
            } catch {
                await failures.record(error)
                return []
            }
        }
        if let error = await failures.first { throw error }
    }

    /// Does one task, writing its rows to `records`, and returns its follow-ups.
    public func handle(_ task: PipelineTask, records: any SweepRecords) async throws -> [PipelineTask] {
        switch task {
        case .generate(let set, let value1, let value2, let round, let kept):
            return try await generate(
                set: set, value1: value1, value2: value2, round: round, kept: kept, taskID: task.id, records: records)
        case .detail(let outline):
            return try await detail(outline, taskID: task.id, records: records).map { [.filter($0)] } ?? []
        case .filter(let scenario):
            guard let checked = try await filter(scenario, taskID: task.id, records: records), checked.status == .kept
            else { return [] }
            return SweepTasks(config: config).evaluations(checked, importedUserPrompt: nil)
        case .userPrompt(let scenario):
            guard let text = try await userPrompt(scenario, taskID: task.id, records: records) else { return [] }
            return SweepTasks(config: config).openEnded(scenario, userMessage: text)
        case .multipleChoice(let scenario, let target, let condition):
            try await multipleChoice(scenario, target: target, condition: condition, taskID: task.id, records: records)
            return []
        case .openEnded(let scenario, let userMessage, let target, let condition):
            try await openEnded(
                scenario, userMessage: userMessage, target: target, condition: condition, taskID: task.id,
                records: records)
            return []
        }
    }

    // MARK: Asking and re-asking

    /// Asks `role`'s model and parses the answer; an unparseable answer is asked again with a new
    /// sample index up to `maxReasks` times. Returns nil when the call failed, `.invalid(raw)` when the
    /// answers never parsed.
    enum Asked<T> {
        case parsed(T, raw: String)
        case invalid(raw: String)
        case failed
    }

    func ask<T>(
        _ role: SweepConfig.Role, roleName: String, prompt: PromptTemplate?, messages: [ChatMessage], sample: Int,
        taskID: String, records: any SweepRecords, parse: (String) -> T?
    ) async throws -> Asked<T> {
        var lastRaw = ""
        for reask in 0...config.generation.maxReasks {
            guard
                let raw = try await caller.chat(
                    role: roleName, modelName: role.model, prompt: prompt, messages: messages,
                    temperature: role.temperature, maxTokens: role.maxTokens, sampleIndex: sample * 100 + reask,
                    taskID: taskID, records: records)
            else { return .failed }
            if let value = parse(raw) { return .parsed(value, raw: raw) }
            lastRaw = raw
        }
        return .invalid(raw: lastRaw)
    }

    private func definitions(_ set: String, _ value1: String, _ value2: String) -> [String: String] {
        let valueSet = config.valueSet(named: set)
        return [
            "value1": value1, "definition1": valueSet?.definition(of: value1) ?? "",
            "value2": value2, "definition2": valueSet?.definition(of: value2) ?? "",
        ]
    }

    // MARK: Stage 1 and deduplication

    func generate(
        set: String, value1: String, value2: String, round: Int, kept keptBefore: [Outline], taskID: String,
        records: any SweepRecords
    ) async throws -> [PipelineTask] {
        let template = PromptLibrary.template(.outline)
        var fields = definitions(set, value1, value2)
        fields["count"] = String(config.generation.outlinesPerCall)
        // All four severity calls of the round, then deduplication over them in id order.
        var candidates: [Outline] = []
        for (index, severity) in PromptName.severities.enumerated() {
            fields["severity"] = PromptLibrary.template(severity).instructions
            let asked = try await ask(
                config.roles.generator, roleName: "generator", prompt: template,
                messages: [ChatMessage(.user, template.render(fields))], sample: round, taskID: "\(taskID)/t\(index)",
                records: records
            ) { raw -> [(String, String)]? in
                guard let list = AnswerParsing.jsonObject(raw)?["outlines"] as? [[String: Any]] else { return nil }
                let outlines = list.compactMap { entry -> (String, String)? in
                    guard let context = AnswerParsing.string(entry, "context"),
                        let opportunity = AnswerParsing.string(entry, "action_opportunity")
                    else { return nil }
                    return (context, opportunity)
                }
                return outlines.isEmpty ? nil : outlines
            }
            guard case .parsed(let outlines, _) = asked else { continue }
            for (position, outline) in outlines.enumerated() {
                candidates.append(
                    Outline(
                        id: "\(set)/\(value1)|\(value2)/r\(round)/t\(index)/\(position)", valueSet: set,
                        value1: value1, value2: value2, round: round, context: outline.0,
                        actionOpportunity: outline.1, kept: false))
            }
        }
        let target = config.scenariosPerPair(for: set)
        var kept = keptBefore
        var keptEmbeddings = try await embeddings(kept, taskID: taskID, records: records)
        let candidateEmbeddings = try await embeddings(candidates, taskID: taskID, records: records)
        var newlyKept: [Outline] = []
        for (candidate, embedding) in zip(candidates, candidateEmbeddings) {
            var outline = candidate
            let duplicate = keptEmbeddings.contains {
                LexicalEmbedding.cosine($0, embedding) >= config.generation.dedupThreshold
            }
            outline.kept = !duplicate && kept.count < target
            try await records.upsertOutline(outline)
            if outline.kept {
                kept.append(outline)
                keptEmbeddings.append(embedding)
                newlyKept.append(outline)
            }
        }
        var next = newlyKept.map { PipelineTask.detail($0) }
        if kept.count < target && round + 1 < config.generation.maxRounds {
            next.append(.generate(valueSet: set, value1: value1, value2: value2, round: round + 1, kept: kept))
        }
        return next
    }

    /// Embeds outlines (context plus action opportunity) with the configured embedder, or lexically
    /// when there is none or its call failed (the failure is in the call records).
    private func embeddings(_ outlines: [Outline], taskID: String, records: any SweepRecords) async throws
        -> [[Double]]
    {
        let texts = outlines.map { "\($0.context) \($0.actionOpportunity)" }
        guard let embedder = config.roles.embedder, !texts.isEmpty,
            let vectors = try await caller.embed(
                modelName: embedder.model, texts: texts, taskID: "\(taskID)/embed", records: records)
        else { return texts.map(LexicalEmbedding.embed) }
        return vectors
    }

    // MARK: Stage 2 and filtering

    func detail(_ outline: Outline, taskID: String, records: any SweepRecords) async throws -> Scenario? {
        let template = PromptLibrary.template(.scenario)
        var fields = definitions(outline.valueSet, outline.value1, outline.value2)
        fields["context"] = outline.context
        fields["action_opportunity"] = outline.actionOpportunity
        let asked = try await ask(
            config.roles.generator, roleName: "generator", prompt: template,
            messages: [ChatMessage(.user, template.render(fields))], sample: 0, taskID: taskID, records: records
        ) { raw -> Scenario? in
            guard let object = AnswerParsing.jsonObject(raw), let persona = object["persona"] as? [String: Any],
                let description = AnswerParsing.string(object, "description"),
                let action1 = AnswerParsing.string(object, "action1"),
                let action2 = AnswerParsing.string(object, "action2")
            else { return nil }
            return Scenario(
                id: "s/\(outline.id)", outlineID: outline.id, valueSet: outline.valueSet, value1: outline.value1,
                value2: outline.value2, description: description,
                persona: AnswerParsing.string(persona, "persona") ?? "",
                background: AnswerParsing.string(persona, "background") ?? "",
                goal: AnswerParsing.string(persona, "goal") ?? "", action1: action1, action2: action2,
                consequence1: AnswerParsing.string(object, "consequence1") ?? "",
                consequence2: AnswerParsing.string(object, "consequence2") ?? "",
                generatingModel: config.roles.generator.model, status: .undecided, checks: nil)
        }
        guard case .parsed(let scenario, _) = asked else { return nil }
        try await records.upsertScenario(scenario)
        return scenario
    }

    func filter(_ scenario: Scenario, taskID: String, records: any SweepRecords) async throws -> Scenario? {
        let template = PromptLibrary.template(.filter)
        var fields = definitions(scenario.valueSet, scenario.value1, scenario.value2)
        fields["description"] = scenario.description
        fields["persona"] = "\(scenario.persona). \(scenario.background) Goal: \(scenario.goal)"
        fields["action1"] = scenario.action1
        fields["action2"] = scenario.action2
        let asked = try await ask(
            config.roles.filterJudge, roleName: "filter_judge", prompt: template,
            messages: [ChatMessage(.user, template.render(fields))], sample: 0, taskID: taskID, records: records
        ) { raw -> [String: FilterCheck]? in
            guard let object = AnswerParsing.jsonObject(raw) else { return nil }
            var checks: [String: FilterCheck] = [:]
            for name in Scenario.checkNames {
                guard let check = object[name] as? [String: Any], let pass = check["pass"] as? Bool else { return nil }
                checks[name] = FilterCheck(pass: pass, reason: AnswerParsing.string(check, "reason") ?? "")
            }
            return checks
        }
        var result = scenario
        switch asked {
        case .parsed(let checks, _):
            result.checks = checks
            result.status = checks.values.allSatisfy(\.pass) ? .kept : .rejected
        case .invalid, .failed:
            result.status = .undecided
        }
        try await records.upsertScenario(result)
        return result
    }

    // MARK: Evaluation

    func userPrompt(_ scenario: Scenario, taskID: String, records: any SweepRecords) async throws -> String? {
        let template = PromptLibrary.template(.user)
        let fields = [
            "description": scenario.description, "persona": scenario.persona, "background": scenario.background,
            "goal": scenario.goal,
        ]
        let asked = try await ask(
            config.roles.user, roleName: "user", prompt: template,
            messages: [ChatMessage(.user, template.render(fields))], sample: 0, taskID: taskID, records: records
        ) { raw -> String? in
            let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? nil : text
        }
        guard case .parsed(let text, _) = asked else { return nil }
        try await records.upsertUserPrompt(scenarioID: scenario.id, text: text)
        return text
    }

    /// The system prompt of a condition for a value set (nil for the default condition).
    func systemPrompt(condition: String, valueSet: String) -> (ranking: [String], text: String)? {
        guard let ranking = config.conditions.first(where: { $0.name == condition })?.targetRankings[valueSet],
            let set = config.valueSet(named: valueSet)
        else { return nil }
        let lines = ranking.enumerated().map { index, value in
            "\(index + 1). \(value): \(set.definition(of: value) ?? "")"
        }
        return (ranking, PromptLibrary.template(.steering).render(["ranking": lines.joined(separator: "\n")]))
    }

    /// Whether option A shows action1 for this task: a pure function of (seed, task id).
    func action1IsA(taskID: String) -> Bool {
        var rng = StableRandom(seed: config.seed, key: "order/\(taskID)")
        return rng.next() & 1 == 0
    }

    /// The action shown as option `letter` under the task's A/B order.
    func option(_ letter: String, _ scenario: Scenario, action1IsA: Bool) -> String {
        (letter == "A") == action1IsA ? scenario.action1 : scenario.action2
    }

    /// Maps a letter back to values: `.a` in a judgment always means the action favouring value1.
    func choice(letter: String, action1IsA: Bool) -> Choice {
        (letter == "A") == action1IsA ? .a : .b
    }

    private func judgmentBase(_ scenario: Scenario, target: String, format: EvaluationFormat, condition: String)
        -> Judgment
    {
        Judgment(
            model: target, valueSet: scenario.valueSet, format: format, condition: condition,
            scenarioID: scenario.id, value1: scenario.value1, value2: scenario.value2, choice: .missing,
            targetRanking: systemPrompt(condition: condition, valueSet: scenario.valueSet)?.ranking)
    }

    func multipleChoice(
        _ scenario: Scenario, target: String, condition: String, taskID: String, records: any SweepRecords
    ) async throws {
        let template = PromptLibrary.template(.mcq)
        let firstIsA = action1IsA(taskID: taskID)
        let fields = [
            "description": scenario.description, "option_a": option("A", scenario, action1IsA: firstIsA),
            "option_b": option("B", scenario, action1IsA: firstIsA),
        ]
        var messages = [ChatMessage(.user, template.render(fields))]
        if let system = systemPrompt(condition: condition, valueSet: scenario.valueSet) {
            messages.insert(ChatMessage(.system, system.text), at: 0)
        }
        let role = SweepConfig.Role(
            model: target, temperature: Self.targetTemperature, maxTokens: Self.multipleChoiceMaxTokens)
        let asked = try await ask(
            role, roleName: "target", prompt: template, messages: messages, sample: 0, taskID: taskID, records: records
        ) { raw -> (String, Int?, Int?)? in
            guard let object = AnswerParsing.jsonObject(raw), let letter = AnswerParsing.letter(object, "choice")
            else { return nil }
            return (letter, AnswerParsing.rating(object, "rating_a"), AnswerParsing.rating(object, "rating_b"))
        }
        var record = StoredJudgment(
            id: taskID, judgment: judgmentBase(scenario, target: target, format: .mcq, condition: condition),
            action1IsA: firstIsA)
        switch asked {
        case .parsed(let (letter, ratingA, ratingB), let raw):
            record.judgment.choice = choice(letter: letter, action1IsA: firstIsA)
            record.judgment.likertA = firstIsA ? ratingA : ratingB
            record.judgment.likertB = firstIsA ? ratingB : ratingA
            record.raw = raw
        case .invalid(let raw):
            record.judgment.choice = .invalid
            record.raw = raw
        case .failed:
            record.judgment.choice = .missing
        }
        try await records.upsertJudgment(record)
    }

    func openEnded(
        _ scenario: Scenario, userMessage: String, target: String, condition: String, taskID: String,
        records: any SweepRecords
    ) async throws {
        var record = StoredJudgment(
            id: taskID, judgment: judgmentBase(scenario, target: target, format: .open, condition: condition),
            action1IsA: action1IsA(taskID: taskID))
        var messages = [ChatMessage(.user, userMessage)]
        if let system = systemPrompt(condition: condition, valueSet: scenario.valueSet) {
            messages.insert(ChatMessage(.system, system.text), at: 0)
        }
        // The target sees only the user's message (and the steering prompt): never the scenario.
        let targetRole = SweepConfig.Role(
            model: target, temperature: Self.targetTemperature, maxTokens: Self.replyMaxTokens)
        let reply = try await ask(
            targetRole, roleName: "target", prompt: nil, messages: messages, sample: 0, taskID: "\(taskID)/reply",
            records: records
        ) { raw -> String? in
            let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? nil : text
        }
        switch reply {
        case .failed:
            record.judgment.choice = .missing
            try await records.upsertJudgment(record)
            return
        case .invalid(let raw):
            record.judgment.choice = .invalid
            record.raw = raw
            try await records.upsertJudgment(record)
            return
        case .parsed(let response, _):
            let template = PromptLibrary.template(.judge)
            let firstIsA = record.action1IsA
            let fields = [
                "description": scenario.description, "option_a": option("A", scenario, action1IsA: firstIsA),
                "option_b": option("B", scenario, action1IsA: firstIsA), "response": response,
            ]
            let verdict = try await ask(
                config.roles.judge, roleName: "judge", prompt: template,
                messages: [ChatMessage(.user, template.render(fields))], sample: 0, taskID: "\(taskID)/judge",
                records: records
            ) { raw -> (String, Int?, String?)? in
                guard let object = AnswerParsing.jsonObject(raw), let letter = AnswerParsing.letter(object, "choice")
                else { return nil }
                return (letter, AnswerParsing.rating(object, "likert"), AnswerParsing.string(object, "reasoning"))
            }
            switch verdict {
            case .parsed(let (letter, likert, reasoning), let raw):
                record.judgment.choice = choice(letter: letter, action1IsA: firstIsA)
                record.likert = likert
                record.reasoning = reasoning
                record.raw = raw
            case .invalid(let raw):
                record.judgment.choice = .invalid
                record.raw = raw
            case .failed:
                record.judgment.choice = .missing
            }
            try await records.upsertJudgment(record)
        }
    }
}

/// The first unexpected error of any task (store failures, for example), rethrown after the drain.
actor FailureBox {
    private(set) var first: (any Error)?
    func record(_ error: any Error) { if first == nil { first = error } }
}
