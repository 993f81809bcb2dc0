import ConflictScope
import ConflictScopeCluster
import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// /metrics, /healthz, /readyz and the live view of real role processes on loopback.
@Suite(.serialized)
struct ObservabilityTests {
    @Test func everyRoleServesMetricsAndProbesAndTheCountersFollowTheSweep() async throws {
        // A rate limit high enough not to slow the sweep, so that the live view has rate-limit use to show.
        let (path, config) = try smallSlowConfig("metrics", rpm: 6000)
        let cluster = LocalCluster(configPath: path, config: config)
        defer { cluster.kill() }
        let (aggregatorPort, workerPort, coordinatorPort) = (try freePort(), try freePort(), try freePort())
        cluster.aggregator = try cluster.start("aggregator", ["--metrics-port", "\(aggregatorPort)"])
        cluster.workers.append(try cluster.start("worker", ["--metrics-port", "\(workerPort)"]))

        // Before the coordinator registers the sweep, the roles are alive and reach both servers.
        #expect(try await waitForStatus(200, port: workerPort, path: "/healthz"))
        #expect(try await waitForStatus(200, port: workerPort, path: "/readyz"))
        #expect(try await waitForStatus(200, port: aggregatorPort, path: "/readyz"))

        let coordinator = try cluster.start("coordinator", ["--json", "--metrics-port", "\(coordinatorPort)"])
        try await cluster.waitForDone(atLeast: 20, while: coordinator, timeout: 120)
        let early = try await metrics(port: workerPort)
        // The coordinator updates its gauges each time it reads the task table (every 0.5 s).
        var coordinatorView = try await metrics(port: coordinatorPort)
        let deadline = ContinuousClock.now + .seconds(30)
        while coordinatorView.sum("conflictscope_tasks", ["state": "done"]) == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            coordinatorView = try await metrics(port: coordinatorPort)
        }
        #expect(coordinatorView.sum("conflictscope_tasks", ["state": "done"]) > 0)
        #expect(coordinatorView.sum("conflictscope_ready") == 1)
        // The live view during the sweep: the aggregator's page shows the whole sweep's task table.
        let page = await get(port: aggregatorPort, path: "/")
        #expect(page?.status == 200)
        #expect(page?.body.contains("<table id=\"stages\">") == true)
        #expect(page?.body.contains("tasks done / registered") == true)
        #expect(page?.body.contains("<table id=\"rate-limits\">") == true)

        let (status, _) = try await coordinator.finish(timeout: 300)
        #expect(status == 0, "coordinator failed:\n\(cluster.logTails())")
        let worker = try await metrics(port: workerPort)
        let aggregator = try await metrics(port: aggregatorPort)
        let store = try ResultStore(path: config.storePath)
        let done = try store.taskCounts().values.reduce(0) { $0 + ($1[.done] ?? 0) }
        let calls = try store.callCounts()

        // The counters moved between the two looks, and end at what the store holds: one worker and
        // no failures, so every task was consumed and acked once and every stored call is its own.
        let acked = worker.sum("conflictscope_tasks_acked_total")
        #expect(acked > early.sum("conflictscope_tasks_acked_total"))
        #expect(acked == Double(done))
        #expect(worker.sum("conflictscope_tasks_consumed_total") == Double(done))
        #expect(worker.sum("conflictscope_tasks_acked_total", ["stage": "multiple_choice", "model": "sim-steady"]) > 0)
        #expect(worker.sum("conflictscope_llm_calls_total", ["status": "ok"]) == Double(calls.ok))
        #expect(worker.sum("conflictscope_llm_call_duration_seconds_count", ["status": "ok"]) == Double(calls.ok))
        #expect(worker.sum("conflictscope_tokens_total", ["direction": "input"]) > 0)
        #expect(worker.sum("conflictscope_rate_limit_wait_seconds_count") >= Double(calls.ok))
        #expect(aggregator.sum("conflictscope_results_stored_total") == Double(done))
        #expect(aggregator.sum("conflictscope_ranking_refits_total") > 0)
        #expect(aggregator.sum("conflictscope_ready") == 1)

