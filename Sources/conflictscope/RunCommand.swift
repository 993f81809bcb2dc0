import ArgumentParser
import ConflictScope
import ConflictScopeCluster
import Foundation
import Logging

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run (or resume) a sweep: generate, filter, evaluate and rank, in this process.",
        discussion: """
            Re-running the same config resumes: answers already in the store are reused, so only missing \
            calls are made and a finished sweep makes none. Progress goes to stderr; with --json, stdout \
            holds only the JSON summary.
            """
    )

    @Option(name: .long, help: "The sweep's config file.")
    var config = "config.toml"

    @Flag(name: .long, help: "Print a JSON summary (rankings in the shape of `rank --json`) instead of tables.")
    var json = false

    func run() async throws {
        let sweep: SweepConfig
        do {
            sweep = try SweepConfig.load(path: config)
        } catch {
            throw CommandFailure("\(error)")
        }
        if sweep.roles.embedder == nil && sweep.valueSets.contains(where: { sweep.scenariosPerPair(for: $0.name) > 0 })
        {
            FileHandle.standardError.write(
                Data(
                    ("note: deduplication embeds lexically ([roles.embedder] is not set); its threshold "
                        + "(dedup_threshold = \(sweep.generation.dedupThreshold)) was calibrated for all-MiniLM-L6-v2\n")
                        .utf8))
        }
        let started = ContinuousClock.now
        let summary: EmbeddedSweep.Summary
        // Every final call failure is logged at warning, every retry at debug (CONFLICTSCOPE_LOG_LEVEL=debug).
        let logger = ClusterEnvironment.logger("run", level: .warning)
        let limiter = EmbeddedSweep.rateLimiter(for: sweep)
        let live = LiveState(config: sweep, started: started, limiter: limiter)
        let server = serve.map { port in
            Task {
                do {
                    try await LiveViewServer.serve(host: host, port: port, logger: logger) { await live.snapshot() }
                } catch {
                    FileHandle.standardError.write(
                        Data("warning: the live view could not serve port \(port): \(error)\n".utf8))
                }
            }
        }
        if let serve { FileHandle.standardError.write(Data("live view: http://\(host):\(serve)/\n".utf8)) }
        defer { server?.cancel() }
        do {
            summary = try await EmbeddedSweep.run(config: sweep, limiter: limiter, logger: logger) { counters in
                await live.update(counters)
                let elapsed = Int((ContinuousClock.now - started).components.seconds)
                let line =
                    "[\(elapsed)s] calls made \(await counters.made), cached \(await counters.cached), "
                    + "failed \(await counters.failed)\n"
                FileHandle.standardError.write(Data(line.utf8))
            }
        } catch let stop as SweepStopped {
            throw CommandFailure("sweep stopped, its unfinished tasks pending: \(stop.line)")
        } catch {
            throw CommandFailure(error)
        }
        if let warning = summary.nothingKeptWarning { FileHandle.standardError.write(Data((warning + "\n").utf8)) }
        if json {
            print(summary.json.serialized())
            try failIfTasksDied(summary)
            return
        }
        // The HTML report beside the store; the terminal gets a summary of at most about 40 lines.
        var reportPath: String? = nil
        do {
            reportPath = try RunReport.write(
                summary: summary, config: sweep, configPath: config,
                wallSeconds: (ContinuousClock.now - started).inSeconds)
        } catch {
            FileHandle.standardError.write(Data("warning: the HTML report was not written: \(error)\n".utf8))
        }
        if tables { print(summary.report.table(), terminator: "") }
        print(
            RunSummaryText.text(summary: summary, config: sweep, reportPath: reportPath, tablesHint: !tables),
            terminator: "")
        try failIfTasksDied(summary)
    }

    /// Tasks that died (failed too often) leave the sweep incomplete: after its summary, the run fails.
    private func failIfTasksDied(_ summary: EmbeddedSweep.Summary) throws {
        guard let dead = summary.deadTasks, dead > 0 else { return }
        throw CommandFailure(
            "\(dead) tasks died (failed too often); the sweep is incomplete: run it again to retry them")
    }

    @Flag(name: .long, help: "Also print every ranking table and metric (without it: a summary of about 40 lines).")
    var tables = false

    @Option(name: .long, help: "Serve a live view of the sweep on this port while it runs (GET / and /status.json).")
    var serve: Int?

    @Option(name: .long, help: "The address the live view listens on.")
    var host = "127.0.0.1"
}

/// What the live view reads: the run's call counters and rate limiter, the store's spend and judgments
/// (rankings refitted at most every five seconds).
actor LiveState {
    let config: SweepConfig
    let started: ContinuousClock.Instant
    let limiter: InProcessRateLimiter
    let rateLimits: [String: ModelRateLimit]
    let planned: [Stage: Int]
    private var counters: CallCounters?
    /// Opened once the run has created it.
    private var store: ResultStore?
    private var rankings = LiveSnapshot.StoredRankings()

    init(config: SweepConfig, started: ContinuousClock.Instant, limiter: InProcessRateLimiter) {
        self.config = config
        self.started = started
        self.limiter = limiter
        self.rateLimits = ModelRateLimit.limits(of: config).filter { $0.value.isLimited }
        self.planned = LiveSnapshot.plannedCalls(config)
    }

    func update(_ counters: CallCounters) { self.counters = counters }

    func snapshot() async -> LiveSnapshot {
        if store == nil { store = try? ResultStore(path: config.storePath) }
        var snapshot = LiveSnapshot(
            sweep: config.name, elapsedSeconds: (ContinuousClock.now - started).inSeconds,
            byStage: await counters?.byStage ?? [:], plannedCalls: planned, spentUSD: (try? store?.spentUSD()) ?? 0,
            budgetUSD: config.maxCostUSD,
            rankings: store.map { rankings.current(store: $0, options: config.analysis) } ?? [])
        snapshot.rateLimits = rateLimits
        for model in rateLimits.keys { snapshot.rateUse[model] = await limiter.usage(model: model) }
        return snapshot
    }
}
