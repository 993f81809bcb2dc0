import ConflictScope
import Foundation
import GRDB
import Testing

/// How an OpenAI reasoning model (o-series, gpt-5) answers chat completions: it refuses `max_tokens` and any
/// temperature but the default, and its hidden reasoning spends the token budget, so a short budget
/// comes back empty with `finish_reason: length`. Other requests get nil (the cooperative fake answers).
func reasoningModelAnswer(_ request: RecordedRequest) -> FakeResponse? {
    let body = request.json
    if body["max_tokens"] != nil {
        return Wire.error(
            400,
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' "
                + "instead.", code: "unsupported_parameter", param: "max_tokens")
    }
    if let temperature = request.temperature, temperature != 1 {
        return Wire.error(
            400,
            "Unsupported value: 'temperature' does not support \(temperature) with this model. Only the default "
                + "(1) value is supported.", code: "unsupported_value", param: "temperature")
    }
    if let budget = body["max_completion_tokens"] as? Int, budget < 1000 {
        return Wire.openAIChat("", promptTokens: 200, completionTokens: budget, finishReason: "length")
    }
    return nil
}

@Suite("Provider contracts, fail-fast and the circuit breaker", .serialized)
struct ProviderContractTests {
    @Test func aReasoningTargetFinishesWithNoFailedAndNoInvalidCalls() async throws {
        let run = try await runFakeSweep(targetLines: "reasoning = true\nreasoning_effort = \"low\"") { _, request in
            request.model == "target-1" ? reasoningModelAnswer(request) : nil
        }
        let targetRequests = run.requests.filter { $0.model == "target-1" }
        #expect(targetRequests.count == 3 * 4, "a choice, two ratings and a reply per scenario")
        for request in targetRequests {
            #expect(request.json["max_tokens"] == nil)
            #expect(request.json["temperature"] == nil)
            #expect((request.json["max_completion_tokens"] as? Int ?? 0) >= 4096, "the reasoning floor")
            #expect(request.json["reasoning_effort"] as? String == "low")
        }
        // The other models keep the ordinary contract.
        #expect(run.requests.filter { $0.model == "writer-1" }.allSatisfy { $0.maxTokens != nil })
        #expect(run.summary.callsFailed == 0)
        #expect(run.summary.invalidByStage.isEmpty, "\(run.summary.invalidByStage)")
        let judgments = try run.judgments
        #expect(judgments.count == 6 && judgments.allSatisfy { $0.choice == .a || $0.choice == .b })
    }

    @Test func aReasoningModelSentTheOrdinaryContractStopsTheSweepAtOnce() async throws {
        do {
            _ = try await runFakeSweep { _, request in
                request.model == "target-1" ? reasoningModelAnswer(request) : nil
            }
            Issue.record("the sweep went on after the provider refused a parameter")
        } catch let stop as SweepStopped {
            #expect(stop.line.contains("provider fake, model target (target-1)"), "\(stop.line)")
            #expect(stop.line.contains("unsupported_parameter") && stop.line.contains("HTTP 400"), "\(stop.line)")
            #expect(stop.line.contains("max_completion_tokens"), "the provider's message: \(stop.line)")
        }
    }

    @Test func reasoningModelsAreRecognisedOnOpenAIsOwnAPI() throws {
        let (config, _) = try writeTemporaryConfig(
            """
            [sweep]
            name = "reasoning"
            [providers.openai]
            kind = "openai"
            api_key_env = "UNSET_KEY_FOR_TEST"
            [providers.local]
            kind = "openai"
            base_url = "http://127.0.0.1:8000/v1"
            [models.o3]
            provider = "openai"
            [models.o4-mini]
            provider = "openai"
            [models.gpt-5-mini]
            provider = "openai"
            reasoning_min_tokens = 8000
            [models.gpt-5-chat-latest]
            provider = "openai"
            [models.gpt-4-1]
            provider = "openai"
            model = "gpt-4.1"
            [models.local-o3]
            provider = "local"
            model = "o3"
            [models.local-reasoner]
            provider = "local"
            reasoning = true
            token_param = "max_tokens"
            \(writerRoles.replacingOccurrences(of: "writer", with: "gpt-4-1"))
            [targets]
            models = ["o3", "o4-mini", "gpt-5-mini", "gpt-5-chat-latest", "gpt-4-1", "local-o3", "local-reasoner"]
            """, environment: ["UNSET_KEY_FOR_TEST": "sk-x"])
        let reasoning = config.targets.filter { config.models[$0]!.contract.reasoning }
        #expect(reasoning == ["o3", "o4-mini", "gpt-5-mini", "local-reasoner"])
        #expect(config.models["o3"]!.contract.tokenParameter == .maxCompletionTokens)
        #expect(config.models["gpt-4-1"]!.contract.tokenParameter == .maxTokens)
        #expect(config.models["local-reasoner"]!.contract.tokenParameter == .maxTokens, "token_param wins")
        #expect(config.models["o3"]!.tokenBudget(16) == 4096)
        #expect(config.models["gpt-5-mini"]!.tokenBudget(16) == 8000)
        #expect(config.models["o3"]!.tokenBudget(10_000) == 10_000)
        #expect(config.models["gpt-4-1"]!.tokenBudget(16) == 16)
    }

