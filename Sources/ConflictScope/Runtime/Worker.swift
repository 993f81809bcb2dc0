import Foundation
import Logging
import ServiceLifecycle

/// A stateless worker: takes a task from any of the sweep's task queues, makes its calls under the
/// shared rate limits and budget, publishes its follow-up tasks and its result, then acks.
///
/// Each (stage, model) queue has its own consumer with a bounded prefetch, so a worker holding
/// tasks of a saturated model still receives tasks of every other model. On graceful shutdown
/// (SIGTERM) it stops consuming, lets tasks in flight finish for up to `drainSeconds`, then cancels the
/// rest and hands them back to their queues as fresh copies.
public final class Worker: Service, Sendable {
    public struct Options: Sendable {
        /// Unacknowledged tasks per queue (each waits for its model's rate limit).
        public var prefetch = 16
        /// Attempts of a task whose handling fails for reasons other than the provider (shared state or
        /// broker trouble), before it is dead-lettered.
        public var maxAttempts = 5
        /// How long in-flight tasks may run after SIGTERM before they are cancelled and handed back.
        public var drainSeconds = 20.0
        /// Delay of the first retry; doubled per attempt.
        public var retryDelayMilliseconds = 1000
        /// The longest a task is held unacknowledged before it is given up and sent to its retry queue:
        /// well under RabbitMQ's consumer timeout (30 min by default), past which the broker would take back
        /// every task of the worker's channel while the originals keep running. nil: no limit (the embedded
        /// run, whose in-memory transport has no consumer timeout and whose tasks may wait long for a rate limit).
        public var maxHoldSeconds: Double? = 20 * 60.0
        /// Holders of a task that may die in our own handling of it (not while it waited on a provider or a
        /// rate limit, nor before they began it: see `DeliveryCount`) before it is declared dead, if they also
        /// died in most of its redeliveries: a task that crashes its workers kills nearly every holder, while one
        /// that came back often for unrelated deaths (a slow call under many scale-ins) only now and then died
        /// with its holder in our code. A redelivered task that is not dead goes back as a fresh copy, so the
        /// broker's own count (20, which counts every death) never binds.
        public var deliveryLimit = 10
        /// How long a request's claim outlives a worker that died making it (renewed every third of that while
        /// the worker lives); others wait that long before making the call themselves.
        public var claimSeconds = 15.0
        /// Seconds between looks at the sweep's name key: when another sweep of this name starts, the
        /// worker finishes what it holds and moves to it. nil: the worker stays with its sweep (`--sweep`).
        public var sweepCheckSeconds: Double? = 5
        /// Seconds between looks at the sweep's finished marker: once the coordinator sets it, the worker
        /// finishes what it holds and stops consuming, so the coordinator can delete the task queues.
        public var finishCheckSeconds = 1.0

        public init() {}
    }

    let config: SweepConfig
    let names: ClusterNames
    let transport: any TaskTransport
    let state: any SharedState
    let runner: SweepRunner
    let options: Options
    let logger: Logger
    let identity = UUID().uuidString
    private let inFlight = InFlightCount()
    /// This worker's calls by stage (its live view).
    public var counters: CallCounters { runner.caller.counters }

    /// Why this worker should get no traffic, nil when it is fine: a model paused by its circuit breaker (the
    /// provider is unreachable from here; its tasks wait, pending) or the sweep stopped by a provider.
    public func notReady() async -> String? {
        if let stop = await stopped.reason { return "sweep stopped: \(stop.line)" }
        let paused = await runner.caller.pausedModels()
        return paused.isEmpty ? nil : "paused after repeated transport failures: \(paused.joined(separator: ", "))"
    }
    /// Why this worker stopped taking tasks (a provider refused a model outright), if it did.
    private let stopped = StopBox()
    private let draining = Drain()

