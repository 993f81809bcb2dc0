import ConflictScope
import ConflictScopeCluster
import Foundation
import Logging
import Testing

/// The repository root (for cluster/ scripts, config.toml and the built binary).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

let amqpURL = ProcessInfo.processInfo.environment["CONFLICTSCOPE_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/"
let redisURL = ProcessInfo.processInfo.environment["CONFLICTSCOPE_REDIS_URL"] ?? "redis://127.0.0.1:6379/0"

/// The conflictscope binary built with the tests (`swift build --build-tests` builds it too).
let conflictscopeBinary = repositoryRoot.appendingPathComponent(".build/debug/conflictscope").path

/// The repository's config.toml with a unique sweep name and a store in a fresh folder, edited by
/// `edit` (plain text replacements, so the file stays what a user would write).
func clusterTestConfig(_ label: String, edit: (String) -> String = { $0 }) throws -> (path: String, config: SweepConfig)
{
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
        "cs-cluster-\(label)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    var text = try String(contentsOf: repositoryRoot.appendingPathComponent("config.toml"), encoding: .utf8)
    text = text.replacingOccurrences(
        of: "name = \"default\"", with: "name = \"\(label)-\(UUID().uuidString.prefix(8))\"")
    text = text.replacingOccurrences(of: "store = \"results/default.sqlite\"", with: "store = \"sweep.sqlite\"")
    text = edit(text)
    let path = folder.appendingPathComponent("config.toml").path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return (path, try SweepConfig.load(path: path))
}

/// A small sweep with slow simulated answers, so kills and restarts land while calls are in flight.
/// `rpm` (optional) limits every simulated model through the cluster's Redis rate limiter.
func smallSlowConfig(
    _ label: String, latencyMilliseconds: Int = 150, rpm: Int? = nil, edit: (String) -> String = { $0 }
) throws -> (path: String, config: SweepConfig) {
    try clusterTestConfig(label) { text in
        edit(smallSweep(text, latencyMilliseconds: latencyMilliseconds, rpm: rpm))
    }
}

private func smallSweep(_ text: String, latencyMilliseconds: Int, rpm: Int?) -> String {
    // Only hhh generates (0: the other sets would evaluate imported scenarios only, and there are none).
    text.replacingOccurrences(
        of: "scenarios_per_pair = { hhh = 40, personal_protective = 30, model_spec = 16 }",
        with: "scenarios_per_pair = { hhh = 8, personal_protective = 0, model_spec = 0 }"
    )
    .replacingOccurrences(
        of: "concurrency = 64",
        with: "concurrency = 64\nlatency_ms = \(latencyMilliseconds)" + (rpm.map { "\nrpm = \($0)" } ?? "")
    )
    .replacingOccurrences(
        of: "models = [\"sim-steady\", \"sim-saydo\", \"sim-candid\", \"sim-pliable\"]",
        with: "models = [\"sim-steady\", \"sim-pliable\"]"
    )
}

/// Runs `executable` with `arguments`; stderr goes to `log`, stdout to `log` + ".out" (a file, not
/// a pipe, which a large output would fill). The exit is collected with waitpid: Foundation's
/// Process does not always reap its children here.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    private let output: String
    // Guarded by `lock`.
    private let lock = NSLock()
    private var exitStatus: Int32?

    init(_ executable: String, _ arguments: [String], log: String, environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        process.environment = env
        output = log + ".out"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        try process.run()
    }

    var isRunning: Bool { exited() == nil }

    func signal(_ number: Int32) { kill(process.processIdentifier, number) }

    /// The exit status (128 + signal when killed), or nil while the process runs.
    private func exited() -> Int32? {
        lock.withLock {
            if let exitStatus { return exitStatus }
            var status: Int32 = 0
            let reaped = waitpid(process.processIdentifier, &status, WNOHANG)
            if reaped == process.processIdentifier {
                exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            } else if reaped == -1 && !process.isRunning {
                // Foundation reaped it first.
                exitStatus = process.terminationStatus
            }
            return exitStatus
        }
    }

    /// Waits for the exit (at most `timeout` seconds) and returns the status and stdout.
    func finish(timeout: Double) async throws -> (status: Int32, stdout: String) {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while isRunning {
            guard ContinuousClock.now < deadline else {
                signal(SIGKILL)
                throw ClusterTestError("\(process.executableURL?.lastPathComponent ?? "") did not exit in \(timeout) s")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return (exited() ?? -1, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }
}

struct ClusterTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The roles of one cluster sweep as real processes of the built binary.
final class LocalCluster: @unchecked Sendable {
    let configPath: String
    let config: SweepConfig
    let logs: URL
    /// The servers the roles use (the defaults: the test command's plain servers).
    let amqp: String
    let redis: String
    // Touched only from the test's own task.
    var workers: [ChildProcess] = []
    var aggregator: ChildProcess?

    init(configPath: String, config: SweepConfig, amqp: String = amqpURL, redis: String = redisURL) {
        self.configPath = configPath
        self.config = config
        self.logs = URL(fileURLWithPath: configPath).deletingLastPathComponent()
        self.amqp = amqp
        self.redis = redis
    }

    func start(_ role: String, _ extra: [String] = []) throws -> ChildProcess {
        try ChildProcess(
            conflictscopeBinary, [role, "--config", configPath] + extra,
            log: logs.appendingPathComponent("\(role)-\(UUID().uuidString.prefix(6)).log").path,
            environment: ["CONFLICTSCOPE_AMQP_URL": amqp, "CONFLICTSCOPE_REDIS_URL": redis])
    }

    func startAggregator() throws { aggregator = try start("aggregator") }
    func startWorker() throws { workers.append(try start("worker")) }
    func startCoordinator() throws -> ChildProcess { try start("coordinator", ["--json"]) }

    /// SIGKILL to every role still running (a failed test leaves nothing behind).
    func kill() {
        for child in workers + [aggregator].compactMap({ $0 }) where child.isRunning { child.signal(SIGKILL) }
    }

    /// SIGTERM to every role still running, then waits for them; returns the exit statuses of
    /// those that were running (nil for one that did not exit within 30 s).
    @discardableResult
    func stop() async -> [Int32?] {
        let running = (workers + [aggregator].compactMap { $0 }).filter(\.isRunning)
        for child in running { child.signal(SIGTERM) }
        var statuses: [Int32?] = []
        for child in running { statuses.append(try? await child.finish(timeout: 30).status) }
        await deleteQueues()
        return statuses
    }

    /// Deletes the sweep's queues: durable queues left by every test would make each later broker
    /// restart slower (RabbitMQ recovers them all at boot).
    private func deleteQueues() async {
        // The store's sweep id: the name key in Redis lapses 30 s after the coordinator ends.
        guard let settings = try? BrokerSettings(url: amqp),
            let sweepID = try? ResultStore(path: config.storePath).sweepID()
        else { return }
        let broker = BrokerConnection(settings: settings, name: "test-cleanup", logger: Logger(label: "test"))
        for spec in ClusterNames(sweepID: sweepID, sweepName: config.name).queueSpecs(config) {
            try? await broker.deleteQueue(spec.name)
        }
        await broker.close()
    }

    /// Tasks done so far, from the store's task table.
    func tasksDone() throws -> Int {
        guard FileManager.default.fileExists(atPath: config.storePath) else { return 0 }
        return try ResultStore(path: config.storePath).taskCounts().values.reduce(0) { $0 + ($1[.done] ?? 0) }
    }

    /// Waits until `count` tasks are done, while `coordinator` still runs (the sweep is not over).
    func waitForDone(atLeast count: Int, while coordinator: ChildProcess, timeout: Double) async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while try tasksDone() < count {
            guard coordinator.isRunning else {
                throw ClusterTestError("the sweep ended before \(count) tasks were done")
            }
            guard ContinuousClock.now < deadline else { throw ClusterTestError("fewer than \(count) tasks done") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Log lines of every role that contain `text`.
    func logs(containing text: String) -> Int {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: logs.path)) ?? []
        return files.filter { $0.hasSuffix(".log") }.reduce(0) { count, name in
            let log = (try? String(contentsOfFile: logs.appendingPathComponent(name).path, encoding: .utf8)) ?? ""
            return count + log.split(separator: "\n").filter { $0.contains(text) }.count
        }
    }

    /// The last lines of every log, for failure messages.
    func logTails() -> String {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: logs.path)) ?? []
        return files.filter { $0.hasSuffix(".log") }.sorted().map { name in
            let text = (try? String(contentsOfFile: logs.appendingPathComponent(name).path, encoding: .utf8)) ?? ""
            return "== \(name)\n" + text.split(separator: "\n").suffix(8).joined(separator: "\n")
        }.joined(separator: "\n")
    }
}

/// Runs a cluster/ script and returns its exit status.
@discardableResult
func runScript(
    _ name: String, _ arguments: [String], environment: [String: String] = [:], timeout: Double = 120
) async throws -> (Int32, String) {
    let log = FileManager.default.temporaryDirectory.appendingPathComponent("cs-script-\(UUID().uuidString).log").path
    let child = try ChildProcess(
        repositoryRoot.appendingPathComponent("cluster/\(name)").path, arguments, log: log, environment: environment)
    return try await child.finish(timeout: timeout)
}

/// The "rankings" array of a summary JSON, for comparing runs.
func rankings(ofSummary json: String) throws -> [[String: Any]] {
    let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
    guard let rankings = object?["rankings"] as? [[String: Any]] else {
        throw ClusterTestError("no rankings in the summary: \(json.prefix(300))")
    }
    return rankings
}

/// Whether two rankings arrays agree: same groups, n, excluded, order, and scores within 1e-9.
func sameRankings(_ left: [[String: Any]], _ right: [[String: Any]]) -> Bool {
    guard left.count == right.count else { return false }
    for (a, b) in zip(left, right) {
        for key in ["model", "value_set", "format", "condition"] where (a[key] as? String) != (b[key] as? String) {
            return false
        }
        guard (a["n"] as? Int) == (b["n"] as? Int), (a["excluded"] as? Int) == (b["excluded"] as? Int),
            let valuesA = a["values"] as? [[String: Any]], let valuesB = b["values"] as? [[String: Any]],
            valuesA.count == valuesB.count
        else { return false }
        for (x, y) in zip(valuesA, valuesB) {
            guard (x["value"] as? String) == (y["value"] as? String), (x["rank"] as? Int) == (y["rank"] as? Int),
                let scoreX = (x["score"] as? NSNumber)?.doubleValue,
                let scoreY = (y["score"] as? NSNumber)?.doubleValue,
                abs(scoreX - scoreY) <= 1e-9
            else { return false }
        }
    }
    return true
}

/// The four roles' tables of a config, each played by `model`, the judge by `judge` (default: `model` too).
func rolesTOML(_ model: String, judge: String? = nil) -> String {
    ["generator", "filter_judge", "user", "judge"].map { role in
        "[roles.\(role)]\nmodel = \"\(role == "judge" ? judge ?? model : model)\""
    }.joined(separator: "\n")
}

/// `conflictscope sim-server` for the config at `configPath` on `port`, its log in `folder`, once it listens.
func startSimServer(configPath: String, port: Int, folder: URL) async throws -> ChildProcess {
    let server = try ChildProcess(
        conflictscopeBinary, ["sim-server", "--config", configPath, "--port", "\(port)"],
        log: folder.appendingPathComponent("sim-server.log").path)
    do {
        try await waitForPort(port, timeout: 60)
    } catch {
        server.signal(SIGKILL)
        throw error
    }
    return server
}
