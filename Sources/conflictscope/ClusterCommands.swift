import ArgumentParser
import ConflictScope
import ConflictScopeCluster
import Foundation
import Logging
import ServiceLifecycle

/// What every cluster role reads: the config, and the servers from the environment (never from
/// arguments, which other users of the machine can see).
struct ClusterOptions: ParsableArguments {
    @Option(name: .long, help: "The sweep's config file (every role reads the same one).")
    var config = "config.toml"

    @Option(
        name: .long,
        help: """
            Serve /metrics, /healthz, /readyz and the live view (/ and /status.json) on this port \
            (default: CONFLICTSCOPE_METRICS_PORT; unset: none).
            """)
    var metricsPort: Int?

    @Option(name: .long, help: "Address of the metrics port.")
    var metricsHost = "0.0.0.0"

    func validate() throws {
        _ = try resolvedMetricsPort()
    }

    /// --metrics-port, else CONFLICTSCOPE_METRICS_PORT, else nil (no endpoints).
    func resolvedMetricsPort() throws -> Int? {
        let given = ProcessInfo.processInfo.environment["CONFLICTSCOPE_METRICS_PORT"]
        guard let port = metricsPort ?? given.flatMap({ Int($0) }) else {
            if let given, metricsPort == nil {
                throw ValidationError("CONFLICTSCOPE_METRICS_PORT must be a port number, got '\(given)'")
            }
            return nil
        }
        guard (0...65535).contains(port) else {
            throw ValidationError("the metrics port must be 0...65535, got \(port)")
        }
        return port
    }

    static let environmentHelp = """
        Servers come from the environment: CONFLICTSCOPE_AMQP_URL (default \(ClusterEnvironment.defaultAMQP); \
        amqps://...?cacertfile=CA.pem for TLS) and CONFLICTSCOPE_REDIS_URL (default \(ClusterEnvironment.defaultRedis)). Provider API keys come from the \
        variables the config names. Logs go to stderr (level: CONFLICTSCOPE_LOG_LEVEL, default info; \
        CONFLICTSCOPE_LOG_FORMAT=json writes one JSON object per line).
        """
}

/// Connections and logging shared by the cluster commands.
enum ClusterEnvironment {
    static let defaultAMQP = "amqp://guest:guest@127.0.0.1:5672/"
    static let defaultRedis = "redis://127.0.0.1:6379/0"

    /// A logger to stderr at CONFLICTSCOPE_LOG_LEVEL (default `level`), as text or, with
    /// CONFLICTSCOPE_LOG_FORMAT=json, as JSON lines.
    static func logger(_ role: String, level defaultLevel: Logger.Level = .info) -> Logger {
        let environment = ProcessInfo.processInfo.environment
        let level = environment["CONFLICTSCOPE_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? defaultLevel
        let json = environment["CONFLICTSCOPE_LOG_FORMAT"] == "json"
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "conflictscope.\(role)")
        logger[metadataKey: "role"] = "\(role)"
        return logger
    }

    static func connect(role: String, logger: Logger) throws -> (BrokerConnection, RedisClient) {
        let environment = ProcessInfo.processInfo.environment
        do {
            let broker = BrokerConnection(
                settings: try BrokerSettings(url: environment["CONFLICTSCOPE_AMQP_URL"] ?? defaultAMQP),
                name: "conflictscope-\(role)", logger: logger)
            let redis = RedisClient(
                settings: try RedisSettings(url: environment["CONFLICTSCOPE_REDIS_URL"] ?? defaultRedis),
                logger: logger)
            return (broker, redis)
        } catch {
            throw CommandFailure("\(error)")
        }
    }

