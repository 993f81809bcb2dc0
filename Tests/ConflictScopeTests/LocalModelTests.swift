import Foundation
import GRDB
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A sweep against a real (tiny) model: SmolLM2-135M-Instruct behind llama-cpp-python's OpenAI-compatible
/// server on loopback, which `scripts/local-llm start` runs (`make test` starts it). Every role and the
/// target are that model; the command-line tool imports three scenarios, runs, and runs again. The test
/// asserts that the pipeline copes with a model that often answers nonsense, not what the model answers:
/// every stage makes real calls, no call fails, unusable answers are stored as invalid with their raw
/// text (never as a choice) and the summaries count them, and the second run is answered from the store.
/// Not part of the parallel unit phase (`--skip LocalModelTests`): `make test` runs it on its own.
@Suite("A real model behind an OpenAI-compatible server (scripts/local-llm)", .serialized)
struct LocalModelTests {
    static let port = ProcessInfo.processInfo.environment["LOCAL_LLM_PORT"] ?? "8091"
    static let model = "smollm2"

    /// One value set (hhh, three pairs), both formats, a steered condition, one outline per pair and one
    /// generation round, short answers. Roles' max_tokens are small enough for the whole test to take a
    /// few minutes at the model's ~65 tokens/s, large enough for an outline or a verdict to fit. Greedy
    /// sampling (temperature 0) everywhere, so a run is repeatable, and no re-asks: at temperature 0 a
    /// re-ask gets the same answer again.
    static func config(store: String) -> String {
        """
        [sweep]
        name = "local-model"
        seed = 7
        store = "\(store)"
        value_sets = ["hhh"]
        scenarios_per_pair = 1
        formats = ["mcq", "open"]

        [generation]
        outlines_per_call = 1
        max_rounds = 1
        max_reasks = 0

        [evaluation]
        mcq = { temperature = 0.0, max_tokens = 32 }
        likert = { temperature = 0.0, max_tokens = 32 }
        open = { temperature = 0.0, max_tokens = 96 }

        [analysis]
        bootstrap = 20

        [conditions.default]

        [conditions.steered]
        target_ranking.hhh = ["honesty", "harmlessness", "helpfulness"]

        [providers.local]
        kind = "openai"
        base_url = "http://127.0.0.1:\(port)/v1"
        concurrency = 1
        timeout_s = 120
        max_retries = 1

        [models.\(model)]
        provider = "local"

        [roles.generator]
        model = "\(model)"
        temperature = 0.0
        max_tokens = 160
        [roles.filter_judge]
        model = "\(model)"
        max_tokens = 32
        [roles.user]
        model = "\(model)"
        temperature = 0.0
        max_tokens = 160
        [roles.judge]
        model = "\(model)"
        max_tokens = 128

        [targets]
        models = ["\(model)"]
        """
    }

