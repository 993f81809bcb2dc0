import AsyncHTTPClient
import ConflictScope
import ConflictScopeSimServer
import Foundation
import Testing

@Suite struct SimServerTests {
    /// Requests that exercise a writer (a stage template) and a target (latent utilities, a steering prompt).
    static let requests: [ChatRequest] = [
        ChatRequest(
            model: "writer-1",
            messages: [
                ChatMessage(
                    .user,
                    PromptLibrary.template(.outline).render([
                        "value1": "harmlessness", "value2": "helpfulness", "count": "2",
                        "template": PromptLibrary.template(.templateMeansMild).instructions,
                        "deployment": PromptLibrary.template(.deployment).instructions,
                        "definition1": "Avoids harm.", "definition2": "Gives the user what they need.",
                    ]))
            ], temperature: 0.7, maxTokens: 900, sampleIndex: 0),
        ChatRequest(
            model: "target-1",
            messages: [
                ChatMessage(.system, "You are a careful assistant."),
                ChatMessage(.user, "Should I share it? \(Marker.pair("harmlessness", "helpfulness"))"),
            ], temperature: 0, maxTokens: 300, sampleIndex: 0),
    ]

    @Test func answersEqualTheEmbeddedSimulation() async throws {
        let config = try simConfig()
        let embedded = SimulatedProvider(config: config, provider: "sim")
        try await withSimServer(config) { baseURL in
            let openAI = try client(kind: "openai", baseURL: baseURL)
            let anthropic = try client(kind: "anthropic", baseURL: baseURL)
            for request in Self.requests {
                let expected = try await embedded.chat(request)
                #expect(try await openAI.chat(request) == expected)
                #expect(try await anthropic.chat(request) == expected)
                // The sample index reaches the OpenAI endpoint as `seed`.
                for index in 1...3 {
                    var resampled = request
                    resampled.sampleIndex = index
                    #expect(try await openAI.chat(resampled) == (try await embedded.chat(resampled)))
                }
            }
        }
    }

    @Test func rateLimitAdmitsTheBurstAndAnswersTheRestWith429() async throws {
        let config = try simConfig("rpm = 120")
        try await withSimServer(config) { baseURL in
            var admitted = 0
            var refused: [(status: Int, headers: [String: String], body: [String: Any])] = []
            let started = ContinuousClock.now
            for index in 0..<30 {
                let reply = try await rawRequest(
                    baseURL + "/v1/chat/completions",
                    json: [
                        "model": "writer-1", "max_tokens": 50, "seed": index,
                        "messages": [["role": "user", "content": "Hello number \(index)"]],
                    ])
                if reply.status == 200 { admitted += 1 } else { refused.append(reply) }
            }
            // A limit of 120 a minute bursts 2, then admits one per half second: the bound follows
            // the time the requests took (long on a loaded machine).
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            #expect(admitted >= 2 && admitted <= 2 + Int((seconds * 2).rounded(.up)))
            #expect(admitted < 30)
            #expect(refused.count == 30 - admitted)
            for reply in refused {
                #expect(reply.status == 429)
                #expect(Int(reply.headers["retry-after"] ?? "") ?? 0 >= 1)
                #expect(reply.headers["x-ratelimit-limit-requests"] == "120")
                #expect(reply.headers["x-ratelimit-remaining-requests"] == "0")
                #expect(reply.headers["x-ratelimit-reset-requests"] != nil)
                let error = reply.body["error"] as? [String: Any]
                #expect(error?["code"] as? String == "rate_limit_exceeded")
            }
            let stats = try await modelStats(baseURL, "writer-1")
            #expect(stats["requests"] as? Int == 30)
            #expect(stats["successes"] as? Int == admitted)
            #expect(stats["rate_limited"] as? Int == 30 - admitted)

            // Through the project's client, a 429 is a retryable rate-limit error carrying Retry-After.
            let openAI = try client(kind: "openai", baseURL: baseURL)
            let error = await #expect(throws: ProviderError.self) { try await openAI.chat(Self.requests[0]) }
            #expect(error?.kind == .rateLimited)
            #expect((error?.retryAfter ?? 0) >= 1)
        }
    }

