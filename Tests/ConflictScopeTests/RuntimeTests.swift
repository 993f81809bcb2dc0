import Foundation
import Logging
import ServiceLifecycle
import Testing

@testable import ConflictScope

/// Counts the provider calls that were answered (what a real provider would charge for), per request.
final class CountingProvider: LLMProvider, @unchecked Sendable {
    let inner: any LLMProvider
    private let lock = NSLock()
    private var answered: [String: Int] = [:]

    init(_ inner: any LLMProvider) { self.inner = inner }

    func chat(_ request: ChatRequest) async throws(ProviderError) -> ChatResponse {
        let response = try await inner.chat(request)
        lock.withLock { answered[String(describing: request), default: 0] += 1 }
        return response
    }

    func embed(_ texts: [String], model: String) async throws(ProviderError) -> [[Double]] {
        try await inner.embed(texts, model: model)
    }

    /// Answers beyond the first for one request.
    var paidTwice: Int { lock.withLock { answered.values.reduce(0) { $0 + $1 - 1 } } }
    var calls: Int { lock.withLock { answered.values.reduce(0, +) } }
}

/// The coordinator, workers and aggregator of one sweep in this process, over the in-memory transport
/// and shared state: the cluster's logic without its servers.
struct InProcessCluster {
    let config: SweepConfig
    let store: ResultStore
    let broker: InMemoryBroker
    let state = InMemorySharedState()
    let provider: CountingProvider
    let logger = Logger(label: "runtime-test")

    init(_ config: SweepConfig, broker: InMemoryBroker = InMemoryBroker()) throws {
        self.config = config
        self.store = try ResultStore(path: config.storePath)
        self.broker = broker
        let simulated = try #require(EmbeddedSweep.providers(for: config, environment: [:])["sim"])
        self.provider = CountingProvider(simulated)
    }

    func names() throws -> ClusterNames { ClusterNames(sweepID: try store.bindSweep(config), sweepName: config.name) }

    /// Registers `tasks` in the store and publishes them, as the coordinator would; returns the connection
    /// that published them.
    func publishRegistered(_ tasks: [PipelineTask]) async throws -> any TaskTransport {
        let names = try names()
        try store.registerTasks(tasks, registration: "test")
        let transport = await broker.connect()
        try await transport.declare(names.queueSpecs(config))
        for task in tasks {
            try await transport.publish(
                Array(try JSONEncoder().encode(task)), to: names.taskQueue(for: task, config: config))
        }
        return transport
    }

    func worker(_ options: Worker.Options = fastWorker()) async throws -> Worker {
        Worker(
            config: config, sweepID: try store.bindSweep(config), transport: await broker.connect(), state: state,
            providers: ["sim": provider], options: options, logger: logger)
    }

    func aggregator() async throws -> Aggregator {
        try Aggregator(
            config: config, store: store, sweepID: try store.bindSweep(config), transport: await broker.connect(),
            state: state, refitInterval: 0.2, logger: logger)
    }

    func coordinator() async -> Coordinator {
        var coordinator = Coordinator(
            config: config, store: store, transport: await broker.connect(), state: state, logger: logger)
        coordinator.pollInterval = 0.05
        return coordinator
    }

    static func fastWorker() -> Worker.Options {
        var options = Worker.Options()
        options.retryDelayMilliseconds = 10
        options.drainSeconds = 0.5
        options.sweepCheckSeconds = nil
        options.finishCheckSeconds = 0.05
        return options
    }

    /// Runs `services` until `body` returns, then shuts them down gracefully.
    func with<T: Sendable>(_ services: [any Service], _ body: () async throws -> T) async throws -> T {
        let group = ServiceGroup(configuration: .init(services: services, logger: logger))
        let running = Task { try await group.run() }
        do {
            let result = try await body()
            await group.triggerGracefulShutdown()
            try await running.value
            return result
        } catch {
            await group.triggerGracefulShutdown()
            _ = try? await running.value
            throw error
        }
    }