    /// `limiter`: what admits the calls; by default the shared state's (rate limits across workers).
    public init(
        config: SweepConfig, sweepID: String, transport: any TaskTransport, state: any SharedState,
        providers: [String: any LLMProvider], limiter: (any RateLimiter)? = nil, options: Options = Options(),
        logger: Logger
    ) {
        self.config = config
        self.names = ClusterNames(sweepID: sweepID, sweepName: config.name)
        self.transport = transport
        self.state = state
        self.options = options
        var logger = logger
        logger[metadataKey: "sweep"] = "\(sweepID)"
        self.logger = logger
        let budget = config.maxCostUSD.map { state.budget(namespace: sweepID, limitUSD: $0) }
        let caller = ModelCaller(
            config: config, providers: providers,
            limiter: limiter ?? state.rateLimiter(namespace: sweepID, limits: ModelRateLimit.limits(of: config)),
            budget: budget, logger: logger)
        self.runner = SweepRunner(config: config, caller: caller)
    }

    /// How a worker's run ended.
    public enum Ending: Sendable, Equatable {
        /// SIGTERM / SIGINT: drained (or cut off at the drain deadline).
        case shutDown
        /// Another sweep of this config's name started: the worker finished what it held.
        case sweepReplaced(by: String)
        /// The coordinator found nothing pending: the worker finished what it held and stopped consuming.
        case sweepFinished
    }

    /// Takes the sweep's tasks until shut down; a finished sweep leaves it idle until then.
    public func run() async throws {
        if try await runSweep() != .shutDown { try? await gracefulShutdown() }
    }

    /// Takes the sweep's tasks until shut down or until another sweep of the config's name starts.
    public func runSweep() async throws -> Ending {
        // A sweep stopped by a refusing provider takes no tasks until its coordinator is started again.
        while let line = try await state.get(names.stopKey) {
            logger.warning(
                "sweep stopped; waiting for the coordinator to start it again", metadata: ["reason": "\(line)"])
            try await Task.sleep(for: .seconds(5))
        }
        try await transport.declare(names.queueSpecs(config))
        var streams: [AsyncStream<Delivery>] = []
        for queue in names.taskQueues(config) {
            streams.append(try await transport.consume(queue, prefetch: options.prefetch))
        }
        logger.info("worker consuming", metadata: ["worker.queues": "\(streams.count)"])
        // The deliveries are handled in a task of their own, so that a drain can cancel what is still
        // running at its deadline.
        let work = Task {
            await withDiscardingTaskGroup { group in
                for stream in streams {
                    group.addTask {
                        await withDiscardingTaskGroup { tasks in
                            for await delivery in stream {
                                await self.inFlight.add(1)
                                tasks.addTask {
                                    await self.process(delivery)
                                    await self.inFlight.add(-1)
                                }
                            }
                        }
                    }
                }
            }
        }
        let watcher = Task { await self.watchSweep() }
        await withGracefulShutdownHandler {
            await work.value
        } onGracefulShutdown: {
            self.draining.start { await self.drain(cancelling: work) }
        }
        // The drain closes the connection (what this worker held goes back to its queues) after the work ends.
        await draining.finished()
        watcher.cancel()
        logger.info("worker stopped")
        // Exits non-zero with the line, so an orchestrator restarts it (it then waits for the coordinator).
        if let reason = await stopped.reason { throw reason }
        return await watcher.value ?? .shutDown
    }

