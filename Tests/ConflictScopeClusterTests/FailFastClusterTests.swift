import ConflictScope
import ConflictScopeCluster
import Foundation
import Testing

@Suite("A provider that refuses a model stops a cluster sweep")
struct FailFastClusterTests {
    /// A target whose model the provider does not have (the sim-server answers 404): the worker that meets it
    /// stops taking tasks and exits with the line, the coordinator stops the sweep with the same line and a
    /// non-zero exit, and the model's tasks stay pending: no judgment of it is recorded as missing.
    @Test func anUnknownModelStopsTheSweepWithItsTasksPending() async throws {
        let port = 8294
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cs-failfast-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let simPath = folder.appendingPathComponent("sim.toml").path
        try """
        [sweep]
        name = "failfast-sim"
        value_sets = ["hhh"]
        [providers.sim]
        kind = "simulated"
        [models.sim-steady]
        provider = "sim"
        utilities.mcq = { honesty = 1.0, harmlessness = 0.5, helpfulness = -1.0 }
        \(rolesTOML("sim-steady"))
        [targets]
        models = ["sim-steady"]
        """.write(toFile: simPath, atomically: true, encoding: .utf8)
        let sweepPath = folder.appendingPathComponent("config.toml").path
        try """
        [sweep]
        name = "failfast-\(UUID().uuidString.prefix(8))"
        seed = 5
        store = "sweep.sqlite"
        value_sets = ["hhh"]
        scenarios_per_pair = 2
        formats = ["mcq"]
        [analysis]
        bootstrap = 0
        [providers.sim]
        kind = "simulated"
        [providers.remote]
        kind = "openai"
        base_url = "http://127.0.0.1:\(port)/v1"
        max_retries = 2
        [models.sim-writer]
        provider = "sim"
        [models.steady]
        provider = "remote"
        model = "sim-steady"
        [models.ghost]
        provider = "remote"
        model = "no-such-model"
        \(rolesTOML("sim-writer"))
        [targets]
        models = ["steady", "ghost"]
        """.write(toFile: sweepPath, atomically: true, encoding: .utf8)
        let config = try SweepConfig.load(path: sweepPath)
        let simServer = try await startSimServer(configPath: simPath, port: port, folder: folder)
        defer { if simServer.isRunning { simServer.signal(SIGKILL) } }

        let cluster = LocalCluster(configPath: sweepPath, config: config)
        defer { cluster.kill() }
        try cluster.startAggregator()
        try cluster.startWorker()
        let coordinator = try cluster.startCoordinator()
        defer { if coordinator.isRunning { coordinator.signal(SIGKILL) } }
        let (status, _) = try await coordinator.finish(timeout: 120)
        #expect(status != 0, "the coordinator finished a sweep whose target does not exist")
        let coordinatorLog = cluster.logs(containing: "model ghost (no-such-model)")
        #expect(coordinatorLog >= 2, "the worker and the coordinator name the model: \(cluster.logTails())")
        #expect(cluster.logs(containing: "HTTP 404") >= 2)
        let worker = try #require(cluster.workers.first)
        let (workerStatus, _) = try await worker.finish(timeout: 60)
        #expect(workerStatus != 0, "the worker stopped taking tasks and exited with the line")
        // The other target was evaluated; nothing of the unknown one is recorded as missing or failed.
        let store = try ResultStore(path: config.storePath)
        let judgments = try store.judgments()
        #expect(!judgments.contains { $0.model == "ghost" }, "\(judgments.filter { $0.model == "ghost" })")
        let pending = try store.taskCounts().values.reduce(0) { $0 + ($1[.pending] ?? 0) }
        #expect(pending > 0, "the unknown model's tasks stay pending")
        await cluster.stop()
    }
}
