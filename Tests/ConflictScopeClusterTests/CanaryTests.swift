import ConflictScope
import ConflictScopeCluster
import Foundation
import Logging
import Testing

/// A recognisable fake API key, fresh per run.
func canaryKey() -> String {
    "sk-canary-" + (0..<16).map { _ in String(UInt8.random(in: 0...255), radix: 16) }.joined()
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
func waitForPort(_ port: Int, timeout: Double) async throws {
    let deadline = ContinuousClock.now + .seconds(timeout)
    while ContinuousClock.now < deadline {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        close(socket)
        if connected { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    throw ClusterTestError("nothing listens on port \(port)")
}

/// Every file under `folder` (recursively) whose bytes contain `needle`.
func filesContaining(_ needle: String, under folder: URL) -> [String] {
    let enumerator = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil)
    var found: [String] = []
    while let url = enumerator?.nextObject() as? URL {
        guard let data = try? Data(contentsOf: url) else { continue }
        if data.range(of: Data(needle.utf8)) != nil { found.append(url.lastPathComponent) }
    }
    return found
}

/// Every key and value of a Redis database under `pattern`, as text.
func redisContents(_ redis: RedisClient, pattern: String) async throws -> [String] {
    var cursor = "0"
    var keys: [String] = []
    repeat {
        let reply = try await redis.command(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"])
        guard case .array(let parts) = reply, parts.count == 2, case .array(let batch) = parts[1] else {
            throw ClusterTestError("unexpected SCAN reply \(reply)")
        }
        cursor = parts[0].string ?? "0"
        keys += batch.compactMap(\.string)
    } while cursor != "0"
    func flatten(_ reply: RedisReply) -> [String] {
        switch reply {
        case .string(let text), .status(let text): [text]
        case .integer(let number): [String(number)]
        case .array(let items): items.flatMap(flatten)
        case .null: []
        }
    }
    var contents: [String] = []
    for key in keys {
        contents.append(key)
        let type = try await redis.command(["TYPE", key]).string ?? ""
        let read: [String] =
            switch type {
            case "string": ["GET", key]
            case "hash": ["HGETALL", key]
            case "list": ["LRANGE", key, "0", "-1"]
            case "set": ["SMEMBERS", key]
            case "zset": ["ZRANGE", key, "0", "-1", "WITHSCORES"]
            default: []
            }
        if !read.isEmpty { contents += flatten(try await redis.command(read)) }
    }
    return contents
}

@Suite("The API key never leaves the process")
struct CanaryTests {
    /// A cluster sweep whose targets live on an OpenAI-compatible provider (the sim-server, injecting
    /// faults) that needs a key: the key is in no log of any role, no message on the results or dead
    /// queue, no Redis key or value, no file of the sweep (store, WAL, exports, summaries), and in no
    /// error text of a failing command.
    @Test func aCanaryKeyIsNowhereAfterAClusterSweep() async throws {
        let key = canaryKey()
        let variable = "CS_CANARY_KEY"
        let port = 8293
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cs-canary-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let simPath = folder.appendingPathComponent("sim.toml").path
        try """
        [sweep]
        name = "canary-sim"
        value_sets = ["hhh"]
        [providers.sim]
        kind = "simulated"
        fault_5xx = 0.15
        fault_malformed = 0.1
        max_faults_per_request = 1
        max_retries = 3
        [models.sim-steady]
        provider = "sim"
        utilities.mcq = { honesty = 1.0, harmlessness = 0.5, helpfulness = -1.0 }
        utilities.open = { honesty = -1.0, harmlessness = 0.5, helpfulness = 1.0 }
        [models.sim-pliable]
        provider = "sim"
        steerability = 2.0
        \(rolesTOML("sim-steady"))
        [targets]
        models = ["sim-steady", "sim-pliable"]
        """.write(toFile: simPath, atomically: true, encoding: .utf8)
        let sweepPath = folder.appendingPathComponent("config.toml").path
        try """
        [sweep]
        name = "canary-\(UUID().uuidString.prefix(8))"
        seed = 5
        store = "sweep.sqlite"
        value_sets = ["hhh"]
        scenarios_per_pair = 3
        [analysis]
        bootstrap = 20
        [conditions.default]
        [conditions.steered]
        target_ranking.hhh = ["honesty", "harmlessness", "helpfulness"]
        [providers.sim]
        kind = "simulated"
        [providers.remote]
        kind = "openai"
        base_url = "http://127.0.0.1:\(port)/v1"
        api_key_env = "\(variable)"
        max_retries = 4
        timeout_s = 20
        [models.sim-writer]
        provider = "sim"
        [models.steady]
        provider = "remote"
        model = "sim-steady"
        [models.pliable]
        provider = "remote"
        model = "sim-pliable"
        \(rolesTOML("sim-writer", judge: "steady"))
        [targets]
        models = ["steady", "pliable"]
        """.write(toFile: sweepPath, atomically: true, encoding: .utf8)
        // Every child process inherits the key (the test target runs one test at a time).
        setenv(variable, key, 1)
        defer { unsetenv(variable) }
        let config = try SweepConfig.load(path: sweepPath)

        let simServer = try await startSimServer(configPath: simPath, port: port, folder: folder)
        defer { if simServer.isRunning { simServer.signal(SIGKILL) } }

        // Workers and the coordinator first; results wait in their queue until the test has read them.
        let cluster = LocalCluster(configPath: sweepPath, config: config)
        defer { cluster.kill() }
        // One worker serves /metrics and logs JSON lines: neither may carry the key either.
        setenv("CONFLICTSCOPE_LOG_FORMAT", "json", 1)
        defer { unsetenv("CONFLICTSCOPE_LOG_FORMAT") }
        let metricsPort = try freePort()
        cluster.workers.append(try cluster.start("worker", ["--metrics-port", "\(metricsPort)"]))
        unsetenv("CONFLICTSCOPE_LOG_FORMAT")
        try cluster.startWorker()
        let coordinator = try cluster.startCoordinator()
        defer { if coordinator.isRunning { coordinator.signal(SIGKILL) } }
        let broker = BrokerConnection(
            settings: try BrokerSettings(url: amqpURL), name: "canary-test", logger: Logger(label: "test"))
        var names: ClusterNames?
        var waiting = 0
        let deadline = ContinuousClock.now + .seconds(180)
        while ContinuousClock.now < deadline {
            if names == nil, FileManager.default.fileExists(atPath: config.storePath) {
                names = ClusterNames(
                    sweepID: try ResultStore(path: config.storePath).bindSweep(config), sweepName: config.name)
            }
            if let names { waiting = try await broker.queueState(names.results)?.messages ?? 0 }
            if waiting >= 40 { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        let sweepNames = try #require(names)
        #expect(waiting >= 40, "results waiting: \(waiting): \(cluster.logTails())")

        // Read the waiting results (without acknowledging them: closing hands them back to the queue).
        let tap = BrokerConnection(
            settings: try BrokerSettings(url: amqpURL), name: "canary-tap", logger: Logger(label: "test"))
        var bodies: [[UInt8]] = []
        let deliveries = try await tap.consume(sweepNames.results, prefetch: 0)
        for await delivery in deliveries {
            bodies.append(delivery.body)
            if bodies.count >= waiting { break }
        }
        await tap.close()
        #expect(bodies.count >= 40)
        let decoded = bodies.compactMap { try? ClusterMessage.decode($0) }
        #expect(decoded.count == bodies.count, "the results are real messages")
        for body in bodies { #expect(Data(body).range(of: Data(key.utf8)) == nil, "a result message holds the key") }

        // Then the aggregator stores everything and the sweep completes.
        try cluster.startAggregator()
        let (status, summary) = try await coordinator.finish(timeout: 600)
        #expect(status == 0, "coordinator failed: \(cluster.logTails())")
        #expect(!summary.contains(key))
        let metrics = await get(port: metricsPort, path: "/metrics")?.body ?? ""
        #expect(metrics.contains("conflictscope_llm_calls_total{model=\"steady\""), "metrics: \(metrics.prefix(300))")
        #expect(!metrics.contains(key), "/metrics holds the key")
        try expectCompleteAndCountedOnce(config)
        let store = try ResultStore(path: config.storePath)
        #expect(try store.callCounts().ok > 50)

        // The dead-letter queue (empty, or holding nothing with the key).
        let dead = BrokerConnection(
            settings: try BrokerSettings(url: amqpURL), name: "canary-dead", logger: Logger(label: "test"))
        let deadCount = try await dead.queueState(sweepNames.dead)?.messages ?? 0
        if deadCount > 0 {
            var seen = 0
            for await delivery in try await dead.consume(sweepNames.dead, prefetch: 0) {
                #expect(Data(delivery.body).range(of: Data(key.utf8)) == nil, "a dead message holds the key")
                seen += 1
                if seen >= deadCount { break }
            }
        }
        await dead.close()

        // Redis: every key and value of the sweep (and the sweep-id keys).
        let redis = try RedisClient(url: redisURL)
        defer { redis.shutdown() }
        let contents = try await redisContents(redis, pattern: "cs:*")
        #expect(contents.count > 10, "the sweep's Redis keys were read: \(contents.count)")
        #expect(!contents.contains { $0.contains(key) }, "a Redis key or value holds the key")

        // Commands that read the store and write files, and commands that fail.
        var outputs: [String] = []
        for arguments in [
            ["status", "--json", "--config", sweepPath],
            [
                "export", "--config", sweepPath, "--format", "csv", "--include-missing", "--output",
                folder.appendingPathComponent("export.csv").path,
            ],
            [
                "export", "--config", sweepPath, "--format", "jsonl", "--include-missing", "--output",
                folder.appendingPathComponent("export.jsonl").path,
            ],
            ["plan", "--json", "--config", sweepPath],
            ["import", "--config", sweepPath, "--scenarios", folder.appendingPathComponent("absent.csv").path],
            ["run", "--config", simPath + ".absent"],
        ] {
            let log = folder.appendingPathComponent("command-\(outputs.count).log").path
            let (_, stdout) = try await ChildProcess(conflictscopeBinary, arguments, log: log).finish(timeout: 120)
            outputs.append(stdout + ((try? String(contentsOfFile: log, encoding: .utf8)) ?? ""))
        }
        #expect(outputs[1].isEmpty || !outputs[1].contains(key))
        #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent("export.csv").path))
        #expect(outputs[4].contains("absent.csv"), "the failing import says why: \(outputs[4])")
        for output in outputs { #expect(!output.contains(key)) }

        await cluster.stop()
        simServer.signal(SIGTERM)
        _ = try? await simServer.finish(timeout: 30)
        // Every file of the sweep: config, store, WAL, exports, every role's stdout and stderr.
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        #expect(files.contains("sweep.sqlite") && files.contains("export.jsonl"))
        #expect(files.filter { $0.hasSuffix(".log") }.count >= 5)
        #expect(filesContaining(key, under: folder) == [])
        // Positive control: the search finds the key where it is.
        try key.write(toFile: folder.appendingPathComponent("planted.txt").path, atomically: true, encoding: .utf8)
        #expect(filesContaining(key, under: folder) == ["planted.txt"])

        for spec in sweepNames.queueSpecs(config) { try await broker.deleteQueue(spec.name) }
        await broker.close()
    }
}
