import ConflictScope
import ConflictScopeCluster
import Foundation
import Logging
import Testing

/// Whole sweeps through real processes of the built binary, on the RabbitMQ and Redis the test
/// command started on loopback. The cluster test target runs serially (servers get restarted).
@Suite("Cluster sweeps on real RabbitMQ and Redis")
struct ClusterSweepTests {
    @Test func defaultConfigThroughLocalSweepMatchesTheEmbeddedRun() async throws {
        let embedded = try clusterTestConfig("embedded")
        let cluster = try clusterTestConfig("local")
        let logs = URL(fileURLWithPath: cluster.path).deletingLastPathComponent()
        let run = try ChildProcess(
            conflictscopeBinary, ["run", "--json", "--config", embedded.path],
            log: logs.appendingPathComponent("embedded.log").path)
        let (runStatus, runJSON) = try await run.finish(timeout: 900)
        #expect(runStatus == 0)

        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        let local = try ChildProcess(
            repositoryRoot.appendingPathComponent("cluster/local-sweep").path,
            ["--workers", "3", "--config", cluster.path], log: logs.appendingPathComponent("local-sweep.log").path,
            environment: [
                "PATH": "\(URL(fileURLWithPath: conflictscopeBinary).deletingLastPathComponent().path):\(path)"
            ])
        let (localStatus, localJSON) = try await local.finish(timeout: 900)
        let log = (try? String(contentsOf: logs.appendingPathComponent("local-sweep.log"), encoding: .utf8)) ?? ""
        #expect(localStatus == 0, "local-sweep failed: \(log.suffix(2000))")

        let embeddedRankings = try rankings(ofSummary: runJSON)
        let clusterRankings = try rankings(ofSummary: localJSON)
        #expect(embeddedRankings.count >= 40)
        #expect(sameRankings(embeddedRankings, clusterRankings))
        // The same summary shape as `run --json`, plus the cluster's task counts: none died.
        let object = { (json: String) in (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] }
        #expect(object(runJSON).map { Set($0.keys).union(["tasks"]) } == object(localJSON).map { Set($0.keys) })
        #expect((object(localJSON)?["tasks"] as? [String: Any])?["dead"] as? Int == 0)
        try expectCompleteAndCountedOnce(cluster.config)
    }

    @Test func killedWorkersTasksAreRedeliveredAndCountedOnceAndPoisonIsDeadLettered() async throws {
        let (path, config) = try smallSlowConfig("kill")
        let cluster = LocalCluster(configPath: path, config: config)
        defer { cluster.kill() }
        // A message no worker can decode, on a task queue the workers will consume (published first: the
        // queues of a finished sweep are deleted).
        let names = ClusterNames(
            sweepID: try ResultStore(path: config.storePath).bindSweep(config), sweepName: config.name)
        let broker = BrokerConnection(
            settings: try BrokerSettings(url: amqpURL), name: "test", logger: Logger(label: "test"))
        try await broker.declare(names.queueSpecs(config))
        try await broker.publish(
            Array("{not a task".utf8), to: names.taskQueue(stage: .multipleChoice, model: "sim-steady"))
        try cluster.startAggregator()
        for _ in 0..<3 { try cluster.startWorker() }
        let coordinator = try cluster.startCoordinator()
        defer { if coordinator.isRunning { coordinator.signal(SIGKILL) } }
        try await cluster.waitForDone(atLeast: 15, while: coordinator, timeout: 300)
        cluster.workers[0].signal(SIGKILL)

        let (status, summary) = try await coordinator.finish(timeout: 600)
        #expect(status == 0, "coordinator failed: \(cluster.logTails())")
        #expect(cluster.workers[1].isRunning && cluster.workers[2].isRunning, "a worker died: \(cluster.logTails())")
        // The killed worker's unacknowledged tasks went to the others.
        #expect(cluster.logs(containing: "task redelivered") > 0)
        let dead = try await broker.queueState(names.dead)
        #expect((dead?.messages ?? 0) >= 1)
        await broker.close()
        try await expectLiveCountsMatchTheStore(config, names: names)
        try await expectStatusShowsTheCluster(path, config: config, names: names)
        // SIGTERM drains the surviving workers and the aggregator, which exit cleanly.
        #expect(await cluster.stop() == [0, 0, 0])

        try expectCompleteAndCountedOnce(config)
        try await expectSameRankingsAsEmbedded(config, clusterSummary: summary)
    }

