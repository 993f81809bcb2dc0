import ArgumentParser
import ConflictScope
import Foundation

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
        let started = ContinuousClock.now
        let summary: EmbeddedSweep.Summary
        do {
            summary = try await EmbeddedSweep.run(config: sweep) { counters in
                let elapsed = Int((ContinuousClock.now - started).components.seconds)
                let line =
                    "[\(elapsed)s] calls made \(await counters.made), cached \(await counters.cached), "
                    + "failed \(await counters.failed)\n"
                FileHandle.standardError.write(Data(line.utf8))
            }
        } catch {
            throw CommandFailure("\(error)")
        }
        if json {
            print(summary.json.serialized())
            return
        }
        print(summary.report.table(), terminator: "")
        print(
            """
            Sweep \(sweep.name) (\(summary.sweepID)): \(summary.callsMade) calls made, \(summary.callsCached) \
            answered from the store, \(summary.callsFailed) failed; \(summary.scenarios.kept) scenarios kept \
            of \(summary.scenarios.outlines) generated.
            """)
        if summary.budgetReached {
            print("Stopped at the budget (max_cost_usd); raise it and run again to resume.")
        }
        print("Full results: \(summary.storePath)")
    }
}
