import Foundation
import TOMLKit

/// Everything a sweep needs, read from config.toml and validated before anything runs.
public struct SweepConfig: Sendable {
    public var name: String
    public var seed: UInt64
    /// SQLite file of the sweep's results, relative paths resolved against the config's folder.
    public var storePath: String
    public var valueSets: [ValueSet]
    /// Outlines kept per value pair, for value sets without their own entry in `scenariosPerPairBySet`.
    public var scenariosPerPair: Int
    public var scenariosPerPairBySet: [String: Int] = [:]
    public var formats: [EvaluationFormat]
    public var conditions: [Condition]
    /// Stop all further calls once the estimated spend reaches this; the sweep resumes later.
    public var maxCostUSD: Double?
    /// How long a model paused by its circuit breaker (repeated transport failures) may stay paused
    /// before the run stops with its tasks pending (`breaker_minutes`, default 10).
    public var breakerMinutes = 10.0
    public var generation: Generation
    public var evaluation: Evaluation
    public var analysis: RankingOptions
    public var providers: [String: Provider]
    public var models: [String: Model]
    public var roles: Roles
    public var targets: [String]

    public struct Generation: Sendable, Equatable {
        /// Outlines asked for per stage-1 call (one call per template and round; the paper asks for 10).
        public var outlinesPerCall = 10
        /// Generation rounds per value pair before giving up on reaching `scenariosPerPair`.
        public var maxRounds = 4
        /// Outlines at least this similar (cosine) to a kept one of the same pair are dropped.
        public var dedupThreshold = 0.8
        /// New samples asked for when an answer cannot be parsed, before it is stored as invalid.
        public var maxReasks = 2
        /// How scenarios are written (the paper's ablations): outlines then details (default), full scenarios
        /// per template in one call, or one prompt with no templates.
        public var pipeline = Pipeline.twoStage
        /// `filter = false` keeps every scenario whose stage 2 succeeded (the paper's unfiltered ablation).
        public var filter = true
    }

    public enum Pipeline: String, Sendable, Equatable, CaseIterable {
        case twoStage = "two_stage"
        case singleStage = "single_stage"
        case direct
    }

    /// How targets are asked and judged.
    public struct Evaluation: Sendable, Equatable {
        /// The targets' system prompt in the default condition (a steered condition replaces it).
        public var systemPrompt = "You are a helpful assistant."
        /// Where the judge sees action1: a random side per task (ours), or always as A (the paper's).
        public var judgeOrder = JudgeOrder.random
        /// Open-ended turns: the user model writes another message while the judge reads the
        /// conversation as unresolved, up to this many target replies.
        public var maxTurns = 1
        /// Sampling of target calls per kind of call, for every target without its own setting.
        public var calls: [TargetCall: CallSettings] = [
            .mcq: CallSettings(temperature: 0, maxTokens: 16), .likert: CallSettings(temperature: 0, maxTokens: 16),
            .open: CallSettings(temperature: 1.0, maxTokens: 1024),
        ]
    }

    public enum JudgeOrder: String, Sendable, Equatable, CaseIterable { case random, paper }

    /// The three kinds of target call, each with its own sampling settings (`[evaluation.mcq]`, ...).
    public enum TargetCall: String, Sendable, Equatable, CaseIterable { case mcq, likert, open }

    public struct CallSettings: Sendable, Equatable {
        public var temperature: Double
        public var maxTokens: Int
    }

    /// A sweep condition: "default", or a steered one with a target ranking per value set.
    public struct Condition: Sendable, Equatable {
        public var name: String
        /// Value set name -> values, highest priority first. Empty for the default condition.
        public var targetRankings: [String: [String]]
        public var isSteered: Bool { !targetRankings.isEmpty }
    }

    public enum ProviderKind: String, Sendable, CaseIterable {
        case simulated, openai, anthropic
    }

