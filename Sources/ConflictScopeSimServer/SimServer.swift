import ConflictScope
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// An HTTP server in front of a config's simulated models, in OpenAI's and Anthropic's wire formats, with
/// server-side rate limits, injected faults and counts of what it served (`GET /stats`).
///
/// Answers come from `SimulatedProvider`, so they are exactly those of an embedded run: a function of the
/// request and its sample index (the `seed` field). Each call is first admitted by the model's rate limits
/// (429 otherwise), then may get a fault (at most `max_faults_per_request` per request, decided from the
/// request's hash and attempt number), then waits `latency_ms` ± `latency_jitter_ms` and is answered.
public struct SimServer: Sendable {
    public struct Configuration: Sendable {
        /// Address to listen on (default 127.0.0.1: the simulation serves this machine only).
        public var host: String
        /// Port to listen on (default 8089; 0 picks a free one, passed to `onServerRunning`).
        public var port: Int
        /// How long a `hang` fault holds a request while its client stays connected (default 600 s).
        public var hangDuration: Duration

        public init(host: String = "127.0.0.1", port: Int = 8089, hangDuration: Duration = .seconds(600)) {
            self.host = host
            self.port = port
            self.hangDuration = hangDuration
        }
    }

    /// What the server applies to one model (by provider model id), from its provider's settings.
    struct ModelSettings: Sendable {
        var provider: String
        var latencyMilliseconds: Int
        var jitterMilliseconds: Int
        var faults: SweepConfig.SimulatedFaults
        var limits: SimRateLimiter.Limits
    }

    /// `max_tokens` assumed when an OpenAI request has none.
    static let defaultMaxTokens = 4096

    public let configuration: Configuration
    let models: [String: ModelSettings]
    let simulation: SimulatedProvider
    let limiter = SimRateLimiter()
    let stats = SimStats()

    /// Serves every model of `config` whose provider is of kind `simulated`.
    public init(config: SweepConfig, configuration: Configuration = .init()) throws(SimServerError) {
        var models: [String: ModelSettings] = [:]
        var behaviours: [String: SweepConfig.SimulatedBehaviour] = [:]
        for model in config.models.values.sorted(by: { $0.name < $1.name }) {
            guard let provider = config.providers[model.provider], provider.kind == .simulated else { continue }
            if let existing = models[model.modelID], existing.provider != provider.name {
                throw SimServerError(
                    "model id \"\(model.modelID)\" is served by two simulated providers "
                        + "(\(existing.provider), \(provider.name)); give one a distinct `model`")
            }
            models[model.modelID] = ModelSettings(
                provider: provider.name, latencyMilliseconds: provider.latencyMilliseconds,
                jitterMilliseconds: provider.latencyJitterMilliseconds, faults: provider.faults,
                limits: SimRateLimiter.Limits(
                    requests: provider.requestsPerMinute, tokens: provider.tokensPerMinute,
                    inputTokens: provider.inputTokensPerMinute, outputTokens: provider.outputTokensPerMinute))
            if let behaviour = model.simulated { behaviours[model.modelID] = behaviour }
        }
        guard !models.isEmpty else { throw SimServerError("the config has no models on a provider of kind simulated") }
        self.configuration = configuration
        self.models = models
        self.simulation = SimulatedProvider(behaviours: behaviours, latency: .zero)
    }

    /// The provider model ids served, sorted.
    public var modelIDs: [String] { models.keys.sorted() }