        // After the sweep the aggregator's live view agrees with the store; the worker's shows its own
        // calls and the shared rate-limit use.
        let whole = try await liveStatus(port: aggregatorPort)
        #expect(whole["scope"] as? String == "the aggregator (the whole sweep)")
        let stages = whole["stages"] as? [String: [String: Any]] ?? [:]
        #expect(stages.values.reduce(0) { $0 + ($1["tasks_done"] as? Int ?? 0) } == done)
        #expect(stages.values.reduce(0) { $0 + ($1["made"] as? Int ?? 0) } == calls.ok)
        #expect((whole["rankings"] as? [Any])?.isEmpty == false)
        let own = try await liveStatus(port: workerPort)
        #expect(own["scope"] as? String == "this worker")
        let ownStages = own["stages"] as? [String: [String: Any]] ?? [:]
        #expect(ownStages.values.reduce(0) { $0 + ($1["made"] as? Int ?? 0) } == calls.ok)
        let limits = own["rate_limits"] as? [[String: Any]] ?? []
        #expect(!limits.isEmpty && limits.allSatisfy { $0["rpm"] as? Int == 6000 })
        let admitted = limits.reduce(0) {
            $0 + ($1["requests_this_minute"] as? Int ?? 0) + ($1["requests_last_minute"] as? Int ?? 0)
        }
        #expect(admitted > 0, "no rate-limit use on the worker's live view")
        #expect(await cluster.stop().allSatisfy { $0 == 0 })
    }

    @Test func aWorkerIsNotReadyWhileRabbitMQIsDown() async throws {
        let (path, config) = try smallSlowConfig("readiness")
        let cluster = LocalCluster(configPath: path, config: config)
        defer { cluster.kill() }
        let port = try freePort()
        cluster.workers.append(try cluster.start("worker", ["--metrics-port", "\(port)"]))
        #expect(try await waitForStatus(200, port: port, path: "/readyz"))

        #expect(try await runScript("servers", ["stop", "rabbitmq"]).0 == 0)
        let notReady = try await waitForStatus(503, port: port, path: "/readyz")
        let alive = try await waitForStatus(200, port: port, path: "/healthz")
        let gauge = try await metrics(port: port).sum("conflictscope_ready")
        #expect(try await runScript("servers", ["start", "rabbitmq"], timeout: 300).0 == 0)
        #expect(notReady)
        #expect(alive)
        #expect(gauge == 0)
        #expect(try await waitForStatus(200, port: port, path: "/readyz", timeout: 60))
        #expect(await cluster.stop().allSatisfy { $0 == 0 })
    }
}

/// Signals reach each role's work through its service group.
@Suite(.serialized)
struct ShutdownTests {
    @Test func sigtermStopsACoordinatorWaitingForItsSweep() async throws {
        let (path, config) = try smallSlowConfig("sigterm")
        let cluster = LocalCluster(configPath: path, config: config)
        defer { cluster.kill() }
        // No aggregator: the coordinator would wait for its registration for ever.
        let coordinator = try cluster.start("coordinator")
        defer { if coordinator.isRunning { coordinator.signal(SIGKILL) } }
        let redis = try RedisClient(url: redisURL)
        defer { redis.shutdown() }
        let deadline = ContinuousClock.now + .seconds(60)
        while try await redis.get(ClusterNames.sweepKey(configName: config.name)) == nil, ContinuousClock.now < deadline
        {
            try await Task.sleep(for: .milliseconds(200))
        }
        coordinator.signal(SIGTERM)
        let (status, _) = try await coordinator.finish(timeout: 30)
        #expect(status == 1)
        #expect(cluster.logs(containing: "stopped before the sweep finished") == 1)
        await cluster.stop()  // deletes the sweep's queues
    }
}

/// A TCP port nobody listens on now (the kernel's pick for port 0).
func freePort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw ClusterTestError("socket() failed") }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
            bind(descriptor, generic, length) == 0 && getsockname(descriptor, generic, &length) == 0
        }
    }
    guard bound else { throw ClusterTestError("cannot bind a free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// GET http://127.0.0.1:port/path: the status and body, or nil when nothing answers.
func get(port: Int, path: String) async -> (status: Int, body: String)? {
    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
    request.timeoutInterval = 5
    guard let (data, response) = try? await URLSession.shared.data(for: request),
        let http = response as? HTTPURLResponse
    else { return nil }
    return (http.statusCode, String(decoding: data, as: UTF8.self))
}

/// Polls until the endpoint answers `status`; false when it has not within `timeout` seconds.
private func waitForStatus(_ status: Int, port: Int, path: String, timeout: Double = 30) async throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(timeout)
    while ContinuousClock.now < deadline {
        if await get(port: port, path: path)?.status == status { return true }
        try await Task.sleep(for: .milliseconds(200))
    }
    return false
}

/// A role's `/status.json` (its live view) as a dictionary.
private func liveStatus(port: Int) async throws -> [String: Any] {
    guard let (status, body) = await get(port: port, path: "/status.json"), status == 200,
        let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
    else { throw ClusterTestError("no /status.json on port \(port)") }
    return object
}

private func metrics(port: Int) async throws -> PrometheusText {
    guard let (status, body) = await get(port: port, path: "/metrics"), status == 200 else {
        throw ClusterTestError("no /metrics on port \(port)")
    }
    return PrometheusText(body)
}

/// The samples of a Prometheus text exposition.
private struct PrometheusText {
    var samples: [(name: String, labels: [String: String], value: Double)] = []

    init(_ text: String) {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                continue
            }
            let series = line[..<space]
            guard let brace = series.firstIndex(of: "{") else {
                samples.append((String(series), [:], value))
                continue
            }
            var labels: [String: String] = [:]
            for pair in series[series.index(after: brace)..<series.index(before: series.endIndex)].split(separator: ",")
            {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { labels[String(parts[0])] = parts[1].trimmingCharacters(in: ["\""]) }
            }
            samples.append((String(series[..<brace]), labels, value))
        }
    }

    /// The sum over the series of `name` whose labels include `matching`.
    func sum(_ name: String, _ matching: [String: String] = [:]) -> Double {
        samples.filter { sample in
            sample.name == name && matching.allSatisfy { sample.labels[$0.key] == $0.value }
        }.reduce(0) { $0 + $1.value }
    }
}
