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

    /// Where the role serves its endpoints, or nil for none.
    func metricsAddress() throws -> (host: String, port: Int)? {
        try resolvedMetricsPort().map { (metricsHost, $0) }
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
        Servers come from the environment: CONFLICTSCOPE_AMQP_URL (default \(ClusterConnections.defaultAMQP); \
        amqps://...?cacertfile=CA.pem for TLS) and CONFLICTSCOPE_REDIS_URL (default \(ClusterConnections.defaultRedis)). Provider API keys come from the \
        variables the config names. Logs go to stderr (level: CONFLICTSCOPE_LOG_LEVEL, default info; \
        CONFLICTSCOPE_LOG_FORMAT=json writes one JSON object per line).
        """
}

/// Connections and logging shared by the cluster commands.
enum ClusterEnvironment {
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

    static func connect(role: String, logger: Logger) throws -> ClusterConnections {
        do {
            return try ClusterConnections(role: role, environment: ProcessInfo.processInfo.environment, logger: logger)
        } catch {
            throw CommandFailure("\(error)")
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
        let connections = try ClusterEnvironment.connect(role: "coordinator", logger: logger)
        let store: ResultStore
        do {
            store = try ResultStore(path: sweep.storePath)
        } catch {
            throw CommandFailure("cannot open the store \(sweep.storePath): \(error)")
        }
        let started = ContinuousClock.now
        let throttle = ProgressThrottle(every: .seconds(5))
        let live = ClusterLiveView(
            config: sweep, scope: "the coordinator (the whole sweep)", store: store, redis: connections.redis)
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
        let finished = try await ClusterRoles.host(
            connections: connections, metrics: try cluster.metricsAddress(), live: live, logger: logger
        ) {
            do {
                return try await ClusterRoles.coordinate(
                    config: sweep, store: store, connections: connections, logger: logger, progress: progress)
            } catch let refused as Coordinator.AlreadyRunning {
                throw CommandFailure("\(refused)")
            }
        }
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
        let connections = try ClusterEnvironment.connect(role: "worker", logger: logger)
        var options = Worker.Options()
        options.prefetch = prefetch
        options.drainSeconds = drainSeconds
        options.maxHoldSeconds = maxHoldSeconds
        let providers = EmbeddedSweep.providers(for: config, environment: ProcessInfo.processInfo.environment)
        let live = ClusterLiveView(config: config, scope: "this worker", store: nil, redis: connections.redis)
        // The endpoints answer while the worker waits for the coordinator, so liveness holds.
        _ = try await ClusterRoles.host(
            connections: connections, metrics: try cluster.metricsAddress(), live: live, logger: logger
        ) { [sweep, options] in
            try await ClusterRoles.work(
                config: config, sweep: sweep, options: options, providers: providers, connections: connections,
                live: live, logger: logger)
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
        let connections = try ClusterEnvironment.connect(role: "aggregator", logger: logger)
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
            config: config, scope: "the aggregator (the whole sweep)", store: store, redis: connections.redis)
        _ = try await ClusterRoles.host(
            connections: connections, metrics: try cluster.metricsAddress(), live: live, logger: logger
        ) { [refitSeconds] in
            try await ClusterRoles.aggregate(
                config: config, store: store, refitSeconds: refitSeconds, connections: connections, live: live,
                logger: logger)
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
