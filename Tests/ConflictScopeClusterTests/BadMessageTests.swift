import ConflictScope
import ConflictScopeCluster
import Foundation
import Logging
import Testing

/// A kept hhh scenario that no sweep generated.
func poisonScenario(_ id: String) throws -> Scenario {
    let json = """
        {"id": "\(id)", "outlineID": "poison", "valueSet": "hhh", "value1": "honesty", "value2": "harmlessness",
         "description": "d", "persona": "p", "background": "b", "goal": "g", "action1": "a1", "action2": "a2",
         "consequence1": "c1", "consequence2": "c2", "generatingModel": "sim-writer", "status": "kept"}
        """
    return try JSONDecoder().decode(Scenario.self, from: Data(json.utf8))
}

/// Bodies no worker can use: garbage, near-valid task JSON of the wrong shape, the wrong message type, and
/// well-formed tasks that cannot belong to the sweep (an unknown target, a round no counter can pass).
func poisonTaskBodies(_ config: SweepConfig) throws -> [(label: String, body: [UInt8])] {
    let scenario = try poisonScenario("poison/1")
    let valid = try JSONEncoder().encode(
        PipelineTask.multipleChoice(scenario, target: config.targets[0], condition: "default"))
    let encode = { (task: PipelineTask) in Array(try JSONEncoder().encode(task)) }
    return [
        ("empty", []),
        ("not JSON", Array("{not a task".utf8)),
        ("truncated task", Array(valid.prefix(valid.count / 2))),
        ("wrong types", Array(#"{"generate": {"valueSet": 5, "value1": [], "value2": null, "round": "x"}}"#.utf8)),
        ("unknown task kind", Array(#"{"explode": {"now": true}}"#.utf8)),
        ("a result message", try ClusterMessage.register(id: "poison", tasks: [], last: true).encoded()),
        ("huge", Array(("[" + String(repeating: "0,", count: 1 << 20) + "0]").utf8)),
        ("deep", Array(String(repeating: "[", count: 100_000).utf8)),
        ("invalid UTF-8", [0xFF, 0xFE, 0x7B, 0x00, 0xC3]),
        ("unknown target", try encode(.multipleChoice(scenario, target: "ghost", condition: "default"))),
        (
            "unknown condition",
            try encode(.openEnded(scenario, userMessage: "hi", target: config.targets[0], condition: "ghost"))
        ),
        ("unknown value set", try encode(.generate(valueSet: "ghost", value1: "a", value2: "b", round: 0, kept: []))),
        (
            "endless round",
            try encode(.generate(valueSet: "hhh", value1: "honesty", value2: "harmlessness", round: .max, kept: []))
        ),
    ]
}

/// Bodies the aggregator must not store: garbage, the wrong message type, and results no worker sends.
func poisonResultBodies(_ config: SweepConfig) throws -> [(label: String, body: [UInt8])] {
    let registration = try ClusterMessage.register(id: "poison", tasks: [], last: true).encoded()
    let ghost = PipelineTask.multipleChoice(
        try poisonScenario("poison/2"),
        target: "ghost", condition: "default")
    return [
        ("empty", []),
        ("not JSON", Array("{not a result".utf8)),
        ("truncated", Array(registration.prefix(registration.count / 2))),
        ("wrong types", Array(#"{"finished": {"_0": 5, "_1": "rows"}}"#.utf8)),
        ("unknown kind", Array(#"{"explode": {}}"#.utf8)),
        ("a task message", Array(try JSONEncoder().encode(ghost))),
        ("huge", Array(("[" + String(repeating: "0,", count: 1 << 20) + "0]").utf8)),
        ("invalid UTF-8", [0xFF, 0xFE, 0x7B, 0x00, 0xC3]),
        (
            "pending outcome",
            try ClusterMessage.finished(
                TaskOutcome(taskID: "mcq/poison/3/sim-steady/default", state: .pending, followUps: []), ResultBatch()
            ).encoded()
        ),
        (
            "outcome of no stage",
            try ClusterMessage.finished(TaskOutcome(taskID: "bogus/1", state: .done, followUps: []), ResultBatch())
                .encoded()
        ),
        (
            "follow-up for a ghost",
            try ClusterMessage.finished(
                TaskOutcome(taskID: "filter/poison/4", state: .done, followUps: [ghost]), ResultBatch()
            ).encoded()
        ),
        ("registration of a ghost", try ClusterMessage.register(id: "poison-2", tasks: [ghost], last: true).encoded()),
        ("registration without an id", try ClusterMessage.register(id: "", tasks: [], last: true).encoded()),
    ]
}

@Suite("Bad messages on every queue")
struct BadMessageTests {
    /// Poison on every task queue and on the results queue while a real sweep runs: each poison message
    /// ends in the dead-letter queue with one log line, every role survives, and the sweep completes
    /// with all its results, the same as an embedded run.
    @Test func poisonOnEveryQueueIsDeadLetteredAndTheSweepLosesNothing() async throws {
        let (path, config) = try smallSlowConfig("poison", latencyMilliseconds: 100)
        let cluster = LocalCluster(configPath: path, config: config)
        defer { cluster.kill() }
        try cluster.startAggregator()
        for _ in 0..<2 { try cluster.startWorker() }
        let coordinator = try cluster.startCoordinator()
        defer { if coordinator.isRunning { coordinator.signal(SIGKILL) } }
        try await cluster.waitForDone(atLeast: 5, while: coordinator, timeout: 300)

        let names = ClusterNames(
            sweepID: try ResultStore(path: config.storePath).bindSweep(config), sweepName: config.name)
        let broker = BrokerConnection(
            settings: try BrokerSettings(url: amqpURL), name: "poison-test", logger: Logger(label: "test"))
        let taskQueues = names.taskQueues(config)
        #expect(taskQueues.count == 8)
        var published = 0
        for queue in taskQueues {
            for (label, body) in try poisonTaskBodies(config) {
                try await broker.publish(body, to: queue)
                published += 1
                _ = label
            }
        }
        for (_, body) in try poisonResultBodies(config) {
            try await broker.publish(body, to: names.results)
            published += 1
        }

        // Every poison message reaches the dead-letter queue (and nothing else does).
        let deadline = ContinuousClock.now + .seconds(240)
        var dead = 0
        while ContinuousClock.now < deadline {
            dead = try await broker.queueState(names.dead)?.messages ?? 0
            if dead >= published { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        #expect(dead == published, "dead-lettered \(dead) of \(published): \(cluster.logTails())")

        let (status, summary) = try await coordinator.finish(timeout: 600)
        #expect(status == 0, "coordinator failed: \(cluster.logTails())")
        #expect(cluster.aggregator?.isRunning == true, "the aggregator died: \(cluster.logTails())")
        #expect(cluster.workers.allSatisfy { $0.isRunning }, "a worker died: \(cluster.logTails())")
        // One clear line per poison message, and no crash report anywhere.
        #expect(cluster.logs(containing: "dead-lettered") == published, "\(cluster.logTails())")
        #expect(cluster.logs(containing: "Fatal error") == 0)
        let deadAtEnd = try await broker.queueState(names.dead)?.messages
        #expect(deadAtEnd == published)
        try await expectLiveCountsMatchTheStore(config, names: names)
        #expect(await cluster.stop() == [0, 0, 0])

        // Nothing lost: every task done, every judgment stored once, and the rankings of an embedded run.
        try expectCompleteAndCountedOnce(config)
        let tasks = try ResultStore(path: config.storePath).taskCounts()
        #expect(tasks["bogus"] == nil && tasks.values.allSatisfy { ($0[.pending] ?? 0) == 0 })
        try await expectSameRankingsAsEmbedded(config, clusterSummary: summary)
        for spec in names.queueSpecs(config) { try await broker.deleteQueue(spec.name) }
        await broker.close()
    }
}