    /// A whole sweep: the coordinator with an aggregator and `workers` workers.
    func run(workers: Int = 2, options: Worker.Options = fastWorker()) async throws -> EmbeddedSweep.Summary {
        var services: [any Service] = [try await aggregator()]
        for _ in 0..<workers { services.append(try await worker(options)) }
        let coordinator = await coordinator()
        return try await with(services) { try await coordinator.run() }
    }

    func taskCount(_ state: TaskState) throws -> Int {
        try store.taskCounts().values.reduce(0) { $0 + ($1[state] ?? 0) }
    }

    func allTasks() throws -> Int { try store.taskCounts().values.reduce(0) { $0 + $1.values.reduce(0, +) } }

    /// Runs the aggregator and a worker with `deliveryLimit` (0: any death it counts kills the task) until none
    /// of `tasks` is pending.
    func settle(_ tasks: [PipelineTask], deliveryLimit: Int = 0) async throws {
        var options = Self.fastWorker()
        options.deliveryLimit = deliveryLimit
        try await with([try await aggregator(), try await worker(options)]) {
            while try tasks.contains(where: { try store.taskState($0.id) == .pending }) {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
    }
}

/// A small sweep whose simulated answers take `latency` ms.
func runtimeConfig(scenariosPerPair: Int = 1, latency: Int = 0, maxCost: Double? = nil) throws -> SweepConfig {
    var (config, _) = try smallSweepConfig(scenariosPerPair: scenariosPerPair, maxCost: maxCost)
    config.providers["sim"]?.latencyMilliseconds = latency
    return config
}

/// The cluster's promises, role by role, in milliseconds: the roles over the in-memory transport and shared
/// state (`ClusterPromisesTests` repeats the ones that depend on the servers against RabbitMQ and Redis).
@Suite("Roles in one process", .serialized)
struct RuntimeTests {
    @Test(.timeLimit(.minutes(4)))
    func theRolesInOneProcessMeasureWhatTheEmbeddedRunMeasures() async throws {
        let embedded = try await EmbeddedSweep.run(config: try runtimeConfig())
        let cluster = try InProcessCluster(try runtimeConfig())
        let summary = try await cluster.run()
        #expect(summary.deadTasks == 0)
        #expect(try cluster.taskCount(.done) == cluster.allTasks())
        #expect(summary.report == embedded.report)
        #expect(cluster.provider.paidTwice == 0)
        #expect(cluster.provider.calls == embedded.callsMade)
    }

    /// Every task delivered twice (a redelivery after a lost ack, a duplicate publish): each request is paid
    /// for once, and the results are those of a clean run.
    @Test(.timeLimit(.minutes(4)))
    func duplicateDeliveriesPayOnce() async throws {
        let clean = try await EmbeddedSweep.run(config: try runtimeConfig())
        let cluster = try InProcessCluster(try runtimeConfig(latency: 20))
        let names = try cluster.names()
        let publisher = await cluster.broker.connect()
        try await publisher.declare(names.queueSpecs(cluster.config))
        // Copies of the first tasks, published ahead of the coordinator's.
        for task in try SweepTasks(config: cluster.config).initial(store: cluster.store) {
            try await publisher.publish(
                Array(try JSONEncoder().encode(task)), to: names.taskQueue(for: task, config: cluster.config))
        }
        let summary = try await cluster.run(workers: 3)
        #expect(summary.report == clean.report)
        #expect(cluster.provider.paidTwice == 0)
    }

    /// A worker shut down while a slow call runs cancels it at the drain deadline and gives back the call's
    /// claim and budget reservation; the task goes back to its queue, pending, as a fresh copy.
    @Test(.timeLimit(.minutes(4)))
    func theDrainCancelsAtItsDeadlineAndGivesBackClaimsAndReservations() async throws {
        let cluster = try InProcessCluster(try runtimeConfig(latency: 30_000, maxCost: 25))
        let names = try cluster.names()
        let transport = await cluster.broker.connect()
        try await transport.declare(names.queueSpecs(cluster.config))
        try await cluster.state.budget(namespace: names.sweepID, limitUSD: 25).start(spentUSD: 0)
        let task = try #require(try SweepTasks(config: cluster.config).initial(store: cluster.store).first)
        let queue = names.taskQueue(for: task, config: cluster.config)
        try await transport.publish(Array(try JSONEncoder().encode(task)), to: queue)
        let reserved = "cs:\(names.sweepID):budget:reserved"
        let worker = try await cluster.worker()
        let stopping = try await cluster.with([worker]) { () -> ContinuousClock.Instant in
            while try await cluster.state.get(reserved).flatMap(Int.init) ?? 0 == 0 {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(try await cluster.state.keys(prefix: "cs:\(names.sweepID):cache-claim:").count == 1)
            return .now
        }
        // The drain's deadline is 0.5 s; the bound is loose for a test run with the other suites busy on both cores.
        #expect(ContinuousClock.now - stopping < .seconds(15), "the drain waited for the 30 s call")
        #expect(try await cluster.state.get(reserved) == "0", "the reservation was not given back")
        #expect(try await cluster.state.keys(prefix: "cs:\(names.sweepID):cache-claim:").isEmpty)
        #expect(try await transport.queueState(queue)?.messages == 1, "the task is not back in its queue")
        #expect(cluster.provider.calls == 0)
        // Back as a fresh copy: a scale-in does not count towards the task's redelivery limit.
        for await copy in try await transport.consume(queue, prefetch: 1) {
            #expect(!copy.redelivered)
            break
        }
    }

    /// A task that keeps killing the workers that take it is dead-lettered by the broker's delivery limit;
    /// the aggregator records it dead and the coordinator finishes with it counted.
    @Test(.timeLimit(.minutes(4)))
    func aTaskTheBrokerDeadLettersEndsTheSweepAsDead() async throws {
        let cluster = try InProcessCluster(try runtimeConfig(), broker: InMemoryBroker(deliveryLimit: 3))
        let names = try cluster.names()
        let config = cluster.config
        let first = try #require(try SweepTasks(config: config).initial(store: cluster.store).first)
        let queue = names.taskQueue(for: first, config: config)
        // A worker that dies holding whatever it takes from the first task's queue, three times.
        let crasher = Task {
            var crashes = 0
            while crashes < 3 {
                let connection = await cluster.broker.connect()
                guard let stream = try? await connection.consume(queue, prefetch: 1) else {
                    try await Task.sleep(for: .milliseconds(5))
                    continue
                }
                for await _ in stream { break }
                await connection.close()
                crashes += 1
            }
        }
        let aggregator = try await cluster.aggregator()
        let coordinator = await cluster.coordinator()
        let summary = try await cluster.with([aggregator]) {
            // The workers start once the crasher is done, so the task reaches the limit first.
            let run = Task { try await coordinator.run() }
            try await crasher.value
            return try await cluster.with([try await cluster.worker()]) { try await run.value }
        }
        #expect(summary.deadTasks == 1)
        #expect(try cluster.store.taskState(first.id) == .dead)
        #expect(try await cluster.broker.connect().queueState(names.dead)?.messages == 1)
    }

    /// A holder that dies while handling a task itself (here: it began the task, as a worker does, and died
    /// without a claim) counts against the task: past the worker's delivery limit (0 here) the worker reports it
    /// dead, before the broker's own limit. A holder that dies with a task it had not begun (prefetched) does not.
    @Test(.timeLimit(.minutes(4)))
    func aTaskWhoseHoldersDieInItsHandlingIsDead() async throws {
        let cluster = try InProcessCluster(try runtimeConfig())
        let names = try cluster.names()
        let tasks = Array(try SweepTasks(config: cluster.config).initial(store: cluster.store).prefix(2))
        try #require(tasks.count == 2)
        let (begun, prefetched) = (tasks[0], tasks[1])
        let transport = try await cluster.publishRegistered(tasks)
        // Its holder takes both, begins one and dies: both come back redelivered.
        for task in tasks {
            for await _ in try await transport.consume(names.taskQueue(for: task, config: cluster.config), prefetch: 1)
            {
                break
            }
        }
        await DeliveryCount(state: cluster.state, names: names, taskID: begun.id).add(1)
        await transport.close()
        try await cluster.settle(tasks)
        #expect(try cluster.store.taskState(begun.id) == .dead)
        #expect(try await cluster.state.get(names.deathsKey(taskID: begun.id)) == "1")
        #expect(try cluster.store.taskState(prefetched.id) == .done)
        #expect(try await cluster.state.get(names.deathsKey(taskID: prefetched.id)) == "0")
    }

    /// A task that came back many times, its holders dying in its handling only in a few of them (a slow call
    /// cycling under scale-ins), is not what the delivery limit is for: past the limit it is handed back and
    /// done, since its holders did not die in most of its redeliveries.
    @Test(.timeLimit(.minutes(4)))
    func aTaskRedeliveredMostlyForUnrelatedDeathsIsNotDead() async throws {
        let cluster = try InProcessCluster(try runtimeConfig())
        let names = try cluster.names()
        let first = try #require(try SweepTasks(config: cluster.config).initial(store: cluster.store).first)
        let transport = try await cluster.publishRegistered([first])
        let queue = names.taskQueue(for: first, config: cluster.config)
        for await _ in try await transport.consume(queue, prefetch: 1) { break }
        await transport.close()
        // Two deaths in its handling over ten earlier redeliveries; the limit is 1.
        try await cluster.state.set(names.deathsKey(taskID: first.id), "2", ttlSeconds: 60)
        try await cluster.state.set(names.redeliveriesKey(taskID: first.id), "10", ttlSeconds: 60)
        try await cluster.settle([first], deliveryLimit: 1)
        #expect(try cluster.store.taskState(first.id) == .done)
        #expect(try await cluster.state.get(names.redeliveriesKey(taskID: first.id)) == "11")
    }

    /// A holder lost while its task waits on the provider (scaled in, its node gone, its connection cut) does
    /// not count against the task: even with a delivery limit of 0 the redelivered task is handed back as a fresh
    /// copy, waits for the call already made, and is done with the request paid once.
    @Test(.timeLimit(.minutes(4)))
    func aHolderLostDuringAProviderCallDoesNotCountAgainstTheTask() async throws {
        let cluster = try InProcessCluster(try runtimeConfig(latency: 3_000))
        let names = try cluster.names()
        let first = try #require(try SweepTasks(config: cluster.config).initial(store: cluster.store).first)
        _ = try await cluster.publishRegistered([first])
        let lostConnection = await cluster.broker.connect()
        let lost = Worker(
            config: cluster.config, sweepID: names.sweepID, transport: lostConnection, state: cluster.state,
            providers: ["sim": cluster.provider], options: InProcessCluster.fastWorker(), logger: cluster.logger)
        let holding = Task { try await lost.runSweep() }
        // Its call is under way: the task's count (raised when the worker began it) is lowered while it waits.
        let count = names.deathsKey(taskID: first.id)
        while try await cluster.state.get(count) != "0" { try await Task.sleep(for: .milliseconds(10)) }
        await lostConnection.close()
        try await cluster.settle([first])
        holding.cancel()
        #expect(try cluster.store.taskState(first.id) == .done)
        #expect(cluster.provider.paidTwice == 0)
    }

    /// A result over the transport's message size limit fails its publish instead of looping: the task is
    /// retried, then dead, and the sweep ends.
    @Test(.timeLimit(.minutes(4)))
    func aMessageOverTheSizeLimitFailsItsTaskInsteadOfLooping() async throws {
        let cluster = try InProcessCluster(try runtimeConfig(), broker: InMemoryBroker(maxMessageBytes: 6_000))
        var options = InProcessCluster.fastWorker()
        options.maxAttempts = 2
        let summary = try await cluster.run(workers: 1, options: options)
        #expect((summary.deadTasks ?? 0) > 0)
        #expect(try cluster.taskCount(.pending) == 0)
        let transport = await cluster.broker.connect()
        await #expect(throws: TransportError.unroutable(queue: "nowhere")) {
            try await transport.publish([1], to: "nowhere")
        }
    }

    /// A sweep registered in many small parts finishes with every task done.
    @Test(.timeLimit(.minutes(4)))
    func aRegistrationInManyPartsFinishes() async throws {
        let cluster = try InProcessCluster(try runtimeConfig())
        var coordinator = await cluster.coordinator()
        coordinator.registrationChunkBytes = 500
        let services: [any Service] = [try await cluster.aggregator(), try await cluster.worker()]
        let summary = try await cluster.with(services) { try await coordinator.run() }
        #expect(summary.deadTasks == 0)
        #expect(try cluster.taskCount(.done) == cluster.allTasks())
    }

    /// A second coordinator of a running sweep refuses to start; one restarted after a kill waits for the
    /// killed one's lease to lapse, then runs the sweep.
    @Test(.timeLimit(.minutes(4)))
    func oneCoordinatorPerSweep() async throws {
        let cluster = try InProcessCluster(try runtimeConfig())
        let names = try cluster.names()
        let running = cluster.state.lease(names.coordinatorKey, owner: "running", ttlMilliseconds: 30_000)
        #expect(try await running.acquire())
        var second = await cluster.coordinator()
        second.leaseWaitSeconds = 0.3
        await #expect(throws: Coordinator.AlreadyRunning.self) { _ = try await second.run() }
        #expect(try await running.holder() == "running")
        try await running.release()

        let killed = cluster.state.lease(names.coordinatorKey, owner: "killed", ttlMilliseconds: 500)
        #expect(try await killed.acquire())
        var restarted = await cluster.coordinator()
        restarted.leaseWaitSeconds = 5
        let services: [any Service] = [try await cluster.aggregator(), try await cluster.worker()]
        let summary = try await cluster.with(services) { try await restarted.run() }
        #expect(summary.deadTasks == 0)
        #expect(try await killed.holder() == nil, "the finished coordinator kept its lease")
    }

    /// A task held past `maxHoldSeconds` is cancelled and retried, here with no retry left: dead, long before
    /// its 20 s call would have ended.
    @Test(.timeLimit(.minutes(4)))
    func aTaskHeldTooLongIsGivenUp() async throws {
        let cluster = try InProcessCluster(try runtimeConfig(scenariosPerPair: 1, latency: 20_000))
        var options = InProcessCluster.fastWorker()
        options.maxHoldSeconds = 0.3
        options.maxAttempts = 1
        let started = ContinuousClock.now
        let summary = try await cluster.run(workers: 1, options: options)
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(try summary.deadTasks == cluster.allTasks())
        #expect(cluster.provider.calls == 0)
    }

    /// A worker bound to an old sweep of its config's name moves to the new one when it starts.
    @Test(.timeLimit(.minutes(4)))
    func aWorkerLeavesAStaleSweepForTheNewOne() async throws {
        let cluster = try InProcessCluster(try runtimeConfig())
        let key = ClusterNames.sweepKey(configName: cluster.config.name)
        try await cluster.state.set(key, "stale-sweep", ttlSeconds: 60)
        var options = InProcessCluster.fastWorker()
        options.sweepCheckSeconds = 0.05
        let worker = Worker(
            config: cluster.config, sweepID: "stale-sweep", transport: await cluster.broker.connect(),
            state: cluster.state, providers: [:], options: options, logger: cluster.logger)
        let ending = Task { try await worker.runSweep() }
        try await Task.sleep(for: .milliseconds(100))
        try await cluster.state.set(key, "new-sweep", ttlSeconds: 60)
        #expect(try await ending.value == .sweepReplaced(by: "new-sweep"))
    }

    /// A finished sweep's workers stop consuming and its task queues are deleted; the results and dead-letter
    /// queues stay. A rerun of the coordinator brings the worker back to the sweep.
    @Test(.timeLimit(.minutes(4)))
    func aFinishedSweepDeletesItsTaskQueues() async throws {
        let cluster = try InProcessCluster(try runtimeConfig())
        let names = try cluster.names()
        let worker = try await cluster.worker()
        let ending = Task { try await worker.runSweep() }
        let aggregator = try await cluster.aggregator()
        let summary = try await cluster.with([aggregator]) { try await cluster.coordinator().run() }
        #expect(summary.deadTasks == 0)
        #expect(try await ending.value == .sweepFinished)
        let transport = await cluster.broker.connect()
        for queue in names.workQueues(cluster.config) { #expect(try await transport.queueState(queue) == nil) }
        for queue in [names.results, names.deadTasks, names.dead] {
            #expect(try await transport.queueState(queue) != nil)
        }
        #expect(try await cluster.state.get(ClusterNames.sweepKey(configName: cluster.config.name)) == nil)
        #expect(try await cluster.state.get(names.finishedKey) != nil)
    }

    /// A worker that cannot reach its provider pauses the model instead of failing its calls: it reports itself
    /// not ready, records nothing, and on shutdown its tasks go back to their queue, pending.
    @Test(.timeLimit(.minutes(4)))
    func aWorkerCutOffFromItsProviderIsUnreadyAndLeavesItsTasksPending() async throws {
        struct Unreachable: LLMProvider {
            func chat(_ request: ChatRequest) async throws(ProviderError) -> ChatResponse {
                throw ProviderError(.connection, "connection refused")
            }
            func embed(_ texts: [String], model: String) async throws(ProviderError) -> [[Double]] {
                throw ProviderError(.connection, "connection refused")
            }
        }
        let cluster = try InProcessCluster(try runtimeConfig())
        let names = try cluster.names()
        let tasks = try SweepTasks(config: cluster.config).initial(store: cluster.store)
        let transport = try await cluster.publishRegistered(tasks)
        let worker = Worker(
            config: cluster.config, sweepID: names.sweepID, transport: await cluster.broker.connect(),
            state: cluster.state, providers: ["sim": Unreachable()], options: InProcessCluster.fastWorker(),
            logger: cluster.logger)
        #expect(await worker.notReady() == nil)
        let reason = try await cluster.with([worker, try await cluster.aggregator()]) { () -> String? in
            for _ in 0..<200 {
                if let reason = await worker.notReady() { return reason }
                try await Task.sleep(for: .milliseconds(20))
            }
            return nil
        }
        #expect(reason?.contains("paused after repeated transport failures: writer") == true)
        #expect(try cluster.store.callCounts().failed == 0)
        #expect(try cluster.taskCount(.pending) == tasks.count)
        let queue = names.taskQueue(for: tasks[0], config: cluster.config)
        #expect(try await transport.queueState(queue)?.messages == tasks.count)
    }

    /// The shared state loses everything mid-sweep (Redis restarted without its data): the coordinator
    /// restores the run and the budget, and the sweep finishes within its budget.
    @Test(.timeLimit(.minutes(4)))
    func aSweepSurvivesItsSharedStateBeingLost() async throws {
        let cluster = try InProcessCluster(try runtimeConfig(latency: 30, maxCost: 25))
        let forget = Task {
            while try cluster.taskCount(.done) < 3 { try await Task.sleep(for: .milliseconds(10)) }
            cluster.state.forgetEverything()
        }
        let summary = try await cluster.run()
        try await forget.value
        #expect(summary.deadTasks == 0)
        #expect(try cluster.taskCount(.done) == cluster.allTasks())
        #expect(try cluster.store.spentUSD() <= 25)
        #expect(cluster.provider.paidTwice == 0)
    }

    /// The budget binds: what the provider charged never passes the limit, however many workers reserve at
    /// once, and the tasks it stopped are `stopped`, not failed.
    @Test(.timeLimit(.minutes(4)))
    func theBudgetBindsAcrossWorkers() async throws {
        let full = try await EmbeddedSweep.run(config: try runtimeConfig())
        let limit = full.spentUSD / 3
        let cluster = try InProcessCluster(try runtimeConfig(latency: 5, maxCost: limit))
        let summary = try await cluster.run(workers: 3)
        #expect(summary.budgetReached)
        #expect(try cluster.store.spentUSD() <= limit)
        #expect(try cluster.store.spentUSD() > 0)
        #expect(try cluster.taskCount(.stopped) > 0)
    }
}

/// The in-memory shared state keeps Redis' rules, so the roles' tests mean what the cluster does.
@Suite struct InMemorySharedStateTests {
    @Test func keysLapseAndSetIfAbsentKeepsTheStandingValue() async throws {
        let state = InMemorySharedState()
        #expect(try await state.setIfAbsent("k", "first", ttlSeconds: nil) == "first")
        #expect(try await state.setIfAbsent("k", "second", ttlSeconds: nil) == "first")
        // Keys that must still be there live a minute, so a test run busy on both cores cannot lapse them.
        try await state.set("long", "x", ttlSeconds: 60)
        #expect(try await state.get("long") == "x")
        try await state.set("short", "x", ttlSeconds: 0.05)
        try await Task.sleep(for: .milliseconds(80))
        #expect(try await state.get("short") == nil)
        #expect(try await state.increment("n", ttlSeconds: 60) == 1)
        #expect(try await state.increment("n", ttlSeconds: 60) == 2)
    }

    @Test func leasesAreTheirOwnersOnly() async throws {
        let state = InMemorySharedState()
        let mine = state.lease("lease", owner: "me", ttlMilliseconds: 60_000)
        let theirs = state.lease("lease", owner: "them", ttlMilliseconds: 60_000)
        #expect(try await mine.acquire())
        #expect(try await !theirs.acquire())
        #expect(try await !theirs.renew())
        try await theirs.release()
        #expect(try await mine.holder() == "me")
        try await mine.release()

        let lapsing = state.lease("lease", owner: "me", ttlMilliseconds: 100)
        #expect(try await lapsing.acquire())
        try await Task.sleep(for: .milliseconds(150))
        #expect(try await theirs.acquire(), "a lapsed lease is free")
        #expect(try await !lapsing.renew())
    }

    @Test func theBudgetIsNeverLoweredAndFailsClosedWhenLost() async throws {
        let state = InMemorySharedState()
        let budget = state.budget(namespace: "s", limitUSD: 1)
        await #expect(throws: BudgetUnknown.self) { _ = try await budget.reserve(0.1) }
        try await budget.start(spentUSD: 0.5)
        #expect(try await budget.reserve(0.3))
        #expect(try await !budget.reserve(0.3), "0.5 spent + 0.3 reserved + 0.3 is over 1")
        // A coordinator restarting with the store's lagging total neither lowers spend nor drops the reservation.
        try await budget.start(spentUSD: 0.1)
        #expect(try await budget.spentUSD() == 0.5)
        #expect(try await !budget.reserve(0.3))
        try await budget.settle(reserved: 0.3, actual: 0.2)
        #expect(try await budget.spentUSD() == 0.7)
        state.forgetEverything()
        await #expect(throws: BudgetUnknown.self) { _ = try await budget.reserve(0.1) }
        try await budget.settle(reserved: 0.1, actual: 0.1)
        #expect(try await state.get("cs:s:budget:spent") == nil, "a settle recreated a lost spend")
    }
}

/// Shared state whose leases run `beforeAcquire` before each acquire: a test puts another worker's step
/// between a task's look in the response cache and its claim.
private struct InterleavingState: SharedState {
    let inner: InMemorySharedState
    let beforeAcquire: @Sendable () async throws -> Void

    private struct HookedLease: Lease {
        let inner: any Lease
        let beforeAcquire: @Sendable () async throws -> Void
        var key: String { inner.key }
        var owner: String { inner.owner }
        func acquire() async throws -> Bool {
            try await beforeAcquire()
            return try await inner.acquire()
        }
        func renew() async throws -> Bool { try await inner.renew() }
        func release() async throws { try await inner.release() }
        func holder() async throws -> String? { try await inner.holder() }
    }

    func lease(_ key: String, owner: String, ttlMilliseconds: Int) -> any Lease {
        HookedLease(
            inner: inner.lease(key, owner: owner, ttlMilliseconds: ttlMilliseconds), beforeAcquire: beforeAcquire)
    }
    func get(_ key: String) async throws -> String? { try await inner.get(key) }
    func set(_ key: String, _ value: String, ttlSeconds: Double?) async throws {
        try await inner.set(key, value, ttlSeconds: ttlSeconds)
    }
    func setIfAbsent(_ key: String, _ value: String, ttlSeconds: Double?) async throws -> String {
        try await inner.setIfAbsent(key, value, ttlSeconds: ttlSeconds)
    }
    func increment(_ key: String, by delta: Int, ttlSeconds: Double) async throws -> Int {
        try await inner.increment(key, by: delta, ttlSeconds: ttlSeconds)
    }
    func delete(_ keys: [String]) async throws { try await inner.delete(keys) }
    func keys(prefix: String) async throws -> [String] { try await inner.keys(prefix: prefix) }
    func rateLimiter(namespace: String, limits: [String: ModelRateLimit]) -> any SharedRateLimiter {
        inner.rateLimiter(namespace: namespace, limits: limits)
    }
    func budget(namespace: String, limitUSD: Double) -> any SharedBudget {
        inner.budget(namespace: namespace, limitUSD: limitUSD)
    }
}

@Suite struct ResponseClaimTests {
    /// Worker A holds the claim on a request and is answered; worker B, waiting for it, looks in the cache
    /// just before A caches the answer and lets go, then takes the free claim. B must find A's answer, not
    /// ask (and pay for) the request again. Seen in bench/chaos: identical judge requests of several tasks.
    @Test func anAnswerCachedBetweenALookAndAClaimIsNotAskedAgain() async throws {
        let state = InMemorySharedState()
        let holder = TaskRecords(cache: SharedResponseCache(state: state, namespace: "s"), owner: "worker-a")
        #expect(try await holder.successfulResponse(key: "k") == nil, "A claims the request and calls")
        let answered = ResultStore.CallRecord(
            key: "k", taskID: "judge/one", role: "judge", model: "judge", prompt: "none", sampleIndex: 0,
            status: "ok", response: "A", error: nil, inputTokens: 10, outputTokens: 1, latencyMilliseconds: 900,
            costUSD: 0.001, attempts: 1)
        let acquires = Locked(0)
        let interleaved = InterleavingState(inner: state) {
            // B has looked in the cache and found nothing; A's answer lands before B's first claim attempt.
            let first = acquires.withLock { count in
                count += 1
                return count == 1
            }
            if first { _ = try await holder.record(answered) }
        }
        let waiter = TaskRecords(cache: SharedResponseCache(state: interleaved, namespace: "s"), owner: "worker-b")
        let found = try await waiter.successfulResponse(key: "k")
        #expect(found?.text == "A", "B took the claim A let go and would call again")
        #expect(try await state.get("cs:s:cache-claim:k") == nil, "B let go of the claim it did not need")
        await waiter.releaseClaims()
    }
}
