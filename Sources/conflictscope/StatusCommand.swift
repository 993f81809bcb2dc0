import ArgumentParser
import ConflictScope
import Foundation

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a sweep's progress from its store: calls, spend, scenarios, judgments and current rankings.",
        discussion: """
            Reads only the store (it works while an embedded sweep runs). Rankings are fitted with the config's \
            [analysis] options but without bootstrap, so they are quick; `rank` or `run` give intervals.
            """
    )

    @Option(name: .long, help: "The sweep's config file.")
    var config = "config.toml"

    @Flag(name: .long, help: "Print one JSON object instead of tables.")
    var json = false

    func run() throws {
        let sweep = try loadConfig(config)
        let store = try openExistingStore(sweep)
        let status: SweepStatus
        do {
            status = try SweepStatus.read(config: sweep, store: store)
        } catch {
            throw CommandFailure("\(error)")
        }
        print(json ? status.json.serialized() : status.table(), terminator: json ? "\n" : "")
    }
}

/// Reads a config file, as a one-line error when it is wrong.
func loadConfig(_ path: String) throws -> SweepConfig {
    do {
        return try SweepConfig.load(path: path)
    } catch {
        throw CommandFailure("\(error)")
    }
}

/// Opens the store of a sweep that has already run (or had data imported); never creates one.
func openExistingStore(_ config: SweepConfig) throws -> ResultStore {
    guard FileManager.default.fileExists(atPath: config.storePath) else {
        throw CommandFailure("no store at \(config.storePath): the sweep has not run yet")
    }
    do {
        return try ResultStore(path: config.storePath)
    } catch {
        throw CommandFailure("cannot open the store \(config.storePath): \(error)")
    }
}
