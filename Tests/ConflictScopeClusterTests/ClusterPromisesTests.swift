import ConflictScope
import Foundation
import Logging
import ServiceLifecycle
import Testing

@testable import ConflictScope
@testable import ConflictScopeCluster

/// The cluster's promises, role by role, in this process against the real RabbitMQ and Redis: each test
/// breaks one way an operation used to break them.
@Suite("Cluster promises (roles in process)", .serialized)
struct ClusterPromisesTests {
    let logger = Logger(label: "promises-test")

    func connect(_ name: String) throws -> (BrokerConnection, RedisClient) {
        (
            BrokerConnection(settings: try BrokerSettings(url: amqpURL), name: name, logger: logger),
            RedisClient(settings: try RedisSettings(url: redisURL), logger: logger)
        )
    }

    /// Deletes the sweep's queues (quorum queues on the tests' broker: left behind, they slow it down). It runs
    /// on its own, not awaited: a clean-up must never hold up a test.
    func deleteQueues(sweepID: String, _ config: SweepConfig) async throws {
        let broker = BrokerConnection(settings: try BrokerSettings(url: amqpURL), name: "cleanup", logger: logger)
        let specs = ClusterNames(sweepID: sweepID, sweepName: config.name).queueSpecs(config)
        Task.detached {
            for spec in specs { try? await broker.deleteQueue(spec.name) }
            await broker.close()
        }
    }

    /// The next message on `queue` (within `timeout` seconds), acked.
    func nextMessage(_ broker: BrokerConnection, _ queue: String, timeout: Double = 30) async throws -> Delivery? {
        let stream = try await broker.consume(queue, prefetch: 1)
        let reader = Task { () -> Delivery? in
            for await delivery in stream {
                await broker.ack(delivery)
                return delivery
            }
            return nil
        }
        let watchdog = Task {
            try await Task.sleep(for: .seconds(timeout))
            reader.cancel()
        }
        defer { watchdog.cancel() }
        return await reader.value
    }

    @Test func registrationPartsStayUnderTheirLimit() {
        #expect(Coordinator.chunks([], limit: 10) == [0..<0])
        #expect(Coordinator.chunks([4, 4, 4, 4, 4], limit: 10) == [0..<2, 2..<4, 4..<5])
        // An item bigger than the limit goes alone.
        #expect(Coordinator.chunks([3, 30, 3], limit: 10) == [0..<1, 1..<2, 2..<3])
    }

    /// A duplicate's result arriving after the task is done rewrites none of its rows.
    @Test func aResultForADoneTaskChangesNothing() throws {
        let (_, config) = try smallSlowConfig("duplicate")
        let store = try ResultStore(path: config.storePath)
        _ = try store.bindSweep(config)
        let task = try #require(try SweepTasks(config: config).initial(store: store).first)
        try store.registerTasks([task], registration: "run")
        func result(_ text: String) -> ResultBatch {
            var batch = ResultBatch()
            batch.calls = [
                .init(
                    key: "k", taskID: task.id, role: "generator", model: "sim-writer", prompt: "p", sampleIndex: 0,
                    status: "ok", response: nil, error: nil, inputTokens: 1, outputTokens: 1, latencyMilliseconds: 1,
                    costUSD: 0.5, attempts: 1)
            ]
            batch.userPrompts = [.init(scenarioID: "s", text: text)]
            return batch
        }
        let done = TaskOutcome(taskID: task.id, state: .done, followUps: [])
        try store.apply(result("first"), outcome: done)
        try store.apply(result("second"), outcome: done)
        try store.apply(result("third"), outcome: TaskOutcome(taskID: task.id, state: .dead, followUps: []))
        #expect(try store.userPrompt(scenarioID: "s") == "first")
        #expect(try store.taskState(task.id) == .done)
        #expect(try store.callCounts().ok == 1)
    }

