import ArgumentParser
import ConflictScope
import ConflictScopeCluster
import Foundation

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a sweep's progress: calls, spend, scenarios, judgments, tasks and current rankings.",
        discussion: """
            Reads the store (it works while an embedded or cluster sweep runs). Rankings are fitted with the \
            config's [analysis] options but without bootstrap, so they are quick; `run` or `rank` give intervals. \
            For a cluster sweep it also shows the task queues' depths, the rate limits and the aggregator's live \
            rankings, from RabbitMQ and Redis (CONFLICTSCOPE_AMQP_URL, CONFLICTSCOPE_REDIS_URL; each is given 3 \
            seconds to answer).
            """
    )

    @Option(name: .long, help: "The sweep's config file.")
    var config = "config.toml"

    @Flag(name: .long, help: "Print one JSON object instead of tables.")
    var json = false

    @Option(name: .long, help: "Refresh every N seconds until interrupted (the terminal's live view of a sweep).")
    var watch: Double?

    func validate() throws {
        if let watch, !(watch > 0) { throw ValidationError("--watch must be a number of seconds above 0") }
    }

    func run() async throws {
        let sweep = try loadConfig(config, requireAPIKeys: false)
        let store = try openExistingStore(sweep)
        guard let watch else { return try await show(sweep: sweep, store: store) }
        // Until Ctrl-C: tables redrawn in place, JSON as one object per line.
        while true {
            let started = ContinuousClock.now
            if !json { print("\u{1B}[H\u{1B}[2J", terminator: "") }
            try await show(sweep: sweep, store: store)
            if !json { print("\nRefreshed every \(watch) s; Ctrl-C to stop.") }
            fflush(nil)  // every stream: a piped stdout is fully buffered
            try await Task.sleep(until: started + .milliseconds(Int(watch * 1000)), clock: .continuous)
        }
    }

    private func show(sweep: SweepConfig, store: ResultStore) async throws {
        let status: SweepStatus
        do {
            status = try SweepStatus.read(config: sweep, store: store)
        } catch {
            throw CommandFailure("\(error)")
        }
        var cluster: ClusterStatus? = nil
        // A store from before modes were recorded that has tasks ran in a cluster: only the cluster kept tasks then.
        let inCluster = status.mode == .cluster || (status.mode == nil && !status.tasks.isEmpty)
        if inCluster, let sweepID = status.sweepID {
            let logger = ClusterEnvironment.logger("status", level: .critical)
            let connections = try ClusterEnvironment.connect(role: "status", logger: logger)
            cluster = await ClusterStatus.read(
                config: sweep, sweepID: sweepID, broker: connections.broker, redis: connections.redis)
            await connections.close()
        }
        if json {
            guard case .object(var fields) = status.json else { return }
            if let cluster { fields.append(("cluster", cluster.json)) }
            print(JSONValue.object(fields).serialized())
        } else {
            print(status.table() + (cluster.map { "\n" + $0.table() } ?? ""), terminator: "")
        }
    }
}

/// Reads a config file, as a one-line error when it is wrong.
/// Loads and validates the config; `requireAPIKeys: false` for roles that make no provider calls.
func loadConfig(_ path: String, requireAPIKeys: Bool = true) throws -> SweepConfig {
    do {
        return try SweepConfig.load(path: path, requireAPIKeys: requireAPIKeys)
    } catch {
        throw CommandFailure("\(error)")
    }
}

/// Opens the store of a sweep that has already run (or had data imported); never creates one.
func openExistingStore(_ config: SweepConfig) throws -> ResultStore {
    guard FileManager.default.fileExists(atPath: config.storePath) else {
        throw CommandFailure("no store at \(config.storePath): the sweep has not run yet")
    }
    let store: ResultStore
    do {
        store = try ResultStore(path: config.storePath)
    } catch {
        throw CommandFailure("cannot open the store \(config.storePath): \(error)")
    }
    do {
        try store.checkSweep(config)
    } catch {
        throw CommandFailure(error)
    }
    return store
}
