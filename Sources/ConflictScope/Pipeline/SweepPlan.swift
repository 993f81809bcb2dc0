import Foundation
import GRDB

/// What a sweep will cost before anything is called: calls per stage and model, estimated tokens, cost
/// from the config's prices, and an ETA under the configured rate limits. Estimates, with the
/// assumptions listed in `assumptions`.
public struct SweepPlan: Sendable, JSONRepresentable {
    /// The calls of one stage on one model.
    public struct StageLoad: Sendable, Equatable {
        public var stage: ConflictScope.Stage
        /// The role making the calls: generator, filter_judge, user, target or judge.
        public var role: String
        public var model: String
        public var calls: Int
        /// Estimated prompt tokens over all calls (rendered prompt length / 4, as the rate limiter counts).
        public var inputTokens: Int
        /// Upper bound: every call uses its full max_tokens.
        public var outputTokens: Int
        public var costUSD: Double

        public var inputTokensPerCall: Int { calls == 0 ? 0 : (inputTokens + calls / 2) / calls }
        public var outputTokensPerCall: Int { calls == 0 ? 0 : outputTokens / calls }
    }

    /// One model's share of the sweep and how long it takes under its limits.
    public struct ModelLoad: Sendable, Equatable {
        public var model: String
        public var provider: String
        public var calls: Int
        public var inputTokens: Int
        public var outputTokens: Int
        public var costUSD: Double
        public var requestsPerMinute: Int?
        public var tokensPerMinute: Int?
        public var concurrency: Int
        /// Assumed seconds per call (simulated 1 s, real providers 5 s).
        public var latencySeconds: Double
        /// max(calls / rpm, tokens / tpm, input tokens / input_tpm, output tokens / output_tpm,
        /// calls x latency / concurrency / 60).
        public var etaMinutes: Double
        /// Which bound gave the ETA: rpm, tpm, input_tpm, output_tpm or concurrency.
        public var limitedBy: String
    }

    /// Imported scenarios already in the store (they are evaluated without generation), by value set.
    public struct ImportedScenarios: Sendable, Equatable {
        public var kept: [String: Int] = [:]
        /// Kept scenarios whose user prompt was imported too (no user-prompt call needed).
        public var withUserPrompt: [String: Int] = [:]
        public init(kept: [String: Int] = [:], withUserPrompt: [String: Int] = [:]) {
            self.kept = kept
            self.withUserPrompt = withUserPrompt
        }
    }

    public var stages: [StageLoad]
    public var models: [ModelLoad]
    /// Generation rounds assumed per value pair (for the value set that needs the most).
    public var rounds: Int
    /// Scenarios assumed to be evaluated (all generated ones kept, plus imported kept ones).
    public var scenarios: Int
    public var totalCalls: Int
    public var totalCostUSD: Double
    /// The busiest model's ETA (models are called in parallel).
    public var etaMinutes: Double
    public var assumptions: [String]

    /// Seconds per call assumed for the concurrency bound.
    public static let simulatedLatencySeconds = 1.0
    public static let realLatencySeconds = 5.0

