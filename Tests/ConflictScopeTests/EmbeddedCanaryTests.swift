import ConflictScope
import Foundation
import Testing

/// Runs the built `conflictscope` with `environment` added to the test's own; stdout and stderr go to
/// files (a pipe could fill), which are returned with the exit status.
func runConflictScope(_ arguments: [String], environment: [String: String], logs: URL, label: String) throws
    -> CommandResult
{
    let executable = Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("conflictscope")
    guard FileManager.default.isExecutableFile(atPath: executable.path) else {
        throw FixtureError(message: "conflictscope is not built at \(executable.path); run `swift build` first")
    }
    let outPath = logs.appendingPathComponent("\(label).out").path
    let errPath = logs.appendingPathComponent("\(label).err").path
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    try process.run()
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus, stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
}

/// The files under `folder` (recursively) whose bytes contain `needle`.
func filesHolding(_ needle: String, under folder: URL) -> [String] {
    let enumerator = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil)
    var found: [String] = []
    while let url = enumerator?.nextObject() as? URL {
        guard let data = try? Data(contentsOf: url) else { continue }
        if data.range(of: Data(needle.utf8)) != nil { found.append(url.lastPathComponent) }
    }
    return found
}

@Suite("The API key never leaves the process (embedded)", .serialized)
struct EmbeddedCanaryTests {
    /// `conflictscope run` against a nasty provider that quotes the Authorization or x-api-key header
    /// back in the body of its errors (409, 422, 400, 429, 500, and a 200 carrying an error object), then
    /// `status`, `export` and failing commands: the key is in no output, no error text, no stored row,
    /// no file (store, WAL, exports).
    @Test(arguments: ["openai", "anthropic"])
    func aCanaryKeyIsNowhereAfterAnEmbeddedSweepAgainstANastyProvider(kind: String) async throws {
        let key = "sk-canary-" + (0..<16).map { _ in String(UInt8.random(in: 0...255), radix: 16) }.joined()
        let variable = "CS_EMBEDDED_CANARY"
        let echoed = Locked(0)
        let handler: FakeProviderServer.Handler = { request in
            let sent = request.header("Authorization") ?? request.header("x-api-key") ?? ""
            let echo: @Sendable (Int) -> FakeResponse = { status in
                echoed.withLock { $0 += 1 }
                return .json(
                    ["error": ["message": "Incorrect API key provided: \(sent). Header was \(sent)", "key": sent]],
                    status: status)
            }
            // The fake speaks OpenAI's format; the Anthropic client gets Anthropic-shaped answers.
            if request.path == "/messages" {
                var openAI = request
                openAI.path = "/chat/completions"
                let answer = sweepHandler(nastyOverride(echo))(openAI)
                guard answer.status == 200,
                    let object = try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any],
                    let choices = object["choices"] as? [[String: Any]],
                    let text = (choices.first?["message"] as? [String: Any])?["content"] as? String
                else { return answer }
                return Wire.anthropicMessage([Wire.text(text)], inputTokens: 50, outputTokens: 10)
            }
            return sweepHandler(nastyOverride(echo))(request)
        }
        try await FakeProviderServer.with(handler) { server in
            let environment = [variable: key]
            let (config, folder) = try fakeProviderConfig(
                baseURL: server.baseURL, kind: kind, keyEnv: variable, environment: environment, maxRetries: 1,
                embedder: kind == "openai")
            let path = folder.appendingPathComponent("config.toml").path
            var outputs: [CommandResult] = []
            let commands: [[String]] = [
                ["run", "--config", path],
                ["run", "--json", "--config", path],
                ["status", "--json", "--config", path],
                [
                    "export", "--config", path, "--format", "csv", "--include-missing", "--output",
                    folder.appendingPathComponent("export.csv").path,
                ],
                [
                    "export", "--config", path, "--format", "jsonl", "--include-missing", "--output",
                    folder.appendingPathComponent("export.jsonl").path,
                ],
                ["export", "--config", path, "--format", "jsonl", "--include-missing"],
                ["plan", "--config", path],
                ["import", "--config", path, "--scenarios", folder.appendingPathComponent("absent.csv").path],
                ["export", "--config", path, "--format", "xml"],
            ]
            for (index, arguments) in commands.enumerated() {
                outputs.append(
                    try runConflictScope(arguments, environment: environment, logs: folder, label: "command-\(index)"))
            }
            #expect(outputs[0].status == 0, "run failed: \(outputs[0].stderr.suffix(500))")
            #expect(outputs[1].status == 0)
            #expect(outputs[5].stdout.contains("\"choice\""), "the export lists judgments")
            #expect(outputs[7].status != 0 && outputs[7].stderr.contains("absent.csv"))
            #expect(outputs[8].status != 0 && !outputs[8].stderr.isEmpty)
            // The key was in play: sent on every request, and quoted back many times.
            #expect(!server.requests.isEmpty)
            #expect(
                server.requests.allSatisfy {
                    $0.header("Authorization") == "Bearer \(key)" || $0.header("x-api-key") == key
                })
            #expect(echoed.current >= 6, "the nasty provider answered \(echoed.current) calls with the key")
            let calls = try callRows(config.storePath)
            #expect(calls.contains { $0.status == "failed" } && calls.contains { $0.status == "ok" })
            #expect(calls.contains { $0.error?.contains("HTTP 422") == true })
            #expect(calls.allSatisfy { ($0.error ?? "").split(separator: "\n").count <= 1 })

            for (index, output) in outputs.enumerated() {
                #expect(!output.stdout.contains(key), "stdout of \(commands[index])")
                #expect(!output.stderr.contains(key), "stderr of \(commands[index])")
            }
            for cell in try allStoredText(config.storePath) {
                #expect(!cell.text.contains(key), "\(cell.table).\(cell.column)")
            }
            let files = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            #expect(files.contains("results.sqlite") && files.contains("export.csv") && files.contains("export.jsonl"))
            #expect(filesHolding(key, under: folder) == [], "files holding the key")
            // Positive control: the search finds the key where it is.
            try key.write(to: folder.appendingPathComponent("planted.txt"), atomically: true, encoding: .utf8)
            #expect(filesHolding(key, under: folder) == ["planted.txt"])
        }
    }
}

/// Which calls the nasty provider answers with the key quoted back, and how.
func nastyOverride(_ echo: @escaping @Sendable (Int) -> FakeResponse)
    -> @Sendable (FakeStage, RecordedRequest) -> FakeResponse?
{
    { stage, request in
        switch (stage, request.pair) {
        case (.outlines, _) where request.userText.contains("Means, strong"): echo(409)
        case (.judge, .some("harmlessness-helpfulness")): echo(422)
        case (.mcq, .some("helpfulness-honesty")): echo(400)
        case (.mcq, .some("harmlessness-helpfulness")): echo(429)
        case (.likert, .some("harmlessness-honesty")): echo(400)
        case (.user, .some("harmlessness-honesty")): echo(500)
        case (.reply, .some("helpfulness-honesty")): echo(200)
        default: nil
        }
    }
}