    /// Stops taking tasks, waits for those in flight until the drain deadline, cancels any still running
    /// (their claims and budget reservations are released, their calls recorded nowhere), then closes the
    /// connection, which ends the delivery streams; unacknowledged tasks go back to their queues.
    private func drain(cancelling work: Task<Void, Never>? = nil) async {
        let running = await inFlight.value
        logger.info("worker draining", metadata: ["worker.in_flight": "\(running)"])
        await transport.stopConsuming()
        let deadline = ContinuousClock.now + .seconds(options.drainSeconds)
        while await inFlight.value > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(100))
        }
        let left = await inFlight.value
        if let work, left > 0 {
            logger.warning(
                "drain deadline reached; cancelling tasks in flight", metadata: ["worker.in_flight": "\(left)"])
            SweepMetrics.drainCancelled(left)
            work.cancel()
            // A moment for the cancelled tasks to give back their claims and reservations.
            let unwind = ContinuousClock.now + .seconds(2)
            while await inFlight.value > 0, ContinuousClock.now < unwind {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        await transport.close()
    }

    /// Ends the delivery streams (tasks in flight finish) once the sweep is finished or another sweep of
    /// this config's name has started, and says which; nil when cancelled first.
    private func watchSweep() async -> Ending? {
        let key = ClusterNames.sweepKey(configName: config.name)
        var nameCheckedAt = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(min(options.finishCheckSeconds, options.sweepCheckSeconds ?? 60)))
            if Task.isCancelled { return nil }
            if (try? await state.get(names.finishedKey)) ?? nil != nil {
                logger.info("sweep finished; finishing the tasks held and stopping")
                await transport.stopConsuming()
                return .sweepFinished
            }
            guard let interval = options.sweepCheckSeconds, ContinuousClock.now - nameCheckedAt >= .seconds(interval)
            else { continue }
            nameCheckedAt = .now
            guard let current = (try? await state.get(key)) ?? nil, current != names.sweepID else { continue }
            logger.warning(
                "another sweep of this name started; finishing the tasks held and moving to it",
                metadata: ["sweep.next": "\(current)"])
            await transport.stopConsuming()
            return .sweepReplaced(by: current)
        }
        return nil
    }

    /// Handles one delivery to the end: ack after its results are confirmed, retry later, or
    /// dead-letter.
    func process(_ delivery: Delivery) async {
        let (stage, model) = names.stageAndModel(ofQueue: delivery.queue) ?? ("unknown", "unknown")
        var logger = logger
        logger[metadataKey: "stage"] = "\(stage)"
        logger[metadataKey: "model"] = "\(model)"
        SweepMetrics.task(.consumed, stage: stage, model: model)
        let task: PipelineTask
        do {
            task = try JSONDecoder().decode(PipelineTask.self, from: Data(delivery.body))
        } catch {
            logger.error("undecodable task dead-lettered", metadata: ["transport.queue": "\(delivery.queue)"])
            await transport.reject(delivery, requeue: false)
            SweepMetrics.task(.deadLettered, stage: stage, model: model)
            return
        }
        if let problem = task.problem(in: config) {
            logger.error(
                "task not of this sweep dead-lettered",
                metadata: ["transport.queue": "\(delivery.queue)", "task.problem": "\(problem)"])
            await transport.reject(delivery, requeue: false)
            SweepMetrics.task(.deadLettered, stage: stage, model: model)
            return
        }
        logger[metadataKey: "task"] = "\(task.id)"
        let deliveryCount = DeliveryCount(state: state, names: names, taskID: task.id)
        if delivery.redelivered {
            await handBack(redelivered: delivery, task: task, deliveryCount: deliveryCount, logger: logger)
            return
        }
        // In our own code from here, but for the waits on the outside: a holder dying now counts against the task.
        await deliveryCount.add(1)
        await handleFirstDelivery(
            delivery, task: task, deliveryCount: deliveryCount, stage: stage, model: model, logger: logger)
        // In a task of its own: this one may be cancelled (the drain deadline), and a missed -1 would count a death.
        await Task { await deliveryCount.add(-1) }.value
    }

    /// A redelivered task (its holder died or lost its connection) is dead if its holders died in their own
    /// handling of it more than `deliveryLimit` times and in most of its redeliveries: it would cycle for ever
    /// (the store learns it; a rerun of the coordinator retries it). Otherwise it goes back as a fresh copy,
    /// which resets the broker's own delivery count: that one counts every death, including those of holders
    /// that never began the task.
    private func handBack(
        redelivered delivery: Delivery, task: PipelineTask, deliveryCount: DeliveryCount, logger: Logger
    ) async {
        let (stage, model) = names.stageAndModel(ofQueue: delivery.queue) ?? ("unknown", "unknown")
        do {
            let (deaths, redeliveries) = try await deliveryCount.redelivered()
            if deaths > options.deliveryLimit && 2 * deaths > redeliveries {
                try await declareDead(
                    delivery, task: task,
                    reason: "its holders died \(deaths) times while handling it (of \(redeliveries) redeliveries)",
                    stage: stage, model: model, logger: logger)
                return
            }
            logger.info(
                "task redelivered; handed back as a fresh copy",
                metadata: ["task.deaths": "\(deaths)", "task.redeliveries": "\(redeliveries)"])
            await handBack(delivery)
        } catch is CancellationError {
            await Task { await self.handBack(delivery) }.value
        } catch {
            await retryOrDeadLetter(delivery, task: task, error: error, stage: stage, model: model, logger: logger)
        }
    }

    /// Handles a task delivered for the first time to the end: ack after its results are confirmed, retry
    /// later, or dead-letter.
    private func handleFirstDelivery(
        _ delivery: Delivery, task: PipelineTask, deliveryCount: DeliveryCount, stage: String, model: String,
        logger: Logger
    ) async {
        do {
            // Without a run id (the shared state lost it; the coordinator restores it) markers are neither read nor set.
            let run = try await state.get(names.runKey)
            if let run, try await state.get(names.doneKey(taskID: task.id, run: run)) != nil {
                await transport.ack(delivery)
                SweepMetrics.task(.acked, stage: stage, model: model)
                return
            }
            let records = TaskRecords(
                cache: SharedResponseCache(state: state, namespace: names.sweepID), owner: identity,
                claimSeconds: options.claimSeconds, deliveryCount: deliveryCount)
            let outcome: TaskOutcome
            do {
                let followUps = try await handle(task, records: records)
                let failed = records.rows.calls.contains { $0.status == "failed" }
                outcome = TaskOutcome(taskID: task.id, state: failed ? .incomplete : .done, followUps: followUps)
            } catch is ModelCaller.BudgetExhausted {
                outcome = TaskOutcome(taskID: task.id, state: .stopped, followUps: [])
            } catch let stop as SweepStopped {
                await stopTakingTasks(stop)
                return
            }
            // The result first: the aggregator (one consumer, in queue order) then stores this task's
            // rows and registers its follow-ups before any follow-up's result can arrive.
            try await transport.publish(ClusterMessage.finished(outcome, records.rows).encoded(), to: names.results)
            try await withThrowingDiscardingTaskGroup { group in
                for followUp in outcome.followUps {
                    let body = Array(try JSONEncoder().encode(followUp))
                    let queue = names.taskQueue(for: followUp, config: config)
                    group.addTask { try await self.transport.publish(body, to: queue) }
                }
            }
            if outcome.state == .done, let run {
                try await state.set(
                    names.doneKey(taskID: task.id, run: run), "1",
                    ttlSeconds: Double(SharedResponseCache.timeToLiveSeconds))
            }
            await transport.ack(delivery)
            SweepMetrics.task(.acked, stage: stage, model: model)
        } catch is CancellationError {
            // Cancelled at the drain deadline: the task goes back as a fresh copy (the original acked), not left
            // to redelivery. In a task of its own, this one being cancelled.
            await Task { await self.handBack(delivery) }.value
        } catch {
            await retryOrDeadLetter(delivery, task: task, error: error, stage: stage, model: model, logger: logger)
        }
    }

    /// Publishes a copy of `delivery` to its queue and acks the original; leaves it unacknowledged (the broker
    /// redelivers it) when the copy cannot be published.
    private func handBack(_ delivery: Delivery) async {
        do {
            try await transport.publish(delivery.body, to: delivery.queue, headers: delivery.headers)
            await transport.ack(delivery)
        } catch {
            logger.warning(
                "cannot hand a task back; the broker redelivers it", metadata: ["error": "\(error)"])
        }
    }

    /// The task held for too long: past `maxHoldSeconds` it is cancelled and retried later, before the
    /// broker's consumer timeout takes back everything this worker holds.
    struct HeldTooLong: Error, CustomStringConvertible {
        let seconds: Double
        var description: String { "the task ran past \(seconds) s (max_hold) and was cancelled" }
    }

    /// `runner.handle`, cancelled with `HeldTooLong` after `maxHoldSeconds`. Claims of calls that never
    /// finished are released before it returns, in a task of their own because this one may be cancelled.
    private func handle(_ task: PipelineTask, records: TaskRecords) async throws -> [PipelineTask] {
        do {
            let followUps = try await withThrowingTaskGroup(of: [PipelineTask]?.self) { group in
                group.addTask { try await self.runner.handle(task, records: records) }
                if let limit = options.maxHoldSeconds {
                    group.addTask {
                        try await Task.sleep(for: .seconds(limit))
                        throw HeldTooLong(seconds: limit)
                    }
                }
                defer { group.cancelAll() }
                return try await group.next()! ?? []
            }
            await Task { await records.releaseClaims() }.value
            return followUps
        } catch {
            await Task { await records.releaseClaims() }.value
            throw error
        }
    }

    /// Reports the task dead to the aggregator and dead-letters its message.
    private func declareDead(
        _ delivery: Delivery, task: PipelineTask, reason: String, stage: String, model: String, logger: Logger
    ) async throws {
        logger.error("task dead-lettered", metadata: ["reason": "\(reason)"])
        let outcome = TaskOutcome(taskID: task.id, state: .dead, followUps: [])
        try await transport.publish(ClusterMessage.finished(outcome, ResultBatch()).encoded(), to: names.results)
        await transport.reject(delivery, requeue: false)
        SweepMetrics.task(.deadLettered, stage: stage, model: model)
    }

    /// A provider refused a model outright: the sweep stops. The line goes to the shared state (the coordinator stops
    /// on it), this worker stops consuming, and its unacknowledged tasks (this one included) go back to their
    /// queues when the connection closes: pending, never `missing`.
    private func stopTakingTasks(_ stop: SweepStopped) async {
        guard await stopped.set(stop) else { return }
        logger.error("sweep stopped by the provider's answer", metadata: ["reason": "\(stop.line)"])
        _ = try? await state.setIfAbsent(
            names.stopKey, stop.line, ttlSeconds: Double(SharedResponseCache.timeToLiveSeconds))
        // Not awaited: the drain waits for the tasks in flight, and this one is among them until it returns.
        draining.start { await self.drain() }
    }

    /// Publishes the task to its retry queue (it comes back after a delay), or after `maxAttempts`
    /// reports it dead and dead-letters it.
    private func retryOrDeadLetter(
        _ delivery: Delivery, task: PipelineTask, error: any Error, stage: String, model: String, logger: Logger
    ) async {
        let attempt = (Int(delivery.headers["x-attempt"] ?? "") ?? 1) + 1
        do {
            if attempt <= options.maxAttempts {
                logger.warning("task failed; retrying", metadata: ["task.attempt": "\(attempt)", "error": "\(error)"])
                let delay = options.retryDelayMilliseconds << min(attempt - 2, 6)
                try await transport.publish(
                    delivery.body, to: names.retryQueue(of: delivery.queue), headers: ["x-attempt": "\(attempt)"],
                    expirationMilliseconds: delay)
                await transport.ack(delivery)
                SweepMetrics.task(.retried, stage: stage, model: model)
            } else {
                try await declareDead(
                    delivery, task: task, reason: "failed \(attempt - 1) times: \(error)", stage: stage, model: model,
                    logger: logger)
            }
        } catch {
            // The broker is unreachable too: leave the task unacknowledged for redelivery.
            logger.error("cannot retry task", metadata: ["error": "\(error)"])
        }
    }
}

/// The first stop of a worker.
actor StopBox {
    private(set) var reason: SweepStopped?

    /// True the first time.
    func set(_ stop: SweepStopped) -> Bool {
        guard reason == nil else { return false }
        reason = stop
        return true
    }
}

/// The worker's drain, started once (by SIGTERM or a refusing provider); the worker's run waits for it.
final class Drain: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var task: Task<Void, Never>?

    func start(_ body: @escaping @Sendable () async -> Void) {
        lock.withLock { if task == nil { task = Task { await body() } } }
    }

    func finished() async { await lock.withLock { task }?.value }
}

/// Tasks in flight in this process.
actor InFlightCount {
    private(set) var value = 0
    func add(_ delta: Int) { value += delta }
}