    @Test func aCutOffAnswerIsReaskedThenStoredInvalidWithItsText() async throws {
        let run = try await runFakeSweep { stage, _ in
            stage == .mcq ? Wire.openAIChat("A", finishReason: "length") : nil
        }
        let mcq = try run.judgments.filter { $0.format == .mcq }
        #expect(mcq.count == 3 && mcq.allSatisfy { $0.choice == .invalid }, "\(mcq.map(\.choice))")
        #expect(run.requests(.mcq).count == 3 * 3, "asked, then re-asked twice")
        let truncated = try await openStore(run.config.storePath).read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM call WHERE truncated = 1 AND status = 'ok'") ?? 0
        }
        #expect(truncated == 9)
        #expect(run.summary.invalidByStage[.multipleChoice] == 3)
        #expect(run.summary.byStage[.multipleChoice]?.made == 9)
        #expect(run.summary.callsFailed == 0)
        // Tasks handled again (here: their records gone, so the rerun plans them anew) read the cut-off answers
        // from the store, and treat them the same.
        try await openStore(run.config.storePath).write { db in
            try db.execute(sql: "DELETE FROM task WHERE stage = 'multiple_choice'")
        }
        let again = try await EmbeddedSweep.run(config: run.config, environment: ["FAKE_API_KEY": "sk-sweep-1"])
        #expect(again.callsMade == 0)
        #expect(again.invalidByStage[.multipleChoice] == 3)
    }

    @Test func extraHeadersAreSentAndRedactedLikeTheKey() async throws {
        try await FakeProviderServer.with({ request in
            Wire.error(400, "bad gateway key \(request.header("X-Gateway-Key") ?? "")")
        }) { server in
            var (config, _) = try fakeProviderConfig(baseURL: server.baseURL, environment: ["FAKE_API_KEY": "sk-h"])
            config.providers["fake"]!.headers = ["X-Title": "conflictscope", "X-Gateway-Key": "gw-secret-123"]
            let provider = HTTPProvider(settings: config.providers["fake"]!, environment: ["FAKE_API_KEY": "sk-h"])
            let error = try #require(await chatError(provider, simpleRequest))
            let seen = try #require(server.requests.first)
            #expect(seen.header("X-Title") == "conflictscope")
            #expect(seen.header("X-Gateway-Key") == "gw-secret-123")
            #expect(!error.description.contains("gw-secret-123") && error.description.contains("[redacted]"))
        }
    }

    @Test func theCacheKeyIncludesTheEndpoint() async throws {
        try await FakeProviderServer.with({ _ in Wire.openAIChat("from the first") }) { first in
            try await FakeProviderServer.with({ _ in Wire.openAIChat("from the second") }) { second in
                let environment = ["FAKE_API_KEY": "sk-e"]
                let (config, _) = try fakeProviderConfig(baseURL: first.baseURL, environment: environment)
                let store = try ResultStore(path: config.storePath)
                var moved = config
                moved.providers["fake"]!.baseURL = second.baseURL
                var answers: [String?] = []
                for settings in [config, config, moved] {
                    let caller = ModelCaller(
                        config: settings, providers: EmbeddedSweep.providers(for: settings, environment: environment),
                        limiter: InProcessRateLimiter(limits: [:]), budget: nil)
                    answers.append(
                        try await caller.chat(
                            stage: .judge, modelName: "writer", prompt: nil, messages: [ChatMessage(.user, "Hi?")],
                            temperature: 0, maxTokens: 8, sampleIndex: 0, taskID: "test/cache", records: store)?.text)
                }
                #expect(answers == ["from the first", "from the first", "from the second"])
                #expect(first.requests.count == 1 && second.requests.count == 1)
            }
        }
    }

    /// `conflictscope run` against a provider that refuses the key: a non-zero exit within seconds, the
    /// status as the last line on stderr, nothing recorded as a judgment or a failed call.
    @Test func aRunAgainstAProviderAnswering401StopsWithinSeconds() async throws {
        let key = "sk-revoked-5b1e9a"
        try await FakeProviderServer.with({ request in
            Wire.error(401, "Incorrect API key provided: \(request.header("Authorization") ?? "").")
        }) { server in
            let environment = ["FAKE_API_KEY": key]
            let (config, folder) = try fakeProviderConfig(
                baseURL: server.baseURL, environment: environment, maxRetries: 5)
            let started = ContinuousClock.now
            let result = try runConflictScope(
                ["run", "--config", folder.appendingPathComponent("config.toml").path], environment: environment,
                logs: folder, label: "run-401")
            let elapsed = ContinuousClock.now - started
            #expect(result.status != 0)
            #expect(elapsed < .seconds(30), "\(elapsed)")
            let lastLine = result.stderr.split(separator: "\n").last.map(String.init) ?? ""
            #expect(lastLine.contains("HTTP 401") && lastLine.contains("provider fake"), "\(lastLine)")
            #expect(!result.stderr.contains(key) && !result.stdout.contains(key))
            #expect(server.requests.count <= 4, "no call after the first refusal but those already in flight")
            #expect(try ResultStore(path: config.storePath).judgments().isEmpty)
            #expect(try callRows(config.storePath).filter { $0.status == "failed" }.isEmpty)
        }
    }

    /// A target the network cannot reach: its calls wait on the breaker instead of failing; past
    /// `breaker_minutes` the run stops with them pending, and a rerun once it is reachable completes.
    @Test func anUnreachableModelIsPausedAndTheRunStopsWithItsTasksPending() async throws {
        let reachable = Locked(false)
        try await FakeProviderServer.with(
            sweepHandler { _, request in
                request.model == "target-1" && !reachable.current ? .hangUpResponse : nil
            }
        ) { server in
            let environment = ["FAKE_API_KEY": "sk-b"]
            var (config, _) = try fakeProviderConfig(baseURL: server.baseURL, environment: environment, maxRetries: 2)
            config.breakerMinutes = 0.05
            let started = ContinuousClock.now
            do {
                _ = try await EmbeddedSweep.run(config: config, environment: environment)
                Issue.record("the run ended normally with its target unreachable")
            } catch let stop as SweepStopped {
                #expect(stop.line.contains("model target paused by its circuit breaker"), "\(stop.line)")
            }
            #expect(ContinuousClock.now - started < .seconds(60))
            let targetCalls = try callRows(config.storePath).filter { $0.role == "target" }
            // At most one call can have used up its retries before the sixth failure in a row opened the breaker.
            #expect(targetCalls.filter { $0.status == "failed" }.count <= 1, "\(targetCalls.map(\.status))")
            #expect(try ResultStore(path: config.storePath).judgments().filter { $0.choice == .missing }.count <= 1)

            reachable.withLock { $0 = true }
            let rerun = try await EmbeddedSweep.run(config: config, environment: environment)
            #expect(rerun.callsFailed == 0)
            let judgments = try ResultStore(path: config.storePath).judgments()
            #expect(judgments.count == 6 && judgments.allSatisfy { $0.choice == .a || $0.choice == .b })
        }
    }
}