    public init(config: SweepConfig, imported: ImportedScenarios = ImportedScenarios()) {
        var stages: [StageLoad] = []
        func add(_ stage: ConflictScope.Stage, _ model: String, calls: Int, input: Int, maxTokens asked: Int) {
            guard calls > 0 || stage == .artifacts else { return }
            let role = stage.role.rawValue
            let price = config.models[model]
            // As sent: a reasoning model's short budgets are raised to its floor.
            let maxTokens = price?.tokenBudget(asked) ?? asked
            let cost =
                (Double(input) * (price?.inputUSDPerMillionTokens ?? 0)
                    + Double(calls * maxTokens) * (price?.outputUSDPerMillionTokens ?? 0)) / 1e6
            if let index = stages.firstIndex(where: { $0.stage == stage && $0.model == model }) {
                stages[index].calls += calls
                stages[index].inputTokens += input
                stages[index].outputTokens += calls * maxTokens
                stages[index].costUSD += cost
            } else {
                stages.append(
                    StageLoad(
                        stage: stage, role: role, model: model, calls: calls, inputTokens: input,
                        outputTokens: calls * maxTokens, costUSD: cost))
            }
        }

        let pipeline = config.generation.pipeline
        let callsPerRound = pipeline == .direct ? 1 : ScenarioTemplate.allCases.count
        let perRound = callsPerRound * config.generation.outlinesPerCall
        func rounds(_ perPair: Int) -> Int {
            perPair == 0 ? 0 : min(config.generation.maxRounds, max(1, (perPair + perRound - 1) / perRound))
        }
        let roles = config.roles
        let open = config.formats.contains(.open)
        let mcq = config.formats.contains(.mcq)
        let filterChecks = config.generation.filter ? Self.filterCallsPerScenario : 0
        var scenarioTotal = 0
        for set in config.valueSets {
            let perPair = config.scenariosPerPair(for: set.name)
            let rounds = rounds(perPair)
            let pairs = set.pairs.count
            let generated = pairs * perPair
            let importedKept = imported.kept[set.name] ?? 0
            let scenarios = generated + importedKept
            scenarioTotal += scenarios
            // A typical pair's definitions: every pair's prompts are rendered and averaged.
            if generated > 0 {
                var outlineTokens = 0
                var detailTokens = 0
                var filterTokens = 0
                for (value1, value2) in set.pairs {
                    var fields = SweepRunner.definitions(set, value1, value2)
                    fields["count"] = String(config.generation.outlinesPerCall)
                    fields["domains"] = ScenarioDetailsStage.domainList
                    let writing: PromptName =
                        switch pipeline {
                        case .twoStage: .outline
                        case .singleStage: .singleStage
                        case .direct: .direct
                        }
                    for template in ScenarioTemplate.allCases.prefix(callsPerRound) {
                        fields["template"] = PromptLibrary.template(template.prompt).instructions
                        fields["action_roles"] = ScenarioDetailsStage.actionRoles(template)
                        outlineTokens += Self.tokens(PromptLibrary.template(writing).render(fields))
                    }
                    fields["context"] = Filler.context
                    fields["action_opportunity"] = Filler.actionOpportunity
                    fields["good"] = Filler.goal
                    fields["harm"] = Filler.goal
                    detailTokens += Self.tokens(PromptLibrary.template(.scenario).render(fields))
                    fields["description"] = Filler.description
                    fields["action1"] = Filler.action
                    fields["action2"] = Filler.action
                    fields["value"] = value1
                    fields["definition"] = set.definition(of: value1) ?? ""
                    for check in Self.filterPrompts {
                        filterTokens += Self.tokens(PromptLibrary.template(check).render(fields))
                    }
                }
                add(
                    .generation, roles.generator.model, calls: pairs * callsPerRound * rounds,
                    input: outlineTokens * rounds, maxTokens: roles.generator.maxTokens)
                if pipeline == .twoStage {
                    add(
                        .scenarioDetails, roles.generator.model, calls: generated, input: detailTokens * perPair,
                        maxTokens: roles.generator.maxTokens)
                }
                add(
                    .filter, roles.filterJudge.model, calls: generated * filterChecks,
                    input: filterChecks == 0 ? 0 : filterTokens * perPair, maxTokens: roles.filterJudge.maxTokens)
            }
            if open {
                let prompts = generated + importedKept - min(importedKept, imported.withUserPrompt[set.name] ?? 0)
                let text = PromptLibrary.template(.user).render([
                    "first_name": "Maria", "description": Filler.description,
                    "profile": "\(Filler.persona)\n\(Filler.background)\nGoal: \(Filler.goal)",
                ])
                add(
                    .userPrompts, roles.user.model, calls: prompts, input: prompts * Self.tokens(text),
                    maxTokens: roles.user.maxTokens)
                add(.artifacts, roles.user.model, calls: 0, input: 0, maxTokens: roles.user.maxTokens)
            }
            for condition in config.conditions {
                // Every target call carries the condition's system prompt.
                let system = Self.systemPrompt(condition, set, config: config)
                for target in config.targets {
                    if mcq {
                        let text = PromptLibrary.template(.mcq).render([
                            "description": Filler.description, "option_a": Filler.action, "option_b": Filler.action,
                        ])
                        add(
                            .multipleChoice, target, calls: scenarios,
                            input: scenarios * Self.tokens(text, system: system),
                            maxTokens: config.settings(target: target, call: .mcq).maxTokens)
                        let rating = PromptLibrary.template(.likert).render([
                            "description": Filler.description, "action": Filler.action,
                        ])
                        add(
                            .likert, target, calls: 2 * scenarios,
                            input: 2 * scenarios * Self.tokens(rating, system: system),
                            maxTokens: config.settings(target: target, call: .likert).maxTokens)
                    }
                    if open {
                        add(
                            .openEnded, target, calls: scenarios,
                            input: scenarios * Self.tokens(Filler.userMessage, system: system),
                            maxTokens: config.settings(target: target, call: .open).maxTokens)
                        let judge = PromptLibrary.template(.judge).render([
                            "conversation": "User: \(Filler.userMessage)\n\nAssistant: \(Filler.reply)",
                            "option_a": Filler.action, "option_b": Filler.action,
                        ])
                        add(
                            .judge, roles.judge.model, calls: scenarios, input: scenarios * Self.tokens(judge),
                            maxTokens: roles.judge.maxTokens)
                    }
                }
            }
        }
        self.stages = stages.sorted { ($0.stage, $0.model) < ($1.stage, $1.model) }

        var loads: [ModelLoad] = []
        for name in Set(stages.map(\.model)).sorted() {
            let own = stages.filter { $0.model == name }
            let calls = own.reduce(0) { $0 + $1.calls }
            let input = own.reduce(0) { $0 + $1.inputTokens }
            let output = own.reduce(0) { $0 + $1.outputTokens }
            let providerName = config.models[name]?.provider ?? ""
            let provider = config.providers[providerName]
            let latency =
                provider?.kind == .simulated ? Self.simulatedLatencySeconds : Self.realLatencySeconds
            let concurrency = provider?.concurrency ?? 8
            var bounds: [(String, Double)] = [
                ("concurrency", Double(calls) * latency / Double(concurrency) / 60)
            ]
            if let rpm = provider?.requestsPerMinute { bounds.append(("rpm", Double(calls) / Double(rpm))) }
            if let tpm = provider?.tokensPerMinute { bounds.append(("tpm", Double(input + output) / Double(tpm))) }
            if let tpm = provider?.inputTokensPerMinute { bounds.append(("input_tpm", Double(input) / Double(tpm))) }
            if let tpm = provider?.outputTokensPerMinute { bounds.append(("output_tpm", Double(output) / Double(tpm))) }
            let binding = bounds.max { $0.1 < $1.1 }!
            loads.append(
                ModelLoad(
                    model: name, provider: providerName, calls: calls, inputTokens: input, outputTokens: output,
                    costUSD: own.reduce(0) { $0 + $1.costUSD }, requestsPerMinute: provider?.requestsPerMinute,
                    tokensPerMinute: provider?.tokensPerMinute, concurrency: concurrency, latencySeconds: latency,
                    etaMinutes: binding.1, limitedBy: binding.0))
        }
        let perPair = config.valueSets.map { config.scenariosPerPair(for: $0.name) }.max() ?? 0
        self.models = loads
        self.rounds = rounds(perPair)
        self.scenarios = scenarioTotal
        self.totalCalls = stages.reduce(0) { $0 + $1.calls }
        self.totalCostUSD = stages.reduce(0) { $0 + $1.costUSD }
        self.etaMinutes = loads.map(\.etaMinutes).max() ?? 0

        var notes: [String] = []
        if perPair > 0 {
            notes.append(
                "Generation: up to \(self.rounds) round\(self.rounds == 1 ? "" : "s") per value pair ("
                    + "\(callsPerRound) call\(callsPerRound == 1 ? "" : "s") of \(config.generation.outlinesPerCall) "
                    + "each per round, enough for "
                    + "scenarios_per_pair = \(perPair)); deduplication may need more rounds, up to max_rounds = "
                    + "\(config.generation.maxRounds).")
            notes.append(
                "Every generated scenario is assumed to pass the filter and be evaluated; rejected ones save their "
                    + "evaluation calls.")
        }
        let importedTotal = config.valueSets.reduce(0) { $0 + (imported.kept[$1.name] ?? 0) }
        if perPair == 0 {
            notes.append(
                "scenarios_per_pair = 0: nothing is generated; only kept scenarios imported into the store are "
                    + "evaluated"
                    + (importedTotal == 0 ? ", and the store has none, so the sweep makes no calls." : "."))
        }
        if importedTotal > 0 {
            notes.append(
                "\(importedTotal) imported kept scenarios in the store are evaluated without "
                    + "generation; those with an imported user prompt need no user-prompt call.")
        }
        notes.append(
            "Input tokens: rendered prompt length / 4 with typical filler for generated text (descriptions of "
                + "~\(Filler.words(Filler.description)) words, actions of ~\(Filler.words(Filler.action)), user "
                + "messages of ~\(Filler.words(Filler.userMessage)), replies of ~\(Filler.words(Filler.reply)))."
        )
        notes.append(
            "Output tokens and cost are upper bounds: every call is counted at its role's or target's max_tokens.")
        if open {
            notes.append(
                "Artifact calls are made only when a user message describes an artifact (rare: 5 of the paper's "
                    + "2,892 messages), so none are counted; open-ended counts assume one turn"
                    + (config.evaluation.maxTurns > 1
                        ? " (max_turns = \(config.evaluation.maxTurns) adds a user, target and judge call per extra turn)."
                        : "."))
        }
        notes.append("No re-asks of unparseable answers, no failed calls, and nothing already in the store's cache.")
        notes.append(
            "ETA per model: max(calls / rpm, tokens / tpm, calls x latency / concurrency) with an assumed latency "
                + "of \(Self.simulatedLatencySeconds) s per simulated call and \(Self.realLatencySeconds) s per real "
                + "call; models run in parallel and the sweep's ETA is the busiest model's.")
        if config.roles.embedder != nil {
            notes.append("Embedding calls for deduplication are not counted.")
        }
        self.assumptions = notes
    }