    /// The Hummingbird application; `onServerRunning` gets the port it listens on.
    public func application(
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router(context: SimRequestContext.self)
        router.post("/v1/chat/completions") { request, context in
            await self.chat(.openAI, request, context)
        }
        router.post("/v1/messages") { request, context in
            await self.chat(.anthropic, request, context)
        }
        router.post("/v1/embeddings") { request, context in
            await self.embeddings(request, context)
        }
        router.get("/stats") { request, _ in
            let admissions = request.uri.queryParameters["admissions"].map { $0 == "1" || $0 == "true" } ?? false
            return Self.response(200, await self.stats.json(admissions: admissions))
        }
        let port = configuration.port
        return Application(
            router: router,
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: "conflictscope-sim"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) })
    }

    // MARK: Endpoints

    private func chat(_ wire: SimWire, _ request: Request, _ context: SimRequestContext) async -> Response {
        let chatRequest: ChatRequest
        do throws(SimWire.Rejection) {
            chatRequest = try wire.chatRequest(try await body(request, context))
        } catch {
            return Self.reject(wire, error)
        }
        let key = chatRequest.cacheKey
        return await serve(
            wire, model: chatRequest.model, key: key, inputTokens: chatRequest.estimatedPromptTokens,
            outputTokens: chatRequest.maxTokens, context: context
        ) { () async throws(SimWire.Rejection) -> (Data, Int, Int) in
            let answer: ChatResponse
            do {
                answer = try await simulation.chat(chatRequest)
            } catch {
                throw SimWire.Rejection(status: 500, type: "api_error", message: "the request was cancelled")
            }
            let body = wire.chatBody(
                chatRequest, key: key, text: answer.text, input: answer.inputTokens, output: answer.outputTokens)
            return (body, answer.inputTokens, answer.outputTokens)
        }
    }

    private func embeddings(_ request: Request, _ context: SimRequestContext) async -> Response {
        let model: String
        let inputs: [String]
        do throws(SimWire.Rejection) {
            (model, inputs) = try SimWire.embeddingsRequest(try await body(request, context))
        } catch {
            return Self.reject(.openAI, error)
        }
        let key = "embed-" + StableHash.hex128("embed\u{1}\(model)\u{1}" + inputs.joined(separator: "\u{1}"))
        let tokens = inputs.reduce(0) { $0 + $1.utf8.count / 4 + 1 }
        return await serve(.openAI, model: model, key: key, inputTokens: tokens, outputTokens: 0, context: context) {
            () async throws(SimWire.Rejection) -> (Data, Int, Int) in
            let vectors: [[Double]]
            do {
                vectors = try await simulation.embed(inputs, model: model)
            } catch {
                throw SimWire.Rejection(status: 500, type: "api_error", message: "the request was cancelled")
            }
            return (SimWire.embeddingsBody(model: model, vectors: vectors, tokens: tokens), tokens, 0)
        }
    }

    /// Admission, faults, latency and the answer, for any endpoint.
    private func serve(
        _ wire: SimWire, model: String, key: String, inputTokens: Int, outputTokens: Int, context: SimRequestContext,
        answer: () async throws(SimWire.Rejection) -> (Data, Int, Int)
    ) async -> Response {
        guard let settings = models[model] else {
            let message = "The model `\(model)` does not exist or you do not have access to it."
            return Self.reject(wire, SimWire.Rejection(status: 404, type: "not_found_error", message: message))
        }
        await stats.received(model: model)
        let decision = await limiter.admit(
            model: model, limits: settings.limits, inputTokens: inputTokens, outputTokens: outputTokens)
        var headers = Self.rateLimitHeaders(decision.states)
        guard decision.admitted else {
            await stats.rateLimited(model: model)
            let seconds = max(1, Int(decision.retryAfter.rounded(.up)))
            headers[HTTPField.Name("retry-after")!] = String(seconds)
            headers[HTTPField.Name("retry-after-ms")!] = String(Int((decision.retryAfter * 1000).rounded(.up)))
            let body = wire.errorBody(
                type: "rate_limit_error",
                message: "Rate limit reached for \(model); please try again in \(Self.duration(decision.retryAfter)).")
            return Self.response(429, body, headers: headers)
        }
        await stats.admitted(model: model, chargedTokens: max(0, inputTokens) + max(0, outputTokens))
        let (attempt, fault) = await stats.beginAttempt(model: model, key: key, faults: settings.faults)
        if fault != "hang" {
            await sleepLatency(settings, key: key, attempt: attempt)
        }
        switch fault {
        case "5xx":
            let status = wire == .anthropic ? 529 : 500
            let type = wire == .anthropic ? "overloaded_error" : "server_error"
            let body = wire.errorBody(type: type, message: "The server had an error while processing your request.")
            return Self.response(status, body, headers: headers)
        case "hang":
            await hang(context)
            return Self.response(504, wire.errorBody(type: "api_error", message: "timed out"), headers: headers)
        case "malformed":
            return Self.response(200, SimWire.malformedBody, headers: headers)
        case "empty":
            return Self.response(200, wire.emptyBody(model: model), headers: headers)
        case "reset":
            // Close the connection before any response: the one returned below is never written.
            context.channel.close(mode: .all, promise: nil)
            return Self.response(502, Data(), headers: headers)
        default:
            break
        }
        do throws(SimWire.Rejection) {
            let (body, prompt, completion) = try await answer()
            await stats.succeeded(model: model, key: key, promptTokens: prompt, completionTokens: completion)
            headers[.contentType] = "application/json"
            return Self.response(200, body, headers: headers)
        } catch {
            return Self.reject(wire, error)
        }
    }

    // MARK: Helpers

    private func body(_ request: Request, _ context: SimRequestContext) async throws(SimWire.Rejection) -> Data {
        do {
            let buffer = try await request.body.collect(upTo: context.maxUploadSize)
            return Data(buffer.readableBytesView)
        } catch {
            throw SimWire.Rejection(status: 413, type: "invalid_request_error", message: "the body could not be read")
        }
    }

    /// `latency_ms` ± `latency_jitter_ms`, the offset fixed by the request's hash and attempt number.
    private func sleepLatency(_ settings: ModelSettings, key: String, attempt: Int) async {
        var milliseconds = Double(settings.latencyMilliseconds)
        if settings.jitterMilliseconds > 0 {
            var random = StableRandom(seed: UInt64(attempt), key: "latency/\(key)")
            milliseconds += (random.uniform() * 2 - 1) * Double(settings.jitterMilliseconds)
        }
        guard milliseconds > 0 else { return }
        try? await Task.sleep(for: .microseconds(Int(milliseconds * 1000)))
    }

    /// Holds the request for `hangDuration`, or until the client disconnects or the server stops.
    private func hang(_ context: SimRequestContext) async {
        let channel = context.channel
        let duration = configuration.hangDuration
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: duration) }
            group.addTask {
                while channel.isActive && !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// OpenAI's `x-ratelimit-limit-*`, `x-ratelimit-remaining-*` and `x-ratelimit-reset-*` headers.
    static func rateLimitHeaders(_ states: [SimRateLimiter.LimitState]) -> HTTPFields {
        var headers = HTTPFields()
        for state in states {
            headers[HTTPField.Name("x-ratelimit-limit-\(state.name)")!] = String(state.limit)
            headers[HTTPField.Name("x-ratelimit-remaining-\(state.name)")!] = String(state.remaining)
            headers[HTTPField.Name("x-ratelimit-reset-\(state.name)")!] = duration(state.resetSeconds)
        }
        return headers
    }

    /// A duration as OpenAI writes it: `120ms`, `1.5s`, `6m0s`.
    static func duration(_ seconds: Double) -> String {
        if seconds < 1 { return "\(Int((seconds * 1000).rounded(.up)))ms" }
        if seconds < 60 { return "\((seconds * 1000).rounded(.up) / 1000)s" }
        let whole = Int(seconds.rounded(.up))
        return "\(whole / 60)m\(whole % 60)s"
    }

    static func response(_ status: Int, _ body: Data, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(
            status: HTTPResponse.Status(code: status), headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    private static func reject(_ wire: SimWire, _ rejection: SimWire.Rejection) -> Response {
        response(rejection.status, wire.errorBody(type: rejection.type, message: rejection.message))
    }
}