@Suite("One sweep per store")
struct SweepIdentityTests {
    static func config(seed: Int = 5, targets: [String] = ["steady"], judge: String = "writer") -> String {
        """
        [sweep]
        name = "identity"
        seed = \(seed)
        store = "results.sqlite"
        value_sets = ["hhh"]
        scenarios_per_pair = 1
        formats = ["mcq"]
        [generation]
        max_rounds = 1
        [analysis]
        bootstrap = 0
        [providers.sim]
        kind = "simulated"
        [models.writer]
        provider = "sim"
        [models.steady]
        provider = "sim"
        utilities.mcq = { harmlessness = 1.0, honesty = 0.5, helpfulness = -1.0 }
        [models.other]
        provider = "sim"
        utilities.mcq = { harmlessness = -1.0, honesty = 0.5, helpfulness = 1.0 }
        \(writerRoles.replacingOccurrences(of: "[roles.judge]\nmodel = \"writer\"", with: "[roles.judge]\nmodel = \"\(judge)\""))
        [targets]
        models = [\(targets.map { "\"\($0)\"" }.joined(separator: ", "))]
        """
    }

    @Test func anotherSeedStopsTheRunAndAnAddedTargetExtendsTheSweep() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("identity-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("config.toml").path
        func run(_ text: String, _ label: String, command: String = "run") throws -> CommandResult {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return try runConflictScope(
                [command, "--config", path] + (command == "run" ? ["--json"] : []), environment: [:], logs: folder,
                label: label)
        }
        let first = try run(Self.config(), "first")
        #expect(first.status == 0, "\(first.stderr.suffix(300))")

        for (text, difference) in [
            (Self.config(seed: 6), "seed is 5, the config's 6"),
            (Self.config(judge: "other"), "role judge is done by writer in the store, by other in the config"),
        ] {
            for command in ["run", "status", "export"] {
                let refused = try run(text, "refused-\(command)", command: command)
                #expect(refused.status == 2, "\(command): \(refused.stderr)")
                // One line (`run` may print a note on deduplication before it).
                let lines = refused.stderr.split(separator: "\n")
                #expect(lines.count <= 2 && lines.last?.contains(difference) == true, "\(command): \(refused.stderr)")
                #expect(lines.last?.contains(folder.appendingPathComponent("results.sqlite").path) == true)
            }
        }
        let extended = try run(Self.config(targets: ["steady", "other"]), "extended")
        #expect(extended.status == 0, "\(extended.stderr.suffix(300))")
        #expect(extended.stdout.contains("\"model\":\"other\"") || extended.stdout.contains("\"model\": \"other\""))
        // Dropping the added target again is another sweep: its judgments are in the store.
        let dropped = try run(Self.config(), "dropped")
        #expect(dropped.status == 2 && dropped.stderr.contains("model other is in the store"), "\(dropped.stderr)")
    }
}
