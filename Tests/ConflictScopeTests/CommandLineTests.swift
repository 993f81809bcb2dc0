import Foundation
import Testing

/// Runs the built `conflictscope` executable, as a user would.
struct CommandResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

func runConflictScope(_ arguments: [String]) throws -> CommandResult {
    // Test bundles and executables are built side by side in the products directory.
    let products = Bundle.module.bundleURL.deletingLastPathComponent()
    let executable = products.appendingPathComponent("conflictscope")
    guard FileManager.default.isExecutableFile(atPath: executable.path) else {
        throw FixtureError(message: "conflictscope is not built at \(executable.path); run `swift build` first")
    }
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
        stderr: String(decoding: stderr, as: UTF8.self))
}

@Suite("conflictscope rank on the command line")
struct CommandLineTests {
    @Test func jsonOutputHasOneRankingPerGroup() throws {
        let path = try temporaryJudgmentsFile([
            judgmentLine(scenario: "1", value1: "a", value2: "b", choice: "A"),
            judgmentLine(scenario: "2", value1: "b", value2: "c", choice: "A"),
            judgmentLine(scenario: "3", value1: "c", value2: "a", choice: "invalid"),
            judgmentLine(format: "open", scenario: "1", value1: "a", value2: "b", choice: "B"),
        ])
        let result = try runConflictScope(["rank", "--judgments", path, "--bootstrap", "50", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let rankings = object?["rankings"] as? [[String: Any]] ?? []
        #expect(rankings.count == 2)
        #expect(rankings.first?["excluded"] as? Int == 1)
        #expect(rankings.first?["n"] as? Int == 2)
    }

    @Test func badInputGivesOneLineErrorNonZeroExitAndNoOutput() throws {
        let path = try temporaryJudgmentsFile([
            judgmentLine(scenario: "1", value1: "a", value2: "b", choice: "A"),
            judgmentLine(scenario: "2", value1: "a", value2: "b", choice: "maybe"),
        ])
        let result = try runConflictScope(["rank", "--judgments", path, "--json"])
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains("\(path):2: choice must be") == true)

        let missing = try runConflictScope(["rank", "--judgments", "/nonexistent/judgments.jsonl"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("cannot read /nonexistent/judgments.jsonl"))

        let oneSided = try temporaryJudgmentsFile([judgmentLine(scenario: "1", value1: "a", value2: "b", choice: "A")])
        let degenerate = try runConflictScope(["rank", "--judgments", oneSided, "--alpha", "0", "--bootstrap", "0"])
        #expect(degenerate.status != 0)
        #expect(
            degenerate.stderr.contains("m/hhh/mcq/default: no maximum-likelihood estimate at alpha 0: never wins: b"))
    }
}
