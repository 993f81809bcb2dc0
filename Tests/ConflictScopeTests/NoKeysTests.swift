import Foundation
import Testing

/// Commands that make no provider calls work with no API-key variable set; `run` still needs the keys.
@Suite("Commands without API keys")
struct NoKeysTests {
    static let config = """
        [sweep]
        name = "nokeys"
        seed = 1
        value_sets = ["hhh"]
        scenarios_per_pair = 2

        [providers.sim]
        kind = "simulated"

        [providers.remote]
        kind = "openai"
        api_key_env = "CONFLICTSCOPE_UNSET_TEST_KEY"

        [models.writer]
        provider = "sim"

        [models.remote-target]
        provider = "remote"
        model = "gpt-4.1"

        \(writerRoles)

        [targets]
        models = ["remote-target"]
        """

    @Test func planStatusAndExportNeedNoKeysButRunDoes() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nokeys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("config.toml").path
        try Self.config.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(ProcessInfo.processInfo.environment["CONFLICTSCOPE_UNSET_TEST_KEY"] == nil)

        let plan = try runConflictScope(["plan", "--config", path, "--json"])
        #expect(plan.status == 0, "\(plan.stderr)")
        #expect(plan.stdout.contains("\"multiple_choice\""))
        for command in [["status"], ["export", "--format", "jsonl"]] {
            let result = try runConflictScope(command + ["--config", path])
            #expect(!result.stderr.contains("CONFLICTSCOPE_UNSET_TEST_KEY"), "\(command): \(result.stderr)")
            #expect(result.stderr.contains("no store"), "\(command): \(result.stderr)")
        }
        let run = try runConflictScope(["run", "--config", path])
        #expect(run.status != 0)
        #expect(run.stderr.contains("CONFLICTSCOPE_UNSET_TEST_KEY is not set"), "\(run.stderr)")
    }
}