    /// The filter's prompts per scenario: six checks, value guidance asked once per value.
    static let filterPrompts: [PromptName] = [
        .filterRealism, .filterSpecificity, .filterFeasibility, .filterValueGuidance, .filterValueGuidance,
        .filterImpossibility, .filterGenuineDilemma,
    ]
    public static let filterCallsPerScenario = filterPrompts.count

    /// The system prompt of a condition for a value set, as the sweep sends it.
    private static func systemPrompt(_ condition: SweepConfig.Condition, _ set: ValueSet, config: SweepConfig)
        -> String
    {
        guard let ranking = condition.targetRankings[set.name] else { return config.evaluation.systemPrompt }
        return SweepRunner.steeringPrompt(ranking: ranking, set: set)
    }

    /// Prompt tokens as the rate limiter estimates them.
    static func tokens(_ user: String, system: String? = nil) -> Int {
        var messages = [ChatMessage(.user, user)]
        if let system { messages.insert(ChatMessage(.system, system), at: 0) }
        return ChatRequest(model: "", messages: messages, temperature: 0, maxTokens: 1, sampleIndex: 0)
            .estimatedPromptTokens
    }

    // MARK: Output

    public var json: JSONValue {
        .object([
            (
                "stages",
                .array(
                    stages.map { stage in
                        .object([
                            ("stage", .string(stage.stage.rawValue)), ("role", .string(stage.role)),
                            ("model", .string(stage.model)), ("calls", .int(stage.calls)),
                            ("input_tokens_per_call", .int(stage.inputTokensPerCall)),
                            ("output_tokens_per_call_max", .int(stage.outputTokensPerCall)),
                            ("input_tokens", .int(stage.inputTokens)), ("output_tokens_max", .int(stage.outputTokens)),
                            ("cost_usd", .number(stage.costUSD)),
                        ])
                    })
            ),
            (
                "models",
                .array(
                    models.map { model in
                        .object([
                            ("model", .string(model.model)), ("provider", .string(model.provider)),
                            ("calls", .int(model.calls)), ("input_tokens", .int(model.inputTokens)),
                            ("output_tokens_max", .int(model.outputTokens)), ("cost_usd", .number(model.costUSD)),
                            ("rpm", model.requestsPerMinute.map { .int($0) } ?? .null),
                            ("tpm", model.tokensPerMinute.map { .int($0) } ?? .null),
                            ("concurrency", .int(model.concurrency)), ("latency_s", .number(model.latencySeconds)),
                            ("eta_minutes", .number(model.etaMinutes)), ("limited_by", .string(model.limitedBy)),
                        ])
                    })
            ),
            ("rounds", .int(rounds)), ("scenarios", .int(scenarios)), ("total_calls", .int(totalCalls)),
            ("total_cost_usd", .number(totalCostUSD)), ("eta_minutes", .number(etaMinutes)),
            ("assumptions", .array(assumptions.map { .string($0) })),
        ])
    }

