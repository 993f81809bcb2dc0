import Foundation
import Logging
import ServiceLifecycle

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

    /// Runs (or resumes) the sweep in this process: the cluster's coordinator, one worker and the aggregator,
    /// over the in-memory transport and shared state, so the laptop and the cluster share every rule (what
    /// is pending, done, retried or dead, the budget, the response cache). `limiter` bounds each model's calls
    /// in flight (the providers' `concurrency`); `progress` gets the run's counters every second.
    public static func run(
        config: SweepConfig, environment: [String: String] = ProcessInfo.processInfo.environment,
        limiter: InProcessRateLimiter? = nil, logger: Logger = ModelCaller.silentLogger,
        progress: (@Sendable (CallCounters) async -> Void)? = nil
    ) async throws -> Summary {
        let store = try ResultStore(path: config.storePath)
        let sweepID = try store.bindSweep(config)
        let broker = InMemoryBroker()
        let state = InMemorySharedState()
        var options = Worker.Options()
        // One worker takes every task at once; the limiter, not the prefetch, bounds the calls in flight.
        options.prefetch = 1024
        options.sweepCheckSeconds = nil
        options.finishCheckSeconds = 0.05
        options.maxHoldSeconds = nil
        let worker = Worker(
            config: config, sweepID: sweepID, transport: await broker.connect(), state: state,
            providers: providers(for: config, environment: environment), limiter: limiter ?? rateLimiter(for: config),
            options: options, logger: logger)
        let aggregator = try Aggregator(
            config: config, store: store, sweepID: sweepID, transport: await broker.connect(), state: state,
            refitInterval: 3600, logger: logger)
        var coordinator = Coordinator(
            config: config, store: store, transport: await broker.connect(), state: state, logger: logger)
        coordinator.pollInterval = 0.05
        coordinator.mode = .embedded
        let counters = worker.counters
        let reporter = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if !Task.isCancelled { await progress?(counters) }
            }
        }
        let finished: Summary
        do {
            finished = try await runRoles(coordinator, services: [aggregator, worker], logger: logger)
            // The diversity measure's embeddings of the kept descriptions (with an embedder role).
            try await DescriptionEmbeddings.embed(
                scenarios: try store.scenarios(), caller: worker.runner.caller, store: store)
        } catch {
            // No progress line may follow the error: it is the last line on stderr.
            reporter.cancel()
            await reporter.value
            throw error
        }
        reporter.cancel()
        await reporter.value
        await progress?(counters)
        var summary = try summary(
            config: config, store: store, sweepID: sweepID, made: await counters.made, cached: await counters.cached,
            failed: await counters.failed, budgetReached: await counters.budgetHit)
        summary.byStage = await counters.byStage
        summary.deadTasks = finished.deadTasks
        return summary
    }

    /// Runs `coordinator` to the end with `services` (the worker and the aggregator) beside it, then shuts
    /// them down; a service that ends first (a refusing provider stops the worker, a failing store the
    /// aggregator) ends the run with its error.
    private static func runRoles(_ coordinator: Coordinator, services: [any Service], logger: Logger) async throws
        -> Summary
    {
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) },
                logger: logger))
        return try await withThrowingTaskGroup(of: Summary?.self) { tasks in
            tasks.addTask {
                try await group.run()
                return nil
            }
            tasks.addTask { try await coordinator.run() }
            // The coordinator ends first when the sweep is finished; the services end first only when stopped.
            guard let summary = try await tasks.next() ?? nil else {
                tasks.cancelAll()
                throw RolesEnded()
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return summary
        }
    }

    /// The worker or the aggregator stopped before the coordinator found the sweep finished.
    struct RolesEnded: Error, CustomStringConvertible {
        var description: String { "the sweep's worker or aggregator stopped before the sweep finished" }
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
