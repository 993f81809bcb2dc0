import ConflictScope
import Foundation

/// The live view a cluster role serves on its metrics port (`GET /`, `GET /status.json`).
///
/// The aggregator and the coordinator read the store, so theirs is the whole sweep: tasks done per stage
/// from the task table, calls per stage and spend from the call table, rankings refitted from the stored
/// judgments. A worker has no store: its page shows its own calls and the sweep's spend from Redis. Every
/// role shows each rate-limited model's use from Redis, shared by all workers.
public actor ClusterLiveView {
    let config: SweepConfig
    let scope: String
    let store: ResultStore?
    let redis: RedisClient
    let started = ContinuousClock.now
    let planned: [Stage: Int]
    private var sweepID: String?
    private var rankings = LiveSnapshot.StoredRankings()

    /// `store` for the roles that hold it (nil for a worker).
    public init(config: SweepConfig, scope: String, store: ResultStore?, redis: RedisClient) {
        self.config = config
        self.scope = scope
        self.store = store
        self.redis = redis
        self.planned = LiveSnapshot.plannedCalls(config)
    }

    /// The sweep's id, once the role knows it (until then Redis is not read).
    public func bind(sweepID: String) { self.sweepID = sweepID }

    private var worker: Worker?
    private var workerCounters: CallCounters? { worker?.counters }

    /// The worker whose calls the page shows and whose readiness the metrics port reports.
    public func bind(worker: Worker) { self.worker = worker }

    /// Why the role is not ready beyond its servers (a worker's paused models), nil when it is.
    public func notReady() async -> String? { await worker?.notReady() }

    public func snapshot() async -> LiveSnapshot {
        var snapshot = LiveSnapshot(
            sweep: config.name, elapsedSeconds: (ContinuousClock.now - started).inSeconds, byStage: [:],
            plannedCalls: planned, spentUSD: 0, budgetUSD: config.maxCostUSD, rankings: [])
        snapshot.scope = scope
        if let store {
            snapshot.byStage = (try? store.callCountsByStage()) ?? [:]
            snapshot.spentUSD = (try? store.spentUSD()) ?? 0
            if let counts = try? store.taskCounts() {
                var tasks: [Stage: LiveSnapshot.TaskProgress] = [:]
                for (name, states) in counts {
                    guard let stage = Stage(rawValue: name) else { continue }
                    tasks[stage] = .init(done: states[.done] ?? 0, total: states.values.reduce(0, +))
                }
                snapshot.tasks = tasks
            }
            snapshot.rankings = rankings.current(store: store, options: config.analysis)
        } else if let workerCounters {
            snapshot.byStage = await workerCounters.byStage
        }
        if sweepID == nil, let store { sweepID = try? store.sweepID() }
        guard let sweepID else { return snapshot }
        if store == nil, let limit = config.maxCostUSD {
            let budget = RedisBudget(redis: redis, namespace: sweepID, limitUSD: limit)
            snapshot.spentUSD = (try? await budget.spentUSD()) ?? 0
        }
        snapshot.rateLimits = ModelRateLimit.limits(of: config).filter { $0.value.isLimited }
        let limiter = RedisRateLimiter(redis: redis, namespace: sweepID, limits: snapshot.rateLimits)
        for model in snapshot.rateLimits.keys {
            if let use = try? await limiter.usage(model: model) { snapshot.rateUse[model] = use }
        }
        return snapshot
    }
}
