import ConflictScope
import Foundation
import Logging
import ServiceLifecycle

/// A role's connections to RabbitMQ and Redis. As a service it closes both when its group shuts down; it is
/// the group's first service, so it goes last, after the role and the endpoints that use it.
public struct ClusterConnections: Service {
    public static let defaultAMQP = "amqp://guest:guest@127.0.0.1:5672/"
    public static let defaultRedis = "redis://127.0.0.1:6379/0"

    public let broker: BrokerConnection
    public let redis: RedisClient
    public var state: RedisSharedState { RedisSharedState(redis: redis) }

    /// From CONFLICTSCOPE_AMQP_URL and CONFLICTSCOPE_REDIS_URL in `environment` (never from arguments, which
    /// other users of the machine can see); a bad URL throws a one-line error without its password.
    public init(role: String, environment: [String: String], logger: Logger) throws {
        broker = BrokerConnection(
            settings: try BrokerSettings(url: environment["CONFLICTSCOPE_AMQP_URL"] ?? Self.defaultAMQP),
            name: "conflictscope-\(role)", logger: logger)
        redis = RedisClient(
            settings: try RedisSettings(url: environment["CONFLICTSCOPE_REDIS_URL"] ?? Self.defaultRedis),
            logger: logger)
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }

    public func close() async {
        await broker.close()
        redis.shutdown()
    }

    /// Why the role cannot work now (a server unreachable), nil when it can. The broker reports its
    /// connection state; Redis is asked once (no retries), so a down server answers within its connect timeout.
    public func problem() async -> String? {
        guard broker.isConnected else { return "RabbitMQ unreachable" }
        return await redis.answersNow() ? nil : "Redis unreachable"
    }
}

/// The cluster roles' lives, as the `coordinator`, `worker` and `aggregator` commands run them.
public enum ClusterRoles {
    /// Runs a role's `body` until it finishes or SIGTERM / SIGINT shuts it down gracefully (a worker drains),
    /// beside its connections and, with `metrics`, /metrics, /healthz, /readyz and the live view on that
    /// port; readiness means reaching both servers (and, for a worker, no model paused by its breaker).
    /// Returns nil when shut down before `body` finished.
    public static func host<Result: Sendable>(
        connections: ClusterConnections, metrics: (host: String, port: Int)?, live: ClusterLiveView,
        logger: Logger, _ body: @escaping @Sendable () async throws -> Result
    ) async throws -> Result? {
        let role = RoleService(body)
        // Shutdown goes in reverse order: the role first, then the endpoints it reports through, then the
        // connections.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: connections)]
        if let metrics {
            let server = ObservabilityServer(
                host: metrics.host, port: metrics.port, registry: ObservabilityServer.bootstrapMetrics(),
                logger: logger, live: live
            ) {
                if let problem = await connections.problem() { return problem }
                return await live.notReady()
            }
            services.append(.init(service: server))
        }
        services.append(.init(service: role, successTerminationBehavior: .gracefullyShutdownGroup))
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        return role.result
    }

    /// The coordinator: the sweep until nothing is pending; `AlreadyRunning` when another holds its lease.
    public static func coordinate(
        config: SweepConfig, store: ResultStore, connections: ClusterConnections, logger: Logger,
        progress: @escaping @Sendable ([String: [TaskState: Int]]) -> Void
    ) async throws -> EmbeddedSweep.Summary {
        let coordinator = Coordinator(
            config: config, store: store, transport: connections.broker, state: connections.state, logger: logger)
        // SIGTERM / SIGINT stop the wait; a rerun resumes.
        return try await cancelWhenGracefulShutdown { try await coordinator.run(progress: progress) }
    }

    /// A worker: takes the tasks of `sweep` (or of the sweep the coordinator published for the config's name)
    /// until shut down; when that sweep finishes or another of the name starts, it waits for the next one
    /// (a worker given its sweep ends with it).
    public static func work(
        config: SweepConfig, sweep: String?, options: Worker.Options, providers: [String: any LLMProvider],
        connections: ClusterConnections, live: ClusterLiveView, logger: Logger
    ) async throws {
        var options = options
        // A worker given its sweep stays with it; one that follows the config's name moves on with it.
        if sweep != nil { options.sweepCheckSeconds = nil }
        while true {
            let sweepID = try await cancelWhenGracefulShutdown {
                if let sweep { return sweep }
                return try await publishedSweepID(config: config, redis: connections.redis, logger: logger)
            }
            let worker = Worker(
                config: config, sweepID: sweepID, transport: connections.broker, state: connections.state,
                providers: providers, options: options, logger: logger)
            await live.bind(sweepID: sweepID)
            await live.bind(worker: worker)
            switch try await worker.runSweep() {
            case .shutDown: return
            case .sweepFinished where sweep != nil: return
            // The next sweep of the config's name, or a rerun of this one.
            case .sweepFinished, .sweepReplaced: continue
            }
        }
    }

    /// The aggregator: stores the results of the sweep its store is bound to (never of a name key left in
    /// Redis by an older sweep of the same name) until shut down.
    public static func aggregate(
        config: SweepConfig, store: ResultStore, refitSeconds: Double, connections: ClusterConnections,
        live: ClusterLiveView, logger: Logger
    ) async throws {
        let sweepID = try await cancelWhenGracefulShutdown { try await boundSweepID(of: store, logger: logger) }
        await live.bind(sweepID: sweepID)
        let aggregator = try Aggregator(
            config: config, store: store, sweepID: sweepID, transport: connections.broker, state: connections.state,
            refitInterval: refitSeconds, logger: logger)
        try await aggregator.run()
    }

    /// The sweep id the coordinator published for this config, waiting for one that is not finished (a
    /// rerun of a finished sweep's coordinator clears its finish).
    static func publishedSweepID(config: SweepConfig, redis: RedisClient, logger: Logger) async throws -> String {
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
    public static func boundSweepID(of store: ResultStore, logger: Logger) async throws -> String {
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