    @Test func serverErrorsStopAfterMaxFaultsPerRequest() async throws {
        let config = try simConfig("fault_5xx = 1.0\nmax_faults_per_request = 2")
        try await withSimServer(config) { baseURL in
            let openAI = try client(kind: "openai", baseURL: baseURL)
            let request = Self.requests[1]
            for _ in 0..<2 {
                let error = await #expect(throws: ProviderError.self) { try await openAI.chat(request) }
                #expect(error?.kind == .server)
            }
            let answer = try await openAI.chat(request)
            #expect(answer == (try await SimulatedProvider(config: config, provider: "sim").chat(request)))
            let stats = try await modelStats(baseURL, "target-1")
            #expect(stats["faults"] as? [String: Int] == ["5xx": 2])
            #expect(stats["successes"] as? Int == 1)
            #expect(stats["requests"] as? Int == 3)
            #expect(stats["successes_by_request"] as? [String: Int] == [request.cacheKey: 1])
        }
    }

    @Test func otherFaultsAreRetryableErrors() async throws {
        for (setting, kinds) in [
            ("fault_malformed", [ProviderError.Kind.malformedResponse]), ("fault_reset", [.connection]),
        ] {
            let config = try simConfig("\(setting) = 1.0\nmax_faults_per_request = 1")
            try await withSimServer(config) { baseURL in
                let openAI = try client(kind: "openai", baseURL: baseURL)
                let error = await #expect(throws: ProviderError.self) { try await openAI.chat(Self.requests[0]) }
                #expect(
                    error.map { kinds.contains($0.kind) && $0.isRetryable } == true,
                    "\(setting): \(String(describing: error))")
                _ = try await openAI.chat(Self.requests[0])
            }
        }
    }

    /// An empty answer is an answer: the pipeline re-asks it with a new sample index, then stores it invalid.
    @Test func anEmptyAnswerFaultIsAnUnusableAnswer() async throws {
        let config = try simConfig("fault_empty = 1.0\nmax_faults_per_request = 1")
        try await withSimServer(config) { baseURL in
            let openAI = try client(kind: "openai", baseURL: baseURL)
            let empty = try await openAI.chat(Self.requests[0])
            #expect(empty.text.isEmpty && ModelAnswer(text: empty.text, truncated: empty.truncated).isUnusable)
            #expect(try await !openAI.chat(Self.requests[0]).text.isEmpty, "the next attempt is not faulted")
        }
    }

    @Test func aHangOutlastsTheClientTimeoutAndEndsWithTheServer() async throws {
        let config = try simConfig("fault_hang = 1.0\nmax_faults_per_request = 1")
        try await withSimServer(config, hang: .seconds(60)) { baseURL in
            let openAI = try client(kind: "openai", baseURL: baseURL, timeout: 0.5)
            let error = await #expect(throws: ProviderError.self) { try await openAI.chat(Self.requests[0]) }
            #expect(error?.kind == .timeout)
            // The retry is not faulted; it gets an ordinary timeout (a loaded machine can take over 0.5 s).
            _ = try await client(kind: "openai", baseURL: baseURL).chat(Self.requests[0])
            let stats = try await modelStats(baseURL, "writer-1")
            #expect(stats["faults"] as? [String: Int] == ["hang": 1])
        }
    }

    @Test func embeddingsRoundTrip() async throws {
        let config = try simConfig()
        try await withSimServer(config) { baseURL in
            let openAI = try client(kind: "openai", baseURL: baseURL)
            let texts = ["A hospital portal helps a patient.", "A bakery ships bread.", ""]
            let vectors = try await openAI.embed(texts, model: "writer-1")
            let expected = texts.map(LexicalEmbedding.embed)
            // Foundation's JSON reader on Linux can miss a double's last bit, so the client's copy is close.
            #expect(vectors.count == expected.count)
            for (vector, reference) in zip(vectors, expected) {
                #expect(vector.count == reference.count)
                #expect(zip(vector, reference).allSatisfy { abs($0 - $1) <= 1e-15 })
            }
            // The server's text itself reads back bit for bit.
            let body = try await rawText(
                baseURL + "/v1/embeddings", json: ["model": "writer-1", "input": "A bakery ships bread."])
            let list = try #require(body.firstMatch(of: /"embedding":\[([^\]]*)\]/)).1
            let vector = list.split(separator: ",").compactMap { Double(String($0)) }
            #expect(vector == LexicalEmbedding.embed("A bakery ships bread."))
        }
    }

    @Test func unknownModelsAreNotFound() async throws {
        try await withSimServer(try simConfig()) { baseURL in
            let reply = try await rawRequest(
                baseURL + "/v1/chat/completions",
                json: ["model": "gpt-9", "messages": [["role": "user", "content": "Hi"]]])
            #expect(reply.status == 404)
        }
    }
}
