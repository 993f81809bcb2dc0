import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Chat completions and embeddings over HTTP: OpenAI's wire format (OpenAI, vLLM, llama.cpp, Ollama,
/// OpenRouter, ...) and Anthropic's Messages API. One attempt per call: retries, backoff and budgets
/// live in `ModelCaller`. Error descriptions name the status and host, never a header or key.
public struct HTTPProvider: LLMProvider {
    public enum WireFormat: Sendable { case openAI, anthropic }

    let format: WireFormat
    let baseURL: String
    /// Read from the environment at start; never logged, stored or put in an error.
    private let apiKey: String?
    let timeout: TimeAmount
    let client: HTTPClient
    /// The provider's `headers` (a hosted router's attribution, a gateway's key): sent with every request,
    /// redacted like the key wherever a reply quotes them.
    private let extraHeaders: [(name: String, value: String)]

    public init(settings: SweepConfig.Provider, environment: [String: String], client: HTTPClient = .providers) {
        self.format = settings.kind == .anthropic ? .anthropic : .openAI
        var base = settings.baseURL ?? ""
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.apiKey = settings.apiKeyEnv.flatMap { environment[$0] }.flatMap { $0.isEmpty ? nil : $0 }
        self.timeout = .milliseconds(Int64(settings.timeoutSeconds * 1000))
        self.client = client
        self.extraHeaders = settings.headers.sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }
    }

    var host: String { URL(string: baseURL)?.host ?? "provider" }

    public func chat(_ request: ChatRequest) async throws(ProviderError) -> ChatResponse {
        switch format {
        case .openAI:
            let contract = request.contract
            let body = OpenAIWire.ChatRequest(
                model: request.model,
                messages: request.messages.map { OpenAIWire.Message(role: $0.role.rawValue, content: $0.content) },
                // Reasoning models refuse any temperature but their default.
                temperature: contract.reasoning ? nil : request.temperature,
                maxTokens: contract.tokenParameter == .maxTokens ? request.maxTokens : nil,
                maxCompletionTokens: contract.tokenParameter == .maxCompletionTokens ? request.maxTokens : nil,
                reasoningEffort: contract.reasoningEffort,
                // Deliberate re-sampling reaches the provider as its seed, where it supports one.
                seed: request.sampleIndex)
            let data = try await post(path: "/chat/completions", body: WireJSON.encode(body))
            guard let reply = WireJSON.decode(OpenAIWire.ChatCompletion.self, data) else {
                throw ProviderError(.malformedResponse, "the reply from \(host) is not a chat completion")
            }
            guard let choice = reply.choices.first else {
                throw ProviderError(.malformedResponse, "no choices[0] in the reply from \(host)")
            }
            let text = choice.message.content ?? ""
            return ChatResponse(
                text: text, inputTokens: Self.tokens(reply.usage?.promptTokens) ?? request.estimatedPromptTokens,
                outputTokens: Self.tokens(reply.usage?.completionTokens) ?? text.utf8.count / 4,
                truncated: choice.finishReason == "length")
        case .anthropic:
            let system = request.messages.filter { $0.role == .system }.map(\.content).joined(separator: "\n\n")
            let body = AnthropicWire.MessagesRequest(
                model: request.model, maxTokens: request.maxTokens, system: system.isEmpty ? nil : system,
                messages: request.messages.filter { $0.role != .system }.map {
                    AnthropicWire.Message(role: $0.role.rawValue, content: $0.content)
                }, temperature: request.temperature)
            let data = try await post(path: "/messages", body: WireJSON.encode(body))
            guard let reply = WireJSON.decode(AnthropicWire.MessagesResponse.self, data) else {
                throw ProviderError(.malformedResponse, "the reply from \(host) is not a Messages API message")
            }
            let text = reply.text
            return ChatResponse(
                text: text, inputTokens: Self.tokens(reply.usage.inputTokens) ?? request.estimatedPromptTokens,
                outputTokens: Self.tokens(reply.usage.outputTokens) ?? text.utf8.count / 4,
                truncated: reply.stopReason == "max_tokens")
        }
    }

    public func embed(_ texts: [String], model: String) async throws(ProviderError) -> [[Double]] {
        guard format == .openAI else {
            throw ProviderError(
                .badRequest, "the Anthropic API has no embeddings endpoint; use an OpenAI-compatible one")
        }
        let data = try await post(
            path: "/embeddings", body: WireJSON.encode(OpenAIWire.EmbeddingsRequest(model: model, input: texts)))
        guard let reply = WireJSON.decode(OpenAIWire.Embeddings.self, data), reply.data.count == texts.count else {
            throw ProviderError(.malformedResponse, "embeddings reply from \(host) does not match the inputs")
        }
        // Entries without an index keep their position.
        let indexed = reply.data.enumerated().map { ($0.element.index >= 0 ? $0.element.index : $0.offset, $0.element) }
        return indexed.sorted { $0.0 < $1.0 }.map(\.1.embedding)
    }

    private func post(path: String, body: Data) async throws(ProviderError) -> Data {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        switch format {
        case .openAI:
            if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        case .anthropic:
            if let apiKey { request.headers.add(name: "x-api-key", value: apiKey) }
            request.headers.add(name: "anthropic-version", value: AnthropicWire.version)
        }
        for (name, value) in extraHeaders { request.headers.replaceOrAdd(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))

        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await client.execute(request, timeout: timeout)
            bytes = try await response.body.collect(upTo: 64 << 20)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            throw ProviderError(.timeout, "no reply from \(host) within \(timeout.nanoseconds / 1_000_000) ms")
        } catch let error as HTTPClientError where error == .connectTimeout {
            throw ProviderError(.timeout, "could not connect to \(host) in time")
        } catch {
            throw ProviderError(.connection, "connection to \(host) failed (\(type(of: error)))")
        }
        let data = Data(bytes.readableBytesView)
        let status = Int(response.status.code)
        guard (200..<300).contains(status) else {
            let retryAfter = response.headers.first(name: "retry-after").flatMap(Self.retryAfterSeconds)
            throw classify(status: status, body: data, retryAfter: retryAfter)
        }
        return data
    }

    /// What an error status means for the call and the sweep, from the status and the error body's type and
    /// code (both formats). The message quotes the provider's own, with every secret redacted.
    func classify(status: Int, body: Data, retryAfter: Double?) -> ProviderError {
        let openAI = WireJSON.decode(OpenAIWire.ErrorBody.self, body)?.error
        let anthropic = WireJSON.decode(AnthropicWire.ErrorBody.self, body)?.error
        let code = openAI?.code ?? ""
        let type = anthropic?.type ?? openAI?.type ?? ""
        let providerMessage = anthropic?.message ?? openAI?.message ?? String(decoding: body, as: UTF8.self)
        let detail = String(redacted(providerMessage).prefix(300).map { $0.isNewline ? " " : $0 })
        let message = "HTTP \(status) from \(host): \(detail)"
        let lowered = providerMessage.lowercased()
        if code == "unsupported_parameter" || code == "unsupported_value" {
            return ProviderError(.unsupportedParameter, message)
        }
        if code == "model_not_found" || type == "not_found_error" || status == 404 {
            return ProviderError(.modelNotFound, message)
        }
        if status == 401 || status == 403 || code == "insufficient_quota" || type == "authentication_error"
            || type == "permission_error"
        {
            return ProviderError(.unauthorized, message)
        }
        switch status {
        case 429:
            return ProviderError(.rateLimited, "HTTP 429 from \(host)", retryAfter: retryAfter)
        case 400, 413, 422:
            if code == "context_length_exceeded" || lowered.contains("context length")
                || lowered.contains("maximum context") || lowered.contains("too many tokens")
                || lowered.contains("prompt is too long")
            {
                return ProviderError(.contextLength, "HTTP \(status) from \(host): the prompt is too long")
            }
            return ProviderError(.badRequest, message)
        default:
            // 5xx and Anthropic's 529 overloaded: worth another attempt.
            return ProviderError(.server, "HTTP \(status) from \(host)", retryAfter: retryAfter)
        }
    }

    /// `text` with the API key and every extra header's value replaced: some APIs quote the key back
    /// ("Incorrect API key provided: ..."). Redacted before any cut, so no part of a secret survives.
    func redacted(_ text: String) -> String {
        let secrets = ([apiKey].compactMap { $0 } + extraHeaders.map(\.value)).filter { $0.count >= 4 }
        return secrets.reduce(text) { $0.replacingOccurrences(of: $1, with: "[redacted]") }
    }

    /// A reported token count above this (or below 0, or not an integer) is not believed: the estimate
    /// is used instead, so cost, budget and rate-limit arithmetic downstream cannot overflow.
    public static let maximumReportedTokens = 100_000_000

    static func tokens(_ value: Int?) -> Int? {
        guard let count = value, (0...maximumReportedTokens).contains(count) else { return nil }
        return count
    }

    /// The longest Retry-After honoured; a longer (or infinite) one is cut to this.
    public static let maximumRetryAfterSeconds = 3600.0

    /// Retry-After as delta seconds or an HTTP date, within 0...`maximumRetryAfterSeconds`; nil when it
    /// is neither (or not a number at all, such as "nan").
    public static func retryAfterSeconds(_ value: String) -> Double? {
        let seconds: Double
        if let delta = Double(value.trimmingCharacters(in: .whitespaces)) {
            seconds = delta
        } else {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
            guard let date = formatter.date(from: value) else { return nil }
            seconds = date.timeIntervalSinceNow
        }
        guard !seconds.isNaN else { return nil }
        return min(max(0, seconds), maximumRetryAfterSeconds)
    }
}

extension HTTPClient {
    /// The client provider calls share. AsyncHTTPClient's `.shared` opens at most 8 connections per host, so at a
    /// provider's latency a process had at most 8 calls in flight per endpoint: calls the rate limiter had
    /// admitted waited in its pool, timed out there and were retried (bench/sweep: 1,063 of 9,240 tasks' calls
    /// failed at 1 s latency). Rate limits and `concurrency` bound what is in flight, not the pool.
    public static let providers: HTTPClient = {
        var configuration = HTTPClient.Configuration.singletonConfiguration
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 1024)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()
}