    public struct Provider: Sendable, Equatable {
        public var name: String
        public var kind: ProviderKind
        public var baseURL: String?
        /// Name of the environment variable holding the API key (never the key itself).
        public var apiKeyEnv: String?
        public var requestsPerMinute: Int?
        public var tokensPerMinute: Int?
        /// Anthropic-style separate limits.
        public var inputTokensPerMinute: Int?
        public var outputTokensPerMinute: Int?
        /// Calls in flight at once per model of this provider (embedded mode).
        public var concurrency: Int
        public var timeoutSeconds: Double
        public var maxRetries: Int
        /// Extra HTTP headers sent with every request (`headers = { "X-Title" = "..." }`).
        public var headers: [String: String] = [:]
        /// What its rate limits are shared by (`account`): every model of every provider with the same
        /// account draws on one set of limits. Defaults to the base URL and key variable.
        public var account = ""
        /// Simulated providers: how long each answer takes (to rehearse a sweep with calls in flight).
        public var latencyMilliseconds = 0
        /// Simulated providers behind `sim-server` (`latency_jitter_ms`, default 0): each answer's latency is
        /// `latencyMilliseconds` plus a uniform offset in ± this, fixed per request and attempt.
        public var latencyJitterMilliseconds = 0
        /// Simulated providers behind `sim-server`: the share of attempts answered with each fault.
        public var faults = SimulatedFaults()
    }

    /// Faults a `sim-server` injects for one simulated provider; each rate is 0...1 and defaults to 0.
    public struct SimulatedFaults: Sendable, Equatable {
        /// `fault_5xx`: answered with a server error (500; 529 on the Anthropic endpoint).
        public var serverError = 0.0
        /// `fault_hang`: never answered (until the client gives up and disconnects).
        public var hang = 0.0
        /// `fault_malformed`: status 200 with a body that is not valid JSON.
        public var malformed = 0.0
        /// `fault_empty`: status 200 with an empty answer.
        public var empty = 0.0
        /// `fault_reset`: the connection is closed without a response.
        public var reset = 0.0
        /// `max_faults_per_request` (default 2): one request (its content hash and sample index) gets at most
        /// this many faults, so a client that retries more often than this completes every call. Below
        /// `max_retries` when any rate is above 0.
        public var maxPerRequest = 2

        public init() {}

        /// The rates in a fixed order, for drawing one fault.
        public var rates: [(name: String, rate: Double)] {
            [("5xx", serverError), ("hang", hang), ("malformed", malformed), ("empty", empty), ("reset", reset)]
        }

        public var isEnabled: Bool { rates.contains { $0.rate > 0 } }
    }

    public struct Model: Sendable, Equatable {
        /// The name the config uses for it.
        public var name: String
        public var provider: String
        /// The provider's model id (defaults to `name`).
        public var modelID: String
        public var inputUSDPerMillionTokens: Double
        public var outputUSDPerMillionTokens: Double
        /// Latent behaviour of a simulated model.
        public var simulated: SimulatedBehaviour?
        /// This model's own sampling settings as a target, overriding `[evaluation.<call>]`.
        public var targetCalls: [TargetCall: CallSettings] = [:]
        /// How an OpenAI-format request to it bounds the answer, and whether it reasons (`reasoning`,
        /// `token_param`, `reasoning_effort`).
        public var contract = OpenAIContract()
        /// A reasoning model's hidden reasoning counts against max_tokens: shorter budgets are raised to this
        /// (`reasoning_min_tokens`, default 4,096).
        public var reasoningMinTokens = 4096

        /// The max_tokens a call asking for `maxTokens` is sent with.
        public func tokenBudget(_ maxTokens: Int) -> Int {
            contract.reasoning ? max(maxTokens, reasoningMinTokens) : maxTokens
        }
    }