    /// The body of GET /v1/models, nil when nothing answers.
    static func listedModels() async -> String? {
        guard let url = URL(string: "http://127.0.0.1:\(port)/v1/models") else { return nil }
        var request = URLRequest(url: url)
        request.timeoutInterval = 5
        guard let (data, response) = try? await URLSession.shared.data(for: request),
            (response as? HTTPURLResponse)?.statusCode == 200
        else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    static func fixture(_ name: String, _ ext: String) throws -> String {
        guard let url = Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures/local-model")
        else { throw FixtureError(message: "fixture local-model/\(name).\(ext) is missing from the test bundle") }
        return url.path
    }

    /// The stage a call belongs to, from its task id (`<stage>/<subject>`, with `/likertN`, `/judgeN`,
    /// `/artifactN` and `/userN` for the calls made inside another stage's task).
    static func stage(ofTask taskID: String) -> String {
        let parts = taskID.split(separator: "/").map(String.init)
        let first = parts.first ?? taskID
        let last = parts.last ?? ""
        if last.hasPrefix("likert") { return "likert" }
        if last.hasPrefix("judge") { return "judge" }
        if last.hasPrefix("artifact") { return "artifacts" }
        if first == "open_ended" && last.hasPrefix("user") { return "user_prompts" }
        return first
    }

    struct StageCalls {
        var ok = 0
        var failed = 0
    }

    @Test func aSweepAgainstTheLocalModelCopesWithItsAnswers() async throws {
        let listed = await Self.listedModels()
        try #require(
            listed?.contains("\"\(Self.model)\"") == true,
            """
            no local model answers at http://127.0.0.1:\(Self.port)/v1/models (got: \(listed ?? "no answer")): \
            run `scripts/local-llm start` first (`make test` does)
            """)

        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("local-model-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let configPath = folder.appendingPathComponent("config.toml").path
        let storePath = folder.appendingPathComponent("local.sqlite").path
        try Self.config(store: "local.sqlite").write(toFile: configPath, atomically: true, encoding: .utf8)

        // Three kept scenarios, one per pair; opening messages for two of them, so the user model writes
        // the third.
        let imported = try runConflictScope(
            [
                "import", "--config", configPath, "--scenarios", try Self.fixture("scenarios", "csv"), "--prompts",
                try Self.fixture("prompts", "json"),
            ], environment: [:], logs: folder, label: "import")
        try #require(imported.status == 0, "import: \(imported.stderr)")
        #expect(
            imported.stdout.contains("Imported 3 scenarios (3 kept, 0 rejected) and 2 user prompts"),
            "\(imported.stdout)")

        let started = ContinuousClock.now
        let first = try runConflictScope(
            ["run", "--config", configPath, "--json"], environment: [:], logs: folder, label: "run1")
        let firstSeconds = (ContinuousClock.now - started).components.seconds
        try #require(first.status == 0, "run exited \(first.status): \(first.stderr.suffix(2000))")
        let summary = try #require(
            try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any],
            "run --json printed no JSON object: \(first.stdout.prefix(500))")
        let calls = try #require(summary["calls"] as? [String: Any], "no calls object in \(first.stdout.prefix(500))")

        let store = try openStore(storePath)
        let callRows = try store.read { db in
            try Row.fetchAll(db, sql: "SELECT task_id, role, status, response, error FROM call")
        }
        var byStage: [String: StageCalls] = [:]
        for row in callRows {
            let stage = Self.stage(ofTask: row["task_id"])
            if (row["status"] as String) == "ok" {
                byStage[stage, default: StageCalls()].ok += 1
            } else {
                byStage[stage, default: StageCalls()].failed += 1
            }
        }
        let failures = callRows.filter { ($0["status"] as String) != "ok" }.prefix(5).map {
            "\($0["task_id"] as String): \($0["status"] as String) \(($0["error"] as String?) ?? "")"
        }
        #expect(failures.isEmpty, "calls to the local server failed: \(failures)")
        #expect(calls["failed"] as? Int == 0, "\(calls)")
        #expect(calls["made"] as? Int == callRows.count, "run --json calls \(calls), \(callRows.count) call rows")

        // Every stage with work made real calls. Generation always has work; the details and the filter
        // only when the model wrote a usable outline (a 135M model rarely does: hence the imported
        // scenarios, which every evaluation stage reads).
        let counts = try await store.read { db in
            (
                outlinesKept: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outline WHERE kept = 1") ?? 0,
                detailed: try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM scenario WHERE outline_id != 'import' AND status != 'invalid'")
                    ?? 0
            )
        }
        var required = ["generation", "user_prompts", "multiple_choice", "likert", "open_ended", "judge"]
        if counts.outlinesKept > 0 { required.append("scenario_details") }
        if counts.detailed > 0 { required.append("filter") }
        for stage in required {
            #expect((byStage[stage]?.ok ?? 0) > 0, "no successful \(stage) call: \(byStage)")
        }
        let answered = try await store.read { db in
            try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM call WHERE status = 'ok' AND response IS NOT NULL AND response != ''")
                ?? 0
        }
        #expect(answered > 0, "no call stored an answer")

        // Judgments: one per imported scenario, format and condition at least, each A, B or invalid (no
        // call failed, so none is missing); an invalid one keeps the raw answer it could not read.
        let judgments = try store.read { db in
            try Row.fetchAll(db, sql: "SELECT scenario_id, format, choice, raw FROM judgment")
        }
        let importedJudgments = judgments.filter { ($0["scenario_id"] as String).hasPrefix("import/") }
        #expect(importedJudgments.count == 3 * 2 * 2, "judgments of imported scenarios: \(importedJudgments.count)")
        for row in judgments {
            let choice: String = row["choice"]
            let raw: String? = row["raw"]
            #expect(["A", "B", "invalid"].contains(choice), "judgment \(row)")
            if choice == "invalid" {
                #expect(
                    !(raw ?? "").trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                    "an invalid judgment without its raw answer: \(row)")
            }
        }
        let invalidScenariosWithoutRaw = try await store.read { db in
            try Int.fetchOne(
                db, sql: "SELECT COUNT(*) FROM scenario WHERE status = 'invalid' AND TRIM(COALESCE(raw, '')) = ''")
                ?? 0
        }
        #expect(invalidScenariosWithoutRaw == 0, "invalid scenarios stored without their raw answer")

        // The summary counts them: every invalid judgment is excluded from the rankings, and the scenario
        // counts match the store.
        let invalidJudgments = judgments.filter { ($0["choice"] as String) == "invalid" }.count
        let rankings = summary["rankings"] as? [[String: Any]] ?? []
        let excluded = rankings.reduce(0) { $0 + ($1["excluded"] as? Int ?? 0) }
        let counted = rankings.reduce(0) { $0 + ($1["n"] as? Int ?? 0) }
        #expect(excluded == invalidJudgments, "rankings exclude \(excluded), the store has \(invalidJudgments) invalid")
        #expect(counted + excluded == judgments.count, "rankings hold \(counted + excluded) of \(judgments.count)")
        let invalidScenarios = try await store.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM scenario WHERE status = 'invalid'") ?? 0
        }
        let scenarios = summary["scenarios"] as? [String: Any] ?? [:]
        #expect(scenarios["invalid"] as? Int == invalidScenarios, "\(scenarios) vs \(invalidScenarios) in the store")

        // Per stage, when run --json reports it: the calls made, and the invalid answers matching the store.
        let reported = calls["by_stage"] as? [String: [String: Any]]
        if let reported {
            for stage in required {
                #expect((reported[stage]?["made"] as? Int ?? 0) > 0, "by_stage \(stage): \(reported[stage] ?? [:])")
            }
            for (stage, numbers) in reported {
                let made = numbers["made"] as? Int ?? 0
                #expect(
                    made == (byStage[stage]?.ok ?? 0),
                    "by_stage \(stage) made \(made), store \(byStage[stage] ?? StageCalls())")
            }
            let invalid = { (stage: String) in reported[stage]?["invalid"] as? Int ?? 0 }
            let invalidMCQ = judgments.filter {
                ($0["format"] as String) == "mcq" && ($0["choice"] as String) == "invalid"
            }
            #expect(invalid("multiple_choice") == invalidMCQ.count, "\(reported)")
            #expect(invalid("open_ended") + invalid("judge") == invalidJudgments - invalidMCQ.count, "\(reported)")
        }

        // What the model did, for whoever reads the test's output.
        print("LocalModelTests: first run \(firstSeconds) s; calls \(calls)")
        for stage in byStage.keys.sorted() {
            let line = "  \(stage): \(byStage[stage]!.ok) ok, \(byStage[stage]!.failed) failed"
            print(line + (reported?[stage].map { ", run --json \($0)" } ?? ""))
        }
        let invalidByFormat = Dictionary(grouping: judgments, by: { $0["format"] as String }).mapValues { rows in
            "\(rows.filter { ($0["choice"] as String) == "invalid" }.count)/\(rows.count) invalid"
        }
        print("  judgments: \(invalidByFormat); outlines kept \(counts.outlinesKept), scenarios \(scenarios)")

        // The second run makes no call: the sweep is finished, so no task is left to do (a task done again would
        // find its answers in the store), and its summary counts the same judgments.
        let second = try runConflictScope(
            ["run", "--config", configPath], environment: [:], logs: folder, label: "run2")
        #expect(second.status == 0, "second run: \(second.stderr.suffix(2000))")
        #expect(second.stdout.contains(": 0 calls made, 0 answered from the store, 0 failed"), "\(second.stdout)")
        #expect(
            second.stdout.contains(
                "Judgments: \(judgments.count) (\(invalidJudgments) invalid or missing, not counted)"),
            "\(second.stdout)")
        let callsAfter = try await store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM call") ?? 0 }
        #expect(callsAfter == callRows.count)
    }
}