    public func table() -> String {
        var out = "Plan: \(scenarios) scenarios evaluated, "
        out += rounds == 0 ? "no generation" : "\(rounds) generation round\(rounds == 1 ? "" : "s") per value pair"
        out += "\n\n"
        let modelWidth = max(5, stages.map(\.model.count).max() ?? 0)
        out +=
            "stage             role          " + "model".padding(toLength: modelWidth, withPad: " ", startingAt: 0)
            + "     calls  in/call  out/call(max)   cost_usd\n"
        for stage in stages {
            out += stage.stage.rawValue.padding(toLength: 18, withPad: " ", startingAt: 0)
            out += stage.role.padding(toLength: 14, withPad: " ", startingAt: 0)
            out += stage.model.padding(toLength: modelWidth, withPad: " ", startingAt: 0)
            out += String(stage.calls).leftPadded(10) + String(stage.inputTokensPerCall).leftPadded(9)
            out +=
                String(stage.outputTokensPerCall).leftPadded(15) + String(format: "%.4f", stage.costUSD).leftPadded(11)
            out += "\n"
        }
        out += "\nPer model\n"
        for model in models {
            out +=
                "  \(model.model) (\(model.provider)): \(model.calls) calls, \(model.inputTokens) input tokens, "
                + "<= \(model.outputTokens) output tokens, <= $\(String(format: "%.4f", model.costUSD)), "
                + "ETA \(String(format: "%.1f", model.etaMinutes)) min (limited by \(model.limitedBy))\n"
        }
        out +=
            "\nTotal: \(totalCalls) calls, <= $\(String(format: "%.4f", totalCostUSD)), ETA "
            + "\(String(format: "%.1f", etaMinutes)) min\n\nAssumptions\n"
        for note in assumptions { out += "  - \(note)\n" }
        return out
    }
}