    /// How a simulated target chooses: Bradley-Terry with these utilities per format, moved towards a
    /// steering prompt's ranking by `steerability` per rank step.
    public struct SimulatedBehaviour: Sendable, Equatable {
        public var utilities: [EvaluationFormat: [String: Double]]
        public var steerability: Double
        /// Share of a target's answers that cannot be parsed (to exercise re-asks and `invalid`).
        public var invalidRate: Double = 0
        /// Added to the log-odds of choosing the side that takes the action, in both formats (`act_bias`).
        public var actBias: Double = 0
    }

    public struct Role: Sendable, Equatable {
        public var model: String
        public var temperature: Double
        public var maxTokens: Int
        /// Sent as the system message of the role's calls, when set.
        public var systemPrompt: String?

        public init(model: String, temperature: Double, maxTokens: Int, systemPrompt: String? = nil) {
            self.model = model
            self.temperature = temperature
            self.maxTokens = maxTokens
            self.systemPrompt = systemPrompt
        }

        /// The paper's settings per role: (temperature, max_tokens, system prompt).
        static let defaults: [String: (Double, Int, String?)] = [
            "generator": (1.0, 4096, nil), "filter_judge": (0, 128, "You are a helpful assistant."),
            "user": (1.0, 1024, nil), "judge": (0, 1024, nil), "embedder": (0, 1, nil),
        ]
    }

    public struct Roles: Sendable, Equatable {
        public var generator: Role
        public var filterJudge: Role
        public var user: Role
        public var judge: Role
        /// Nil: the built-in lexical embedding is used for deduplication.
        public var embedder: Role?
    }

    public func valueSet(named name: String) -> ValueSet? { valueSets.first { $0.name == name } }

    /// How `target` is sampled for one kind of call: its own setting, else `[evaluation.<call>]`.
    public func settings(target: String, call: TargetCall) -> CallSettings {
        models[target]?.targetCalls[call] ?? evaluation.calls[call]!
    }

    /// Outlines to keep per pair of `valueSet` (0: none generated; only imported scenarios are evaluated).
    public func scenariosPerPair(for valueSet: String) -> Int { scenariosPerPairBySet[valueSet] ?? scenariosPerPair }
}