    @Test func rabbitmqAndRedisRestartsMidSweepLoseNothingAndCountNothingTwice() async throws {
        let (path, config) = try smallSlowConfig("restart", rpm: 900)
        let cluster = LocalCluster(configPath: path, config: config)
        defer { cluster.kill() }
        try cluster.startAggregator()
        for _ in 0..<2 { try cluster.startWorker() }
        let coordinator = try cluster.startCoordinator()
        defer { if coordinator.isRunning { coordinator.signal(SIGKILL) } }
        try await cluster.waitForDone(atLeast: 10, while: coordinator, timeout: 300)
        // The worst case: Redis comes back without its data (a restart keeps its append-only file; a lost volume
        // does not). The cache, claims, done markers and rate-limit state are gone.
        let redis = try RedisClient(url: redisURL)
        _ = try await redis.command(["FLUSHALL"])
        redis.shutdown()
        let (redisStatus, _) = try await runScript("servers", ["restart", "redis"])
        #expect(redisStatus == 0)
        try await cluster.waitForDone(atLeast: try cluster.tasksDone() + 20, while: coordinator, timeout: 300)
        let (rabbitStatus, _) = try await runScript("servers", ["restart", "rabbitmq"])
        #expect(rabbitStatus == 0)

        let (status, summary) = try await coordinator.finish(timeout: 600)
        #expect(status == 0, "coordinator failed: \(cluster.logTails())")
        let names = ClusterNames(
            sweepID: try ResultStore(path: config.storePath).bindSweep(config), sweepName: config.name)
        try await expectLiveCountsMatchTheStore(config, names: names)
        await cluster.stop()

        try expectCompleteAndCountedOnce(config)
        try await expectSameRankingsAsEmbedded(config, clusterSummary: summary)
    }

