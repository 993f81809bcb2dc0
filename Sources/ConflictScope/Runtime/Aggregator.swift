import Foundation
import Logging
import ServiceLifecycle

/// The store's only writer in a cluster run. It consumes the results queue in order, stores each
/// message in one transaction (rows upserted by deterministic id, so a redelivered result never
/// counts twice), acks it after the commit, and refits live rankings for `status` with warm starts.
public final class Aggregator: Service, Sendable {
    let config: SweepConfig
    let store: ResultStore
    let names: ClusterNames
    let transport: any TaskTransport
    let state: any SharedState
    let logger: Logger
    /// Seconds between live refits (when judgments arrived since the last).
    let refitInterval: Double
    private let live: LiveState

    public init(
        config: SweepConfig, store: ResultStore, sweepID: String, transport: any TaskTransport, state: any SharedState,
        refitInterval: Double = 2, logger: Logger
    ) throws {
        self.config = config
        self.store = store
        self.names = ClusterNames(sweepID: sweepID, sweepName: config.name)
        self.transport = transport
        self.state = state
        self.refitInterval = refitInterval
        var logger = logger
        logger[metadataKey: "sweep"] = "\(sweepID)"
        self.logger = logger
        var rankings = LiveRankings(alpha: config.analysis.alpha, invalid: config.analysis.invalid)
        for (id, judgment) in try store.judgmentsByID() { rankings.upsert(id: id, judgment) }
        self.live = LiveState(rankings)
    }

    public func run() async throws {
        try await transport.declare(names.queueSpecs(config))
        let deliveries = try await transport.consume(names.results, prefetch: 256)
        let dead = try await transport.consume(names.deadTasks, prefetch: 64)
        logger.info("aggregator consuming", metadata: ["transport.queue": "\(names.results)"])
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.refitLoop() }
                group.addTask { for await delivery in dead { await self.storeDead(delivery) } }
                for await delivery in deliveries { await self.store(delivery) }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            // Messages are stored one at a time: stop taking more and close; the unacknowledged
            // rest is redelivered to the next aggregator.
            Task { await self.transport.close() }
        }
        await publishLive()
        logger.info("aggregator stopped")
    }

    func store(_ delivery: Delivery) async {
        let message: ClusterMessage
        do {
            message = try ClusterMessage.decode(delivery.body)
        } catch {
            logger.error("undecodable result dead-lettered", metadata: ["transport.queue": "\(delivery.queue)"])
            await transport.reject(delivery, requeue: false)
            return
        }
        if let problem = message.problem(in: config) {
            logger.error(
                "result not of this sweep dead-lettered",
                metadata: ["transport.queue": "\(delivery.queue)", "result.problem": "\(problem)"])
            await transport.reject(delivery, requeue: false)
            return
        }
        do {
            switch message {
            case .register(let id, let tasks, let last):
                try store.registerTasks(tasks, registration: id, last: last)
            case .finished(let outcome, let batch):
                try store.apply(batch, outcome: outcome)
                await cacheAnswers(of: batch)
                await live.add(batch.judgments)
                SweepMetrics.resultStored(stage: PipelineTask.stage(ofID: outcome.taskID)?.rawValue ?? "unknown")
            }
            await transport.ack(delivery)
        } catch {
            // The store failed (disk full, for example): stop rather than ack what was not stored.
            logger.critical("cannot store a result", metadata: ["error": "\(error)"])
            await transport.reject(delivery, requeue: true)
            await transport.close()
        }
    }

    /// Every stored answer is in the response cache too. An answer cached before the shared state was lost
    /// and stored after the coordinator copied the store back is then not paid for again. Best effort: the
    /// store holds it either way.
    private func cacheAnswers(of batch: ResultBatch) async {
        let cache = SharedResponseCache(state: state, namespace: names.sweepID)
        for call in batch.calls where call.status == "ok" {
            guard let text = call.response else { continue }
            _ = try? await cache.setIfAbsent(call.key, ModelAnswer(text: text, truncated: call.truncated).cacheValue)
        }
    }

    /// A message a task queue dead-lettered. A task of the sweep was dead-lettered by a worker (which
    /// reported it dead already) or by the broker itself (its delivery limit: it kept killing or stalling the
    /// workers that took it), which no one reported: it becomes `dead` here, unless it is done. Every message
    /// then moves on to the dead queue, where operators read them.
    func storeDead(_ delivery: Delivery) async {
        if let task = try? JSONDecoder().decode(PipelineTask.self, from: Data(delivery.body)),
            task.problem(in: config) == nil
        {
            do {
                if try store.taskState(task.id) != .dead {
                    try store.apply(ResultBatch(), outcome: TaskOutcome(taskID: task.id, state: .dead, followUps: []))
                    logger.error(
                        "a task on the dead-letter route is recorded as dead", metadata: ["task": "\(task.id)"])
                }
            } catch {
                logger.critical("cannot store a dead task", metadata: ["error": "\(error)"])
                await transport.reject(delivery, requeue: true)
                await transport.close()
                return
            }
        }
        do {
            try await transport.publish(delivery.body, to: names.dead, headers: delivery.headers)
            await transport.ack(delivery)
        } catch {
            // The broker is in trouble: the message comes back when it is reachable again.
            await transport.reject(delivery, requeue: true)
        }
    }

    private func refitLoop() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(refitInterval))
            await publishLive()
        }
    }

    /// Refits if judgments arrived since the last refit and publishes the rankings to the shared state.
    func publishLive() async {
        guard let snapshot = await live.refitIfChanged() else { return }
        do {
            try await state.set(
                names.liveKey, snapshot.serialized(), ttlSeconds: Double(SharedResponseCache.timeToLiveSeconds))
        } catch {
            logger.warning("cannot publish live rankings", metadata: ["error": "\(error)"])
        }
    }
}

/// The live rankings and whether they changed since the last refit.
actor LiveState {
    private var rankings: LiveRankings
    private var changed = true

    init(_ rankings: LiveRankings) { self.rankings = rankings }

    func add(_ judgments: [StoredJudgment]) {
        for record in judgments { rankings.upsert(id: record.id, record.judgment) }
        if !judgments.isEmpty { changed = true }
    }

    /// The refitted rankings as JSON, or nil when nothing changed.
    func refitIfChanged() -> JSONValue? {
        guard changed else { return nil }
        changed = false
        let started = ContinuousClock.now
        let (groups, comparisons) = rankings.refit()
        SweepMetrics.refit(seconds: (ContinuousClock.now - started).inSeconds)
        return .object([
            ("judgments", .int(rankings.judgmentCount)), ("comparisons", .int(comparisons)),
            ("refits", .int(rankings.refits)), ("updated_at", .string(ISO8601DateFormatter().string(from: Date()))),
            ("rankings", .array(groups.map(\.json))),
        ])
    }
}
