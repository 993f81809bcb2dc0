import Foundation
import Logging

/// Runs a sweep in this process (the default mode) and summarises it.
public enum EmbeddedSweep {
    public struct Summary: Sendable {
        public var sweepID: String
        public var storePath: String
        public var callsMade: Int
        public var callsCached: Int
        public var callsFailed: Int
        public var scenarios: ResultStore.ScenarioCounts
        public var budgetReached: Bool
        public var spentUSD: Double
        public var report: RankingReport
        /// This run's calls by stage: made, cached, failed, and answers unusable after their re-asks.
        public var byStage: [Stage: CallCounters.Counts] = [:]
        /// A cluster sweep's tasks that died (failed too often, or dead-lettered by the broker); nil for an
        /// embedded run, which has no task table.
        public var deadTasks: Int?
        /// Answers that could not be used after their re-asks, by stage (this run's calls).
        public var invalidByStage: [Stage: Int] { byStage.compactMapValues { $0.invalid > 0 ? $0.invalid : nil } }

        /// The warning of a sweep that kept no scenario: how many answers per stage could not be used.
        public var nothingKeptWarning: String? {
            guard scenarios.kept == 0 else { return nil }
            let unusable = Stage.allCases.compactMap { stage in
                invalidByStage[stage].map { "\(stage.rawValue) \($0)" }
            }
            return "warning: the sweep kept no scenario (unusable answers by stage: "
                + (unusable.isEmpty ? "none" : unusable.joined(separator: ", ")) + ")"
        }
    }

    /// The providers of a config; API keys are read from `environment`.
    public static func providers(for config: SweepConfig, environment: [String: String]) -> [String: any LLMProvider] {
        var providers: [String: any LLMProvider] = [:]
        for (name, provider) in config.providers {
            switch provider.kind {
            case .simulated: providers[name] = SimulatedProvider(config: config, provider: name)
            case .openai, .anthropic: providers[name] = HTTPProvider(settings: provider, environment: environment)
            }
        }
        return providers
    }

    /// The run's limiter: each provider's concurrency and rate limits. Pass one to `run` to read its use.
    public static func rateLimiter(for config: SweepConfig) -> InProcessRateLimiter {
        var limits: [String: Int] = [:]
        for model in config.models.values { limits[model.name] = config.providers[model.provider]?.concurrency ?? 8 }
        return InProcessRateLimiter(limits: limits, rates: ModelRateLimit.limits(of: config))
    }

    public static func run(
        config: SweepConfig, environment: [String: String] = ProcessInfo.processInfo.environment,
        limiter: InProcessRateLimiter? = nil, logger: Logger = ModelCaller.silentLogger,
        progress: (@Sendable (CallCounters) async -> Void)? = nil
    ) async throws -> Summary {
        let store = try ResultStore(path: config.storePath)
        let sweepID = try store.bindSweep(config)
        let budget = try config.maxCostUSD.map { BudgetTracker(limit: $0, spent: try store.spentUSD()) }
        let caller = ModelCaller(
            config: config, providers: providers(for: config, environment: environment),
            limiter: limiter ?? rateLimiter(for: config), budget: budget, logger: logger)
        let runner = SweepRunner(config: config, caller: caller)
        let reporter = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if !Task.isCancelled { await progress?(caller.counters) }
            }
        }
        do {
            try await runner.run(store: store, queue: InProcessTaskQueue())
            // The diversity measure's embeddings of the kept descriptions (with an embedder role).
            try await DescriptionEmbeddings.embed(scenarios: try store.scenarios(), caller: caller, store: store)
        } catch {
            // No progress line may follow the error: it is the last line on stderr.
            reporter.cancel()
            await reporter.value
            throw error
        }
        reporter.cancel()
        await reporter.value
        await progress?(caller.counters)
        let counters = caller.counters
        var summary = try summary(
            config: config, store: store, sweepID: sweepID, made: await counters.made, cached: await counters.cached,
            failed: await counters.failed, budgetReached: await counters.budgetHit)
        summary.byStage = await counters.byStage
        return summary
    }

    /// A finished sweep's summary: the call counts given, and rankings fitted cold from the store.
    public static func summary(
        config: SweepConfig, store: ResultStore, sweepID: String, made: Int, cached: Int, failed: Int,
        budgetReached: Bool
    ) throws -> Summary {
        // The store's scenarios add the scenario measures (filter pass rates, diversity, domains) to the metrics.
        let scenarios = try store.scenarios()
        let report = try RankingReport(
            judgments: try store.judgments(), options: config.analysis, includeMetrics: true,
            valueSets: config.valueSets, scenarios: scenarios,
            embeddings: try DescriptionEmbeddings.stored(scenarios: scenarios, config: config, store: store))
        return Summary(
            sweepID: sweepID, storePath: config.storePath, callsMade: made, callsCached: cached, callsFailed: failed,
            scenarios: try store.scenarioCounts(), budgetReached: budgetReached, spentUSD: try store.spentUSD(),
            report: report)
    }
}

extension EmbeddedSweep.Summary: JSONRepresentable {
    public var json: JSONValue {
        var fields: [(String, JSONValue)] = [
            ("sweep", .object([("id", .string(sweepID)), ("store", .string(storePath))])),
            (
                "calls",
                .object([
                    ("made", .int(callsMade)), ("cached", .int(callsCached)), ("failed", .int(callsFailed)),
                    (
                        "by_stage",
                        .object(
                            Stage.allCases.compactMap { stage in
                                byStage[stage].map { counts in
                                    (
                                        stage.rawValue,
                                        .object([
                                            ("made", .int(counts.made)), ("cached", .int(counts.cached)),
                                            ("failed", .int(counts.failed)), ("invalid", .int(counts.invalid)),
                                        ])
                                    )
                                }
                            })
                    ),
                ])
            ),
            (
                "scenarios",
                .object([
                    ("generated", .int(scenarios.outlines)), ("kept", .int(scenarios.kept)),
                    ("rejected", .int(scenarios.rejected)), ("undecided", .int(scenarios.undecided)),
                    ("invalid", .int(scenarios.invalid)),
                ])
            ),
            ("budget", .object([("spent_usd", .number(spentUSD)), ("reached", .bool(budgetReached))])),
        ]
        if let deadTasks { fields.append(("tasks", .object([("dead", .int(deadTasks))]))) }
        if case .object(let report) = report.json { fields += report }
        return .object(fields)
    }
}