    /// The sweep id the coordinator published for this config, waiting for one that is not finished (a
    /// rerun of a finished sweep's coordinator clears its finish).
    static func sweepID(_ given: String?, config: SweepConfig, redis: RedisClient, logger: Logger) async throws
        -> String
    {
        if let given { return given }
        var logged = false
        while true {
            if let id = try await redis.get(ClusterNames.sweepKey(configName: config.name)) {
                let finished = ClusterNames(sweepID: id, sweepName: config.name).finishedKey
                if try await redis.get(finished) == nil { return id }
            }
            if !logged {
                logger.info(
                    "waiting for the coordinator to register the sweep", metadata: ["sweep.name": "\(config.name)"])
                logged = true
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// The id of the sweep `store` is bound to, waiting for the coordinator to bind it if needed.
    static func sweepID(of store: ResultStore, logger: Logger) async throws -> String {
        var logged = false
        while true {
            if let id = try store.sweepID() { return id }
            if !logged {
                logger.info("waiting for the coordinator to bind the store to its sweep")
                logged = true
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// Runs a role's `body` until it finishes or SIGTERM / SIGINT shuts it down gracefully (a worker
    /// drains), beside /metrics, /healthz, /readyz and the live view on the metrics port when one is set;
    /// readiness means reaching both servers (and, for a worker, no model paused by its breaker). Returns nil when shut down before `body` finished.
    static func run<Result: Sendable>(
        _ options: ClusterOptions, broker: BrokerConnection, redis: RedisClient, live: ClusterLiveView,
        logger: Logger, _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result? {
        let role = RoleService(body)
        // Shutdown goes in reverse order: the role first, then the endpoints it reports through.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let port = try options.resolvedMetricsPort() {
            services.append(
                .init(
                    service: ObservabilityServer(
                        host: options.metricsHost, port: port, registry: ObservabilityServer.bootstrapMetrics(),
                        logger: logger, live: live
                    ) {
                        if let problem = await ObservabilityServer.serversProblem(broker: broker, redis: redis) {
                            return problem
                        }
                        return await live.notReady()
                    }))
        }
        services.append(.init(service: role, successTerminationBehavior: .gracefullyShutdownGroup))
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        return role.result
    }
}

/// A role's work as a service; it keeps the result for the command.
private final class RoleService<Result: Sendable>: Service, @unchecked Sendable {
    private let body: @Sendable () async throws -> Result
    // Guarded by `lock`.
    private let lock = NSLock()
    private var finished: Result?

    init(_ body: @escaping @Sendable () async throws -> Result) { self.body = body }

    var result: Result? { lock.withLock { finished } }

    func run() async throws {
        do {
            let value = try await body()
            lock.withLock { finished = value }
        } catch is CancellationError where Task.isShuttingDownGracefully {
            // Shut down while waiting (for the coordinator, say): a normal exit.
        }
    }
}

struct CoordinatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Start or resume a cluster sweep: publish its tasks and wait until the store has them all done.",
        discussion: """
            Run one per sweep, next to the aggregator (it reads the aggregator's store). Re-running it resumes: \
            only tasks the store does not have as done are published again. On completion it prints the same \
            summary as `run` (with --json, the same JSON); call counts are the store's totals.

            \(ClusterOptions.environmentHelp)
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Flag(name: .long, help: "Print a JSON summary instead of tables.")
    var json = false

    func run() async throws {
        // No provider calls here, so no keys: in Kubernetes only the workers hold them.
        let sweep = try loadConfig(cluster.config, requireAPIKeys: false)
        let logger = ClusterEnvironment.logger("coordinator")
        let (broker, redis) = try ClusterEnvironment.connect(role: "coordinator", logger: logger)
        defer { redis.shutdown() }
        let store: ResultStore
        do {
            store = try ResultStore(path: sweep.storePath)
        } catch {
            throw CommandFailure("cannot open the store \(sweep.storePath): \(error)")
        }
        let started = ContinuousClock.now
        let throttle = ProgressThrottle(every: .seconds(5))
        let coordinator = Coordinator(
            config: sweep, store: store, transport: broker, state: RedisSharedState(redis: redis), logger: logger)
        let live = ClusterLiveView(
            config: sweep, scope: "the coordinator (the whole sweep)", store: store, redis: redis)
        let progress: @Sendable ([String: [TaskState: Int]]) -> Void = { counts in
            SweepMetrics.tasks(counts)
            guard throttle.due() else { return }
            let elapsed = Int((ContinuousClock.now - started).components.seconds)
            let stages = counts.keys.sorted().map { stage in
                let states = counts[stage] ?? [:]
                return "\(stage) \(states[.done] ?? 0)/\(states.values.reduce(0, +))"
            }
            FileHandle.standardError.write(Data("[\(elapsed)s] tasks done: \(stages.joined(separator: ", "))\n".utf8))
        }
        let finished = try await ClusterEnvironment.run(
            cluster, broker: broker, redis: redis, live: live, logger: logger
        ) {
            // SIGTERM / SIGINT stop the wait; a rerun resumes.
            try await cancelWhenGracefulShutdown {
                do {
                    return try await coordinator.run(progress: progress)
                } catch let refused as Coordinator.AlreadyRunning {
                    throw CommandFailure("\(refused)")
                }
            }
        }
        await broker.close()
        guard let summary = finished else { throw CommandFailure("stopped before the sweep finished") }
        if json {
            print(summary.json.serialized())
        } else {
            // As `run`: a summary of about 40 lines; the tables with --tables, the report with `report`.
            if tables { print(summary.report.table(), terminator: "") }
            print(
                RunSummaryText.text(summary: summary, config: sweep, reportPath: nil, tablesHint: !tables),
                terminator: "")
            print("The HTML report: conflictscope report --config \(cluster.config)")
        }
        if let dead = summary.deadTasks, dead > 0 {
            throw CommandFailure(
                "\(dead) tasks died (failed too often, or dead-lettered by the broker); the sweep is incomplete: "
                    + "fix the cause (see the worker logs) and run the coordinator again")
        }
    }

    @Flag(name: .long, help: "Also print every ranking table and metric (without it: a summary of about 40 lines).")
    var tables = false
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Take tasks of a cluster sweep, make their calls under the shared rate limits, publish the results.",
        discussion: """
            Stateless: start as many as the rate limits justify, on any machine; killing one only slows the sweep \
            (its unacknowledged tasks are redelivered). SIGTERM stops taking tasks and lets those in flight finish \
            for up to --drain-seconds.

            \(ClusterOptions.environmentHelp)
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(name: .long, help: "The sweep id (default: the one the coordinator registered for the config's name).")
    var sweep: String?

    @Option(name: .long, help: "Unacknowledged tasks held per queue (one queue per stage and model).")
    var prefetch = 16

    @Option(name: .long, help: "Seconds in-flight tasks may run after SIGTERM before they are left to redelivery.")
    var drainSeconds = 20.0

    @Option(
        name: .long,
        help: """
            Seconds a task may be held before it is cancelled and retried later; keep it under RabbitMQ's \
            consumer timeout (30 min by default).
            """)
    var maxHoldSeconds = 1200.0

    func validate() throws {
        guard maxHoldSeconds > 0 else { throw ValidationError("--max-hold-seconds must be above 0") }
        guard (1...10_000).contains(prefetch) else { throw ValidationError("--prefetch must be 1...10000") }
        guard drainSeconds >= 0 else { throw ValidationError("--drain-seconds must not be negative") }
    }

    func run() async throws {
        let config = try loadConfig(cluster.config)
        let logger = ClusterEnvironment.logger("worker")
        let (broker, redis) = try ClusterEnvironment.connect(role: "worker", logger: logger)
        defer { redis.shutdown() }
        var options = Worker.Options()
        options.prefetch = prefetch
        options.drainSeconds = drainSeconds
        options.maxHoldSeconds = maxHoldSeconds
        // A worker given its sweep stays with it; one that follows the config's name moves on with it.
        if sweep != nil { options.sweepCheckSeconds = nil }
        let providers = EmbeddedSweep.providers(for: config, environment: ProcessInfo.processInfo.environment)
        let live = ClusterLiveView(config: config, scope: "this worker", store: nil, redis: redis)
        // The endpoints answer while the worker waits for the coordinator, so liveness holds.
        _ = try await ClusterEnvironment.run(cluster, broker: broker, redis: redis, live: live, logger: logger) {
            [sweep, options] in
            while true {
                let sweepID = try await cancelWhenGracefulShutdown {
                    try await ClusterEnvironment.sweepID(sweep, config: config, redis: redis, logger: logger)
                }
                let worker = Worker(
                    config: config, sweepID: sweepID, transport: broker, state: RedisSharedState(redis: redis),
                    providers: providers,
                    options: options, logger: logger)
                await live.bind(sweepID: sweepID)
                await live.bind(worker: worker)
                switch try await worker.runSweep() {
                case .shutDown: return
                // Given its sweep, the worker ends with it.
                case .sweepFinished where sweep != nil: return
                // Wait for the next sweep of the config's name, or for a rerun of this one.
                case .sweepFinished, .sweepReplaced: continue
                }
            }
        }
    }
}

struct AggregatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggregator",
        abstract: "Store a cluster sweep's results (the store's only writer) and keep live rankings for `status`.",
        discussion: """
            Run exactly one per sweep, with the store on its disk. It waits for the coordinator to register the \
            sweep, then consumes the results queue until SIGTERM.

            \(ClusterOptions.environmentHelp)
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(name: .long, help: "Seconds between live ranking refits.")
    var refitSeconds = 2.0

    func run() async throws {
        // No provider calls here, so no keys: in Kubernetes only the workers hold them.
        let config = try loadConfig(cluster.config, requireAPIKeys: false)
        let logger = ClusterEnvironment.logger("aggregator")
        let (broker, redis) = try ClusterEnvironment.connect(role: "aggregator", logger: logger)
        defer { redis.shutdown() }
        let store: ResultStore
        do {
            store = try ResultStore(path: config.storePath)
            try store.checkSweep(config)
        } catch let mismatch as SweepMismatch {
            throw CommandFailure(mismatch)
        } catch {
            throw CommandFailure("cannot open the store \(config.storePath): \(error)")
        }
        let live = ClusterLiveView(
            config: config, scope: "the aggregator (the whole sweep)", store: store, redis: redis)
        _ = try await ClusterEnvironment.run(cluster, broker: broker, redis: redis, live: live, logger: logger) {
            [refitSeconds] in
            // The sweep is the one the coordinator bound this store to, never a name key left in Redis by
            // an older sweep of the same name.
            let sweepID = try await cancelWhenGracefulShutdown {
                try await ClusterEnvironment.sweepID(of: store, logger: logger)
            }
            let aggregator: Aggregator
            do {
                aggregator = try Aggregator(
                    config: config, store: store, sweepID: sweepID, transport: broker,
                    state: RedisSharedState(redis: redis),
                    refitInterval: refitSeconds, logger: logger)
            } catch {
                throw CommandFailure("cannot read the store \(config.storePath): \(error)")
            }
            try await aggregator.run()
        }
    }
}

/// Lets a progress line through at most once per interval.
final class ProgressThrottle: @unchecked Sendable {
    private let interval: Duration
    // Guarded by `lock`.
    private let lock = NSLock()
    private var last: ContinuousClock.Instant?

    init(every interval: Duration) { self.interval = interval }

    func due() -> Bool {
        lock.withLock {
            if let last, ContinuousClock.now - last < interval { return false }
            last = .now
            return true
        }
    }
}