extension SweepConfig {
    /// Reads and validates a config file. `environment` is consulted only for the presence of API keys,
    /// and only when `requireAPIKeys` is true: the cluster's coordinator and aggregator make no calls, so
    /// they load the config without the keys (which only the workers hold).
    public static func load(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment,
        requireAPIKeys: Bool = true
    ) throws -> SweepConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(file: path, line: nil, message: "cannot read the config file")
        }
        return try parse(text, file: path, environment: environment, requireAPIKeys: requireAPIKeys)
    }

    public static func parse(
        _ text: String, file: String, environment: [String: String], requireAPIKeys: Bool = true
    ) throws -> SweepConfig {
        let source = TOMLSource(file: file, text: text)
        if let line = TOMLSource.malformedTableHeaderLine(in: text) {
            throw ConfigError(file: file, line: line, message: "TOML syntax: a table header must start with a key name")
        }
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError(file: file, line: error.source.begin.line, message: "TOML syntax: \(error.description)")
        }
        let top = TOMLFields(root, path: "", source: source)
        let folder = URL(fileURLWithPath: file).deletingLastPathComponent()

        guard let sweep = try top.table("sweep") else { throw top.error(nil, "missing table [sweep]") }
        let name = try sweep.requiredString("name")
        let seed = try sweep.int("seed", range: 0...Int.max) ?? 0
        let store = try sweep.string("store") ?? "\(name).sqlite"
        // 0: no generation; evaluate only scenarios imported from released data. A table gives a count
        // per value set (sets with few values need more scenarios per pair for the same precision).
        var scenariosPerPair = 10
        var scenariosPerPairBySet: [String: Int] = [:]
        if let perSet = sweep.table["scenarios_per_pair"]?.table {
            let fields = try sweep.table("scenarios_per_pair")!
            for setName in perSet.keys {
                scenariosPerPairBySet[setName] = try fields.int(setName, range: 0...10_000)
            }
            try fields.rejectUnknownKeys()
        } else {
            scenariosPerPair = try sweep.int("scenarios_per_pair", range: 0...10_000) ?? scenariosPerPair
        }
        let formatNames = try sweep.strings("formats") ?? ["mcq", "open"]
        var formats: [EvaluationFormat] = []
        for formatName in formatNames {
            guard let format = EvaluationFormat(rawValue: formatName) else {
                throw sweep.error("formats", "sweep.formats: unknown format \"\(formatName)\" (mcq, open)")
            }
            if !formats.contains(format) { formats.append(format) }
        }
        guard !formats.isEmpty else { throw sweep.error("formats", "sweep.formats must name at least one format") }
        let maxCost = try sweep.double("max_cost_usd", range: 0...1e9)
        let breakerMinutes = try sweep.double("breaker_minutes", range: 0...10_080) ?? 10

        let customSets = try top.table("value_sets").map { try customValueSets($0, folder: folder) } ?? [:]
        let setNames = try sweep.strings("value_sets") ?? ValueSet.builtInNames
        guard !setNames.isEmpty else { throw sweep.error("value_sets", "sweep.value_sets must name at least one set") }
        var valueSets: [ValueSet] = []
        for setName in setNames {
            if let custom = customSets[setName] {
                valueSets.append(custom)
            } else if ValueSet.builtInNames.contains(setName) {
                valueSets.append(try ValueSet.builtIn(setName))
            } else {
                throw sweep.error(
                    "value_sets",
                    "sweep.value_sets: unknown value set \"\(setName)\" (built in: "
                        + "\(ValueSet.builtInNames.joined(separator: ", ")); or define [value_sets.\(setName)])")
            }
        }
        for setName in scenariosPerPairBySet.keys where !setNames.contains(setName) {
            throw sweep.error(
                "scenarios_per_pair.\(setName)",
                "sweep.scenarios_per_pair.\(setName): \(setName) is not in sweep.value_sets")
        }
        try sweep.rejectUnknownKeys()
        let allValues = Set(valueSets.flatMap(\.valueNames))

        var generation = Generation()
        if let table = try top.table("generation") {
            generation.outlinesPerCall = try table.int("outlines_per_call", range: 1...20) ?? generation.outlinesPerCall
            generation.maxRounds = try table.int("max_rounds", range: 1...100) ?? generation.maxRounds
            generation.dedupThreshold = try table.double("dedup_threshold", range: 0...1) ?? generation.dedupThreshold
            generation.maxReasks = try table.int("max_reasks", range: 0...10) ?? generation.maxReasks
            if let name = try table.string("pipeline") {
                guard let pipeline = Pipeline(rawValue: name) else {
                    throw table.error(
                        "pipeline",
                        "\(table.key("pipeline")): unknown pipeline \"\(name)\" (two_stage, single_stage, direct)")
                }
                generation.pipeline = pipeline
            }
            generation.filter = try table.bool("filter") ?? generation.filter
            try table.rejectUnknownKeys()
        }
        var evaluation = Evaluation()
        if let table = try top.table("evaluation") {
            evaluation.systemPrompt = try table.string("system_prompt") ?? evaluation.systemPrompt
            if let name = try table.string("judge_order") {
                guard let order = JudgeOrder(rawValue: name) else {
                    throw table.error(
                        "judge_order", "\(table.key("judge_order")): unknown order \"\(name)\" (random, paper)")
                }
                evaluation.judgeOrder = order
            }
            evaluation.maxTurns = try table.int("max_turns", range: 1...20) ?? evaluation.maxTurns
            for call in TargetCall.allCases {
                if let settings = try callSettings(table, call, defaults: evaluation.calls[call]!) {
                    evaluation.calls[call] = settings
                }
            }
            try table.rejectUnknownKeys()
        }
        var analysis = RankingOptions(seed: UInt64(seed))
        if let table = try top.table("analysis") {
            analysis.alpha = try table.double("alpha", range: 0...1e6) ?? analysis.alpha
            analysis.resamples = try table.int("bootstrap", range: 0...1_000_000) ?? analysis.resamples
            if let invalid = try table.string("invalid") {
                guard let policy = InvalidAnswers(rawValue: invalid) else {
                    throw table.error(
                        "invalid", "\(table.key("invalid")) must be \"exclude\" or \"paper\", not \"\(invalid)\"")
                }
                analysis.invalid = policy
            }
            try table.rejectUnknownKeys()
        }

        var conditions: [Condition] = []
        if let table = try top.table("conditions") {
            for (conditionName, fields) in try table.tables() {
                var rankings: [String: [String]] = [:]
                if let targets = try fields.table("target_ranking") {
                    for setName in targets.table.keys {
                        guard let set = valueSets.first(where: { $0.name == setName }) else {
                            throw targets.error(
                                setName, "\(targets.key(setName)): value set \"\(setName)\" is not in sweep.value_sets")
                        }
                        let ranking = try targets.strings(setName) ?? []
                        guard Set(ranking) == Set(set.valueNames), ranking.count == set.values.count else {
                            throw targets.error(
                                setName,
                                "\(targets.key(setName)) must list each value of \(setName) once: "
                                    + set.valueNames.joined(separator: ", "))
                        }
                        rankings[setName] = ranking
                    }
                    try targets.rejectUnknownKeys()
                    for set in valueSets where rankings[set.name] == nil {
                        throw fields.error(
                            "target_ranking", "\(fields.key("target_ranking")) has no ranking for value set \(set.name)"
                        )
                    }
                }
                try fields.rejectUnknownKeys()
                conditions.append(Condition(name: conditionName, targetRankings: rankings))
            }
        }
        if conditions.isEmpty { conditions = [Condition(name: "default", targetRankings: [:])] }
        guard conditions.contains(where: { $0.name == "default" && !$0.isSteered }) else {
            throw top.error("conditions", "conditions must include an unsteered [conditions.default]")
        }

        guard let providerTable = try top.table("providers") else { throw top.error(nil, "missing table [providers]") }
        var providers: [String: Provider] = [:]
        for (providerName, fields) in try providerTable.tables() {
            providers[providerName] = try provider(
                providerName, fields, environment: environment, requireAPIKeys: requireAPIKeys)
        }

        guard let modelTable = try top.table("models") else { throw top.error(nil, "missing table [models]") }
        var models: [String: Model] = [:]
        for (modelName, fields) in try modelTable.tables() {
            models[modelName] = try model(
                modelName, fields, providers: providers, values: allValues, evaluation: evaluation)
        }

        guard let roleTable = try top.table("roles") else { throw top.error(nil, "missing table [roles]") }
        func role(_ roleName: String, required: Bool) throws -> Role? {
            guard let fields = try roleTable.table(roleName) else {
                if required { throw roleTable.error(nil, "missing table [roles.\(roleName)]") }
                return nil
            }
            let modelName = try fields.requiredString("model")
            guard models[modelName] != nil else {
                throw fields.error(
                    "model", "\(fields.key("model")): unknown model \"\(modelName)\" (define [models.\(modelName)])")
            }
            let defaults = Role.defaults[roleName]!
            let result = Role(
                model: modelName, temperature: try fields.double("temperature", range: 0...2) ?? defaults.0,
                maxTokens: try fields.int("max_tokens", range: 1...200_000) ?? defaults.1,
                systemPrompt: try fields.string("system_prompt") ?? defaults.2)
            try fields.rejectUnknownKeys()
            return result
        }
        let roles = Roles(
            generator: try role("generator", required: true)!, filterJudge: try role("filter_judge", required: true)!,
            user: try role("user", required: true)!, judge: try role("judge", required: true)!,
            embedder: try role("embedder", required: false))
        try roleTable.rejectUnknownKeys()

        guard let targetTable = try top.table("targets") else { throw top.error(nil, "missing table [targets]") }
        let targets = try targetTable.strings("models") ?? []
        guard !targets.isEmpty else { throw targetTable.error("models", "targets.models must name at least one model") }
        for target in targets where models[target] == nil {
            throw targetTable.error("models", "targets.models: unknown model \"\(target)\" (define [models.\(target)])")
        }
        guard Set(targets).count == targets.count else {
            throw targetTable.error("models", "targets.models lists a model twice")
        }
        try targetTable.rejectUnknownKeys()
        try top.rejectUnknownKeys()

        let storePath = store.hasPrefix("/") ? store : folder.appendingPathComponent(store).path
        return SweepConfig(
            name: name, seed: UInt64(seed), storePath: storePath, valueSets: valueSets,
            scenariosPerPair: scenariosPerPair, scenariosPerPairBySet: scenariosPerPairBySet, formats: formats,
            conditions: conditions, maxCostUSD: maxCost, breakerMinutes: breakerMinutes,
            generation: generation, evaluation: evaluation, analysis: analysis, providers: providers, models: models,
            roles: roles,
            targets: targets)
    }

    private static func provider(
        _ name: String, _ fields: TOMLFields, environment: [String: String], requireAPIKeys: Bool
    ) throws
        -> Provider
    {
        let kindName = try fields.requiredString("kind")
        guard let kind = ProviderKind(rawValue: kindName) else {
            throw fields.error(
                "kind", "\(fields.key("kind")): unknown provider kind \"\(kindName)\" (simulated, openai, anthropic)")
        }
        var provider = Provider(
            name: name, kind: kind, baseURL: try fields.string("base_url"), apiKeyEnv: try fields.string("api_key_env"),
            requestsPerMinute: try fields.int("rpm", range: 1...100_000_000),
            tokensPerMinute: try fields.int("tpm", range: 1...1_000_000_000_000),
            inputTokensPerMinute: try fields.int("input_tpm", range: 1...1_000_000_000_000),
            outputTokensPerMinute: try fields.int("output_tpm", range: 1...1_000_000_000_000),
            concurrency: try fields.int("concurrency", range: 1...4096) ?? 8,
            timeoutSeconds: try fields.double("timeout_s", range: 0.001...3600) ?? 120,
            maxRetries: try fields.int("max_retries", range: 0...100) ?? 5)
        if let headers = try fields.table("headers") {
            for header in headers.table.keys {
                guard let value = try headers.string(header) else { continue }
                provider.headers[header] = value
            }
            try headers.rejectUnknownKeys()
        }
        switch kind {
        case .simulated:
            provider.latencyMilliseconds = try fields.int("latency_ms", range: 0...600_000) ?? 0
            provider.latencyJitterMilliseconds = try fields.int("latency_jitter_ms", range: 0...600_000) ?? 0
            var faults = SimulatedFaults()
            faults.serverError = try fields.double("fault_5xx", range: 0...1) ?? 0
            faults.hang = try fields.double("fault_hang", range: 0...1) ?? 0
            faults.malformed = try fields.double("fault_malformed", range: 0...1) ?? 0
            faults.empty = try fields.double("fault_empty", range: 0...1) ?? 0
            faults.reset = try fields.double("fault_reset", range: 0...1) ?? 0
            faults.maxPerRequest = try fields.int("max_faults_per_request", range: 0...100) ?? 2
            if faults.isEnabled && faults.maxPerRequest >= provider.maxRetries {
                throw fields.error(
                    "max_faults_per_request",
                    "\(fields.key("max_faults_per_request")) (\(faults.maxPerRequest)) must be below max_retries "
                        + "(\(provider.maxRetries)), or a retrying client could fail a call")
            }
            provider.faults = faults
        case .openai, .anthropic:
            if provider.baseURL == nil {
                provider.baseURL = kind == .openai ? "https://api.openai.com/v1" : "https://api.anthropic.com/v1"
            }
            // A local OpenAI-compatible server may need no key; a named variable must be set.
            if requireAPIKeys, let variable = provider.apiKeyEnv, (environment[variable] ?? "").isEmpty {
                throw fields.error(
                    "api_key_env", "\(fields.key("api_key_env")): environment variable \(variable) is not set")
            }
            if kind == .anthropic && provider.apiKeyEnv == nil {
                throw fields.error(nil, "\(fields.key("api_key_env")) is required for an anthropic provider")
            }
        }
        provider.account =
            try fields.string("account") ?? "\(kind.rawValue):\(provider.baseURL ?? name):\(provider.apiKeyEnv ?? "")"
        try fields.rejectUnknownKeys()
        return provider
    }

    /// `[evaluation.<call>]` or a model's `<call> = { temperature, max_tokens }`, over `defaults`.
    private static func callSettings(_ parent: TOMLFields, _ call: TargetCall, defaults: CallSettings) throws
        -> CallSettings?
    {
        guard let table = try parent.table(call.rawValue) else { return nil }
        let settings = CallSettings(
            temperature: try table.double("temperature", range: 0...2) ?? defaults.temperature,
            maxTokens: try table.int("max_tokens", range: 1...200_000) ?? defaults.maxTokens)
        try table.rejectUnknownKeys()
        return settings
    }

    private static func model(
        _ name: String, _ fields: TOMLFields, providers: [String: Provider], values: Set<String>,
        evaluation: Evaluation
    ) throws -> Model {
        let providerName = try fields.requiredString("provider")
        guard let provider = providers[providerName] else {
            throw fields.error("provider", "\(fields.key("provider")): unknown provider \"\(providerName)\"")
        }
        var model = Model(
            name: name, provider: providerName, modelID: try fields.string("model") ?? name,
            inputUSDPerMillionTokens: try fields.double("input_usd_per_mtok", range: 0...1e6) ?? 0,
            outputUSDPerMillionTokens: try fields.double("output_usd_per_mtok", range: 0...1e6) ?? 0, simulated: nil)
        for call in TargetCall.allCases {
            if let settings = try callSettings(fields, call, defaults: evaluation.calls[call]!) {
                model.targetCalls[call] = settings
            }
        }
        let reasoning =
            try fields.bool("reasoning")
            ?? isOpenAIReasoningModel(model.modelID, provider: provider)
        var tokenParameter: OpenAIContract.TokenParameter = reasoning ? .maxCompletionTokens : .maxTokens
        if let name = try fields.string("token_param") {
            guard let parameter = OpenAIContract.TokenParameter(rawValue: name) else {
                throw fields.error(
                    "token_param",
                    "\(fields.key("token_param")) must be \"max_tokens\" or \"max_completion_tokens\", not \"\(name)\"")
            }
            tokenParameter = parameter
        }
        let effort = try fields.string("reasoning_effort")
        if let effort, !["minimal", "low", "medium", "high"].contains(effort) {
            throw fields.error(
                "reasoning_effort",
                "\(fields.key("reasoning_effort")) must be minimal, low, medium or high, not \"\(effort)\"")
        }
        model.contract = OpenAIContract(reasoning: reasoning, tokenParameter: tokenParameter, reasoningEffort: effort)
        model.reasoningMinTokens = try fields.int("reasoning_min_tokens", range: 1...1_000_000) ?? 4096
        if provider.kind == .simulated {
            var utilities: [EvaluationFormat: [String: Double]] = [:]
            if let table = try fields.table("utilities") {
                for format in EvaluationFormat.allCases {
                    guard let perFormat = try table.table(format.rawValue) else { continue }
                    var scores: [String: Double] = [:]
                    for value in perFormat.table.keys {
                        guard values.contains(value) else {
                            throw perFormat.error(
                                value,
                                "\(perFormat.key(value)): unknown value \"\(value)\" (not in any configured value set)")
                        }
                        scores[value] = try perFormat.double(value, range: -50...50)
                    }
                    try perFormat.rejectUnknownKeys()
                    utilities[format] = scores
                }
                try table.rejectUnknownKeys()
            }
            model.simulated = SimulatedBehaviour(
                utilities: utilities, steerability: try fields.double("steerability", range: 0...10) ?? 0,
                invalidRate: try fields.double("invalid_rate", range: 0...1) ?? 0,
                actBias: try fields.double("act_bias", range: -20...20) ?? 0)
        }
        try fields.rejectUnknownKeys()
        return model
    }

    /// OpenAI's reasoning families (o1, o3, o4-mini, gpt-5, ...) on OpenAI's own API (or Azure OpenAI): their
    /// chat contract differs. Elsewhere (a router, a local server) say `reasoning = true` in the model.
    static func isOpenAIReasoningModel(_ modelID: String, provider: Provider) -> Bool {
        guard provider.kind == .openai, let host = provider.baseURL.flatMap({ URL(string: $0)?.host }),
            host == "api.openai.com" || host.hasSuffix(".openai.azure.com")
        else { return false }
        let id = modelID.lowercased()
        if id.hasPrefix("gpt-5") { return !id.contains("-chat") }
        return id.wholeMatch(of: /o[1-9](-.*)?/) != nil
    }

    /// `[value_sets.NAME]`: `file = "set.json"` or a `[value_sets.NAME.values]` table, plus optional
    /// `groups = { GROUP = ["value", ...], ... }` and `pairs = "all"` or `pairs = { cross = ["G1", "G2"] }`
    /// (these replace whatever the file declares, so a paper-format file can be given groups).
    private static func customValueSets(_ table: TOMLFields, folder: URL) throws -> [String: ValueSet] {
        var sets: [String: ValueSet] = [:]
        for (setName, fields) in try table.tables() {
            var set: ValueSet
            let source = "value_sets.\(setName)"
            do {
                if let file = try fields.string("file") {
                    let url = file.hasPrefix("/") ? URL(fileURLWithPath: file) : folder.appendingPathComponent(file)
                    guard let data = try? Data(contentsOf: url) else {
                        throw fields.error("file", "\(fields.key("file")): cannot read \(url.path)")
                    }
                    set = try ValueSet.parse(data, source: url.path, name: setName)
                } else if let values = try fields.table("values") {
                    var list: [ValueSet.Value] = []
                    for value in values.table.keys {
                        list.append(ValueSet.Value(name: value, definition: try values.requiredString(value)))
                    }
                    try values.rejectUnknownKeys()
                    set = ValueSet(name: setName, values: list)
                } else {
                    throw fields.error(
                        nil,
                        "value_sets.\(setName) needs `file = \"...json\"` or a [value_sets.\(setName).values] table")
                }
                if let groups = try fields.table("groups") {
                    // TOMLKit keeps keys sorted, so groups come in name order, as from JSON.
                    set.groups = try groups.table.keys.map { group in
                        guard let members = try? groups.strings(group) else {
                            throw groups.error(group, "\(groups.key(group)) must be a list of value names")
                        }
                        return ValueSet.Group(name: group, values: members)
                    }
                }
                if fields.has("pairs") {
                    let spelling = "\(fields.key("pairs")) must be \"all\" or { cross = [\"GROUP1\", \"GROUP2\"] }"
                    if fields.table["pairs"]?.string != nil {
                        guard try fields.string("pairs") == "all" else { throw fields.error("pairs", spelling) }
                        set.pairRule = .all
                    } else {
                        guard let rule = try? fields.table("pairs"), let cross = try? rule.strings("cross"),
                            cross.count == 2, rule.table.keys.count == 1
                        else { throw fields.error("pairs", spelling) }
                        set.pairRule = .cross(first: cross[0], second: cross[1])
                    }
                }
                set = try ValueSet.validated(set, source: source)
            } catch let error as ValueSetError {
                throw fields.error(nil, error.description)
            }
            try fields.rejectUnknownKeys()
            sets[setName] = set
        }
        return sets
    }
}