    /// A sweep whose registration is split into many parts finishes, and its summary counts no dead task.
    @Test(.timeLimit(.minutes(3)))
    func aSweepRegisteredInManyPartsFinishes() async throws {
        let (_, config) = try smallSlowConfig("parts", latencyMilliseconds: 5)
        let (broker, redis) = try connect("parts")
        defer { redis.shutdown() }
        let store = try ResultStore(path: config.storePath)
        var coordinator = Coordinator(
            config: config, store: store, transport: broker, state: RedisSharedState(redis: redis), logger: logger)
        coordinator.registrationChunkBytes = 1_000
        let sweepID = try store.bindSweep(config)
        let aggregator = try Aggregator(
            config: config, store: store, sweepID: sweepID, transport: broker, state: RedisSharedState(redis: redis),
            logger: logger)
        let worker = Worker(
            config: config, sweepID: sweepID, transport: broker, state: RedisSharedState(redis: redis),
            providers: EmbeddedSweep.providers(for: config, environment: [:]), logger: logger)
        let roles = Task {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await aggregator.run() }
                group.addTask { try await worker.run() }
            }
        }
        let summary = try await coordinator.run()
        roles.cancel()
        await broker.close()
        try await deleteQueues(sweepID: sweepID, config)
        #expect(summary.deadTasks == 0)
        #expect(summary.report.rankings.isEmpty == false)
        let counts = try store.taskCounts()
        #expect(
            counts.values.reduce(0) { $0 + ($1[.done] ?? 0) } == counts.values.reduce(0) { $0 + $1.values.reduce(0, +) }
        )
    }

    /// A second coordinator of a running sweep refuses to start.
    @Test(.timeLimit(.minutes(1)))
    func aSecondCoordinatorRefusesToStart() async throws {
        let (_, config) = try smallSlowConfig("lease")
        let (broker, redis) = try connect("lease")
        defer { redis.shutdown() }
        let store = try ResultStore(path: config.storePath)
        let names = ClusterNames(sweepID: try store.bindSweep(config), sweepName: config.name)
        let running = RedisLease(redis: redis, key: names.coordinatorKey, owner: "the first", ttlMilliseconds: 30_000)
        #expect(try await running.acquire())
        var second = Coordinator(
            config: config, store: store, transport: broker, state: RedisSharedState(redis: redis), logger: logger)
        second.leaseWaitSeconds = 1
        await #expect(throws: Coordinator.AlreadyRunning.self) { _ = try await second.run() }
        #expect(try await running.holder() == "the first")
        try await running.release()
        await broker.close()
    }

    /// A worker bound to a stale id of its sweep's name moves to the new sweep once it starts.
    @Test(.timeLimit(.minutes(1)))
    func aWorkerLeavesAStaleSweepForTheNewOne() async throws {
        let (_, config) = try smallSlowConfig("stale")
        let (broker, redis) = try connect("stale")
        defer { redis.shutdown() }
        let key = ClusterNames.sweepKey(configName: config.name)
        try await redis.set(key, "stale-sweep", ttlSeconds: 60)
        var options = Worker.Options()
        options.sweepCheckSeconds = 0.2
        let worker = Worker(
            config: config, sweepID: "stale-sweep", transport: broker, state: RedisSharedState(redis: redis),
            providers: [:], options: options,
            logger: logger)
        let ending = Task { try await worker.runSweep() }
        try await Task.sleep(for: .milliseconds(500))
        try await redis.set(key, "new-sweep", ttlSeconds: 60)
        #expect(try await ending.value == .sweepReplaced(by: "new-sweep"))
        await broker.close()
        try await deleteQueues(sweepID: "stale-sweep", config)
    }

    /// A task held past `maxHoldSeconds` is cancelled and retried, here with no retries left: it is dead.
    @Test(.timeLimit(.minutes(1)))
    func aTaskHeldTooLongIsGivenUpBeforeTheConsumerTimeout() async throws {
        let (_, config) = try smallSlowConfig("hold", latencyMilliseconds: 20_000)
        let (broker, redis) = try connect("hold")
        defer { redis.shutdown() }
        let store = try ResultStore(path: config.storePath)
        let names = ClusterNames(sweepID: try store.bindSweep(config), sweepName: config.name)
        try await broker.declare(names.queueSpecs(config))
        var options = Worker.Options()
        options.maxHoldSeconds = 1
        options.maxAttempts = 1
        let worker = Worker(
            config: config, sweepID: names.sweepID, transport: broker, state: RedisSharedState(redis: redis),
            providers: EmbeddedSweep.providers(for: config, environment: [:]), options: options, logger: logger)
        let task = try #require(try SweepTasks(config: config).initial(store: store).first)
        try await broker.publish(Array(try JSONEncoder().encode(task)), to: names.taskQueue(for: task, config: config))
        let started = ContinuousClock.now
        let running = Task { try await worker.run() }
        let result = try #require(try await nextMessage(broker, names.results))
        guard case .finished(let outcome, _) = try ClusterMessage.decode(result.body) else {
            Issue.record("not an outcome")
            return
        }
        #expect(outcome.taskID == task.id && outcome.state == .dead)
        #expect(ContinuousClock.now - started < .seconds(15), "the 20 s call was not waited for")
        running.cancel()
        await broker.close()
        try await deleteQueues(sweepID: names.sweepID, config)
    }

    /// A task that keeps coming back redelivered (its holders crash or stall) becomes dead, and a task the
    /// broker dead-letters by itself is recorded dead by the aggregator.
    @Test(.timeLimit(.minutes(1)))
    func redeliveredAndBrokerDeadLetteredTasksBecomeDead() async throws {
        let (_, config) = try smallSlowConfig("redelivered")
        let (broker, redis) = try connect("redelivered")
        defer { redis.shutdown() }
        let store = try ResultStore(path: config.storePath)
        let names = ClusterNames(sweepID: try store.bindSweep(config), sweepName: config.name)
        try await broker.declare(names.queueSpecs(config))
        let tasks = try SweepTasks(config: config).initial(store: store)
        try #require(tasks.count >= 2)
        try store.registerTasks(tasks, registration: "test")

        // Four holders of the first task died in their handling of it already: redelivered once more, it is dead.
        var options = Worker.Options()
        options.deliveryLimit = 3
        try await redis.set(names.deathsKey(taskID: tasks[0].id), "4", ttlSeconds: 60)
        let queue = names.taskQueue(for: tasks[0], config: config)
        try await broker.publish(Array(try JSONEncoder().encode(tasks[0])), to: queue)
        // A worker takes it and dies holding it: its connection closes, and the task comes back redelivered.
        let (crasher, crasherRedis) = try connect("crasher")
        crasherRedis.shutdown()
        for await _ in try await crasher.consume(queue, prefetch: 1) { break }
        await crasher.close()
        let worker = Worker(
            config: config, sweepID: names.sweepID, transport: broker, state: RedisSharedState(redis: redis),
            providers: [:], options: options,
            logger: logger)
        let working = Task { try await worker.run() }
        let result = try #require(try await nextMessage(broker, names.results))
        guard case .finished(let outcome, _) = try ClusterMessage.decode(result.body) else {
            Issue.record("not an outcome")
            return
        }
        #expect(outcome.taskID == tasks[0].id && outcome.state == .dead)
        // The worker rejects the task right after reporting it: wait for it on the dead-letter route.
        for _ in 0..<50 where (try await broker.queueState(names.deadTasks)?.messages ?? 0) < 1 {
            try await Task.sleep(for: .milliseconds(100))
        }
        working.cancel()
        await broker.close()
        let (other, _) = try connect("redelivered-aggregator")

        // The second task is dead-lettered as the broker's delivery limit would: it is recorded dead and
        // kept on the dead queue for inspection (beside the first, which the worker dead-lettered).
        let aggregator = try Aggregator(
            config: config, store: store, sweepID: names.sweepID, transport: other,
            state: RedisSharedState(redis: redis), logger: logger)
        try await other.publish(Array(try JSONEncoder().encode(tasks[1])), to: names.deadTasks)
        let aggregating = Task { try await aggregator.run() }
        var state: String?
        for _ in 0..<100 where state != "dead" {
            try await Task.sleep(for: .milliseconds(100))
            state = try store.taskState(tasks[1].id)?.rawValue
        }
        #expect(state == "dead")
        var kept = 0
        for _ in 0..<50 where kept < 2 {
            kept = try await other.queueState(names.dead)?.messages ?? 0
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(kept == 2)
        aggregating.cancel()
        await other.close()
        try await deleteQueues(sweepID: names.sweepID, config)
    }

    /// A worker shut down while a slow call runs cancels it at the drain deadline: it does not wait for the
    /// call, and gives back the call's claim and budget reservation.
    @Test(.timeLimit(.minutes(1)))
    func theDrainCancelsWhatIsStillRunningAtItsDeadline() async throws {
        let (_, config) = try smallSlowConfig("drain", latencyMilliseconds: 30_000) { text in
            // Priced, so that a call reserves some of the budget.
            text.replacingOccurrences(of: "# max_cost_usd = 25.0", with: "max_cost_usd = 25.0")
                .replacingOccurrences(
                    of: "[models.sim-writer]\nprovider = \"sim\"",
                    with: "[models.sim-writer]\nprovider = \"sim\"\ninput_usd_per_mtok = 1.0\noutput_usd_per_mtok = 4.0"
                )
        }
        let (broker, redis) = try connect("drain")
        defer { redis.shutdown() }
        let store = try ResultStore(path: config.storePath)
        let names = ClusterNames(sweepID: try store.bindSweep(config), sweepName: config.name)
        try await broker.declare(names.queueSpecs(config))
        let budget = RedisBudget(redis: redis, namespace: names.sweepID, limitUSD: 25)
        try await budget.start(spentUSD: 0)
        var options = Worker.Options()
        options.drainSeconds = 0.5
        let worker = Worker(
            config: config, sweepID: names.sweepID, transport: broker, state: RedisSharedState(redis: redis),
            providers: EmbeddedSweep.providers(for: config, environment: [:]), options: options, logger: logger)
        let task = try #require(try SweepTasks(config: config).initial(store: store).first)
        try await broker.publish(Array(try JSONEncoder().encode(task)), to: names.taskQueue(for: task, config: config))
        let reserved = "cs:\(names.sweepID):budget:reserved"
        let claims = { try await redis.command(["KEYS", "cs:\(names.sweepID):cache-claim:*"]) }
        let group = ServiceGroup(configuration: .init(services: [worker], logger: logger))
        let running = Task { try await group.run() }
        // Wait until the call is under way: its claim taken and its cost reserved.
        for _ in 0..<200 {
            if try await redis.get(reserved).flatMap(Int.init) ?? 0 > 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(try await redis.get(reserved).flatMap(Int.init) ?? 0 > 0)
        #expect(try await claims() != .array([]))
        let stopping = ContinuousClock.now
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(ContinuousClock.now - stopping < .seconds(10), "the drain waited for the 30 s call")
        #expect(try await redis.get(reserved).flatMap(Int.init) == 0, "the reservation was not given back")
        #expect(try await claims() == .array([]), "a claim was left behind")
        try await deleteQueues(sweepID: names.sweepID, config)
    }
}