    /// The broker loses its data after a worker finished tasks whose results the aggregator never
    /// stored: a coordinator rerun republishes them, and they run again despite their `done` markers.
    @Test func aSweepWhoseResultsWereLostWithTheBrokerFinishesWhenTheCoordinatorReruns() async throws {
        let (path, config) = try smallSlowConfig("brokerloss", latencyMilliseconds: 20)
        let cluster = LocalCluster(configPath: path, config: config)
        defer { cluster.kill() }
        try cluster.startWorker()
        let first = try cluster.startCoordinator()
        defer { if first.isRunning { first.signal(SIGKILL) } }
        // No aggregator yet: results (and the coordinator's registration) wait in the results queue.
        let redis = try RedisClient(url: redisURL)
        defer { redis.shutdown() }
        let broker = BrokerConnection(
            settings: try BrokerSettings(url: amqpURL), name: "test-brokerloss", logger: Logger(label: "test"))
        defer { Task { await broker.close() } }
        var names: ClusterNames?
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            if let id = try await redis.get(ClusterNames.sweepKey(configName: config.name)) {
                names = ClusterNames(sweepID: id, sweepName: config.name)
            }
            if let names, (try await broker.queueState(names.results)?.messages ?? 0) >= 10 { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let sweep = try #require(names)
        #expect(try await broker.queueState(sweep.results)?.messages ?? 0 >= 10)

        // The broker's data is lost with everything running on it.
        first.signal(SIGKILL)
        cluster.kill()
        for spec in sweep.queueSpecs(config) { try await broker.deleteQueue(spec.name) }

        try cluster.startAggregator()
        try cluster.startWorker()
        let rerun = try cluster.startCoordinator()
        defer { if rerun.isRunning { rerun.signal(SIGKILL) } }
        let (status, summary) = try await rerun.finish(timeout: 300)
        #expect(status == 0, "coordinator failed: \(cluster.logTails())")
        await cluster.stop()
        try expectCompleteAndCountedOnce(config)
        try await expectSameRankingsAsEmbedded(config, clusterSummary: summary)
    }
}

extension ClusterSweepTests {
    /// A priced writer model and a budget that runs out mid-sweep: the workers share it (the store's
    /// spend never passes it), the coordinator reports it, and a coordinator run with a larger budget
    /// (and workers restarted on that config) finishes the sweep without paying twice.
    @Test func budgetIsSharedByAllWorkersAndALargerBudgetResumes() async throws {
        let priced = { (budget: String) in
            { (text: String) in
                text.replacingOccurrences(of: "# max_cost_usd = 25.0", with: "max_cost_usd = \(budget)")
                    .replacingOccurrences(
                        of: "[models.sim-writer]\nprovider = \"sim\"",
                        with:
                            "[models.sim-writer]\nprovider = \"sim\"\ninput_usd_per_mtok = 100\noutput_usd_per_mtok = 100"
                    )
            }
        }
        let (path, config) = try smallSlowConfig("budget", latencyMilliseconds: 20, edit: priced("2.0"))
        let cluster = LocalCluster(configPath: path, config: config)
        defer { cluster.kill() }
        try cluster.startAggregator()
        for _ in 0..<3 { try cluster.startWorker() }
        let (status, summary) = try await cluster.startCoordinator().finish(timeout: 300)
        #expect(status == 0, "coordinator failed: \(cluster.logTails())")
        let budget = try JSONSerialization.jsonObject(with: Data(summary.utf8)) as? [String: Any]
        #expect((budget?["budget"] as? [String: Any])?["reached"] as? Bool == true)
        let store = try ResultStore(path: config.storePath)
        let spent = try store.spentUSD()
        #expect(spent > 0 && spent <= 2.0)
        let callsBefore = try store.callCounts().ok
        #expect(try store.taskCounts().values.contains { ($0[.stopped] ?? 0) > 0 })

        // Workers read the budget from the config: restart them on the raised one.
        for worker in cluster.workers where worker.isRunning { worker.signal(SIGTERM) }
        for worker in cluster.workers { _ = try await worker.finish(timeout: 60) }
        cluster.workers = []
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try text.replacingOccurrences(of: "max_cost_usd = 2.0", with: "max_cost_usd = 1000")
            .write(toFile: path, atomically: true, encoding: .utf8)
        for _ in 0..<3 { try cluster.startWorker() }
        let (resumed, resumedSummary) = try await cluster.startCoordinator().finish(timeout: 300)
        #expect(resumed == 0, "resumed coordinator failed: \(cluster.logTails())")
        await cluster.stop()

        var finished = config
        finished.maxCostUSD = 1000
        try expectCompleteAndCountedOnce(finished)
        // Calls answered before the budget ran out were not made again: every request has one record.
        let records = try ResultStore(path: config.storePath).callCounts()
        #expect(records.ok > callsBefore && records.failed == 0)
        try await expectSameRankingsAsEmbedded(finished, clusterSummary: resumedSummary)
    }
}

/// Every task done and every expected judgment stored exactly once.
func expectCompleteAndCountedOnce(_ config: SweepConfig) throws {
    let store = try ResultStore(path: config.storePath)
    let counts = try store.taskCounts()
    for (stage, states) in counts {
        #expect((states[.pending] ?? 0) == 0 && (states[.dead] ?? 0) == 0, "stage \(stage): \(states)")
    }
    let status = try SweepStatus.read(config: config, store: store)
    let stored = status.judgments.reduce(0) { $0 + $1.total }
    #expect(status.expectedJudgments > 0)
    #expect(stored == status.expectedJudgments)
}

/// The aggregator's live fit counts each valid judgment once: its comparisons equal a recount of
/// the store's valid judgments (waiting for its next refit).
func expectLiveCountsMatchTheStore(_ config: SweepConfig, names: ClusterNames) async throws {
    let store = try ResultStore(path: config.storePath)
    let valid = try store.judgments().filter { $0.choice.isValid }.count
    let redis = try RedisClient(url: redisURL)
    defer { redis.shutdown() }
    var live: [String: Any] = [:]
    let deadline = ContinuousClock.now + .seconds(20)
    repeat {
        if let text = try await redis.get(names.liveKey),
            let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        {
            live = object
            if (live["comparisons"] as? Int) == valid { break }
        }
        try await Task.sleep(for: .milliseconds(250))
    } while ContinuousClock.now < deadline
    #expect((live["comparisons"] as? Int) == valid)
}

/// The cluster's final rankings equal an embedded run of the same config in another store.
func expectSameRankingsAsEmbedded(_ config: SweepConfig, clusterSummary: String) async throws {
    var embedded = config
    embedded.storePath = config.storePath + ".embedded.sqlite"
    let summary = try await EmbeddedSweep.run(config: embedded)
    let json = summary.json.serialized()
    #expect(sameRankings(try rankings(ofSummary: json), try rankings(ofSummary: clusterSummary)))
}

/// `status --json` of a finished cluster sweep: every task done, every queue listed and drained,
/// and the live rankings counting every stored judgment.
func expectStatusShowsTheCluster(_ path: String, config: SweepConfig, names: ClusterNames) async throws {
    let log = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("status.log").path
    let (status, output) = try await ChildProcess(
        conflictscopeBinary, ["status", "--json", "--config", path], log: log
    )
    .finish(timeout: 60)
    #expect(status == 0)
    let object = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
    let tasks = object?["tasks"] as? [String: [String: Int]] ?? [:]
    #expect(!tasks.isEmpty && tasks.values.allSatisfy { $0["pending"] == 0 && ($0["done"] ?? 0) > 0 })
    let cluster = object?["cluster"] as? [String: Any]
    #expect((cluster?["problems"] as? [Any])?.isEmpty == true)
    let queues = cluster?["queues"] as? [[String: Any]] ?? []
    #expect(queues.count == names.taskQueues(config).count + 2)
    let taskQueues = Set(names.taskQueues(config))
    #expect(
        queues.filter { taskQueues.contains($0["name"] as? String ?? "") }.allSatisfy { ($0["ready"] as? Int) == 0 })
    let live = cluster?["live"] as? [String: Any]
    let stored = try ResultStore(path: config.storePath).judgments().count
    #expect((live?["judgments"] as? Int) == stored)
}