/// Typical text standing in for what models will write, for token estimates.
enum Filler {
    static let context = text(words: 40)
    static let actionOpportunity = text(words: 40)
    static let description = text(words: 160)
    static let persona = text(words: 20)
    static let background = text(words: 50)
    static let goal = text(words: 25)
    static let action = text(words: 40)
    static let userMessage = text(words: 150)
    static let reply = text(words: 350)

    private static let source = """
        The regional clinic deployed the assistant to answer patient questions about appointments, billing and \
        medication, and this evening a caregiver named Maria Alvarez asks for detailed help with her father's \
        prescription schedule after a confusing hospital discharge in Porto last Thursday.
        """.split(separator: " ")

    static func text(words: Int) -> String {
        (0..<words).map { String(source[$0 % source.count]) }.joined(separator: " ")
    }

    static func words(_ text: String) -> Int { text.split(separator: " ").count }
}

extension ResultStore {
    /// Kept imported scenarios per value set, and how many of them have a user prompt.
    public func importedScenarioCounts() throws -> SweepPlan.ImportedScenarios {
        try database.read { db in
            var counts = SweepPlan.ImportedScenarios()
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT s.value_set, COUNT(*) AS n, COUNT(p.scenario_id) AS prompts
                    FROM scenario s LEFT JOIN user_prompt p ON p.scenario_id = s.id
                    WHERE s.outline_id = ? AND s.status = 'kept' GROUP BY s.value_set
                    """, arguments: [Scenario.importedOutlineID])
            {
                counts.kept[row["value_set"]] = row["n"]
                counts.withUserPrompt[row["value_set"]] = row["prompts"]
            }
            return counts
        }
    }
}
