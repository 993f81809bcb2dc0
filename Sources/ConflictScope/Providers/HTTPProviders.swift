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

    public init(settings: SweepConfig.Provider, environment: [String: String], client: HTTPClient = .providers) {
        self.format = settings.kind == .anthropic ? .anthropic : .openAI
        var base = settings.baseURL ?? ""
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.apiKey = settings.apiKeyEnv.flatMap { environment[$0] }.flatMap { $0.isEmpty ? nil : $0 }
        self.timeout = .milliseconds(Int64(settings.timeoutSeconds * 1000))
        self.client = client
    }

    var host: String { URL(string: baseURL)?.host ?? "provider" }

    public func chat(_ request: ChatRequest) async throws(ProviderError) -> ChatResponse {
        switch format {
        case .openAI:
            var body: [String: Any] = [
                "model": request.model, "temperature": request.temperature, "max_tokens": request.maxTokens,
                "messages": request.messages.map { ["role": $0.role.rawValue, "content": $0.content] },
            ]
            // Deliberate re-sampling reaches the provider as its seed, where it supports one.
            body["seed"] = request.sampleIndex
            let object = try await post(path: "/chat/completions", body: body)
            guard let choices = object["choices"] as? [[String: Any]],
                let message = choices.first?["message"] as? [String: Any]
            else { throw ProviderError(.malformedResponse, "no choices[0].message in the reply from \(host)") }
            guard let text = message["content"] as? String,
                !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            else { throw ProviderError(.malformedResponse, "empty content in the reply from \(host)") }
            let usage = object["usage"] as? [String: Any]
            return ChatResponse(
                text: text, inputTokens: Self.tokens(usage?["prompt_tokens"]) ?? request.estimatedPromptTokens,
                outputTokens: Self.tokens(usage?["completion_tokens"]) ?? text.utf8.count / 4)
        case .anthropic:
            var body: [String: Any] = [
                "model": request.model, "temperature": request.temperature, "max_tokens": request.maxTokens,
                "messages": request.messages.filter { $0.role != .system }.map {
                    ["role": $0.role.rawValue, "content": $0.content]
                },
            ]
            let system = request.messages.filter { $0.role == .system }.map(\.content).joined(separator: "\n\n")
            if !system.isEmpty { body["system"] = system }
            let object = try await post(path: "/messages", body: body)
            guard let blocks = object["content"] as? [[String: Any]] else {
                throw ProviderError(.malformedResponse, "no content blocks in the reply from \(host)")
            }
            let text = blocks.compactMap { $0["type"] as? String == "text" ? $0["text"] as? String : nil }.joined()
            guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw ProviderError(.malformedResponse, "empty content in the reply from \(host)")
            }
            let usage = object["usage"] as? [String: Any]
            return ChatResponse(
                text: text, inputTokens: Self.tokens(usage?["input_tokens"]) ?? request.estimatedPromptTokens,
                outputTokens: Self.tokens(usage?["output_tokens"]) ?? text.utf8.count / 4)
        }
    }

    public func embed(_ texts: [String], model: String) async throws(ProviderError) -> [[Double]] {
        guard format == .openAI else {
            throw ProviderError(
                .badRequest, "the Anthropic API has no embeddings endpoint; use an OpenAI-compatible one")
        }
        let object = try await post(path: "/embeddings", body: ["model": model, "input": texts])
        guard let data = object["data"] as? [[String: Any]], data.count == texts.count else {
            throw ProviderError(.malformedResponse, "embeddings reply from \(host) does not match the inputs")
        }
        let sorted = data.sorted { ($0["index"] as? Int ?? 0) < ($1["index"] as? Int ?? 0) }
        return try sorted.map { entry throws(ProviderError) in
            guard let vector = entry["embedding"] as? [NSNumber] else {
                throw ProviderError(.malformedResponse, "an embedding from \(host) is not a list of numbers")
            }
            return vector.map(\.doubleValue)
        }
    }

    private func post(path: String, body: [String: Any]) async throws(ProviderError) -> [String: Any] {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        switch format {
        case .openAI:
            if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        case .anthropic:
            if let apiKey { request.headers.add(name: "x-api-key", value: apiKey) }
            request.headers.add(name: "anthropic-version", value: "2023-06-01")
        }
        let payload: Data
        do {
            payload = try JSONSerialization.data(withJSONObject: body)
        } catch {
            throw ProviderError(.badRequest, "request body could not be encoded")
        }
        request.body = .bytes(ByteBuffer(bytes: payload))

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
        let text = String(buffer: bytes)
        let status = response.status.code
        guard (200..<300).contains(status) else {
            let retryAfter = response.headers.first(name: "retry-after").flatMap(Self.retryAfterSeconds)
            // Some APIs quote the key back ("Incorrect API key provided: ..."): never pass it on.
            // Redact before cutting to length, so no part of the key survives.
            let redacted = apiKey.map { text.replacingOccurrences(of: $0, with: "[redacted]") } ?? text
            let detail = String(redacted.prefix(200).map { $0.isNewline ? " " : $0 })
            switch status {
            case 429:
                throw ProviderError(.rateLimited, "HTTP 429 from \(host)", retryAfter: retryAfter)
            case 400, 413, 422:
                let lowered = text.lowercased()
                if lowered.contains("context_length") || lowered.contains("context length")
                    || lowered.contains("maximum context") || lowered.contains("too many tokens")
                    || lowered.contains("prompt is too long")
                {
                    throw ProviderError(.contextLength, "HTTP \(status) from \(host): the prompt is too long")
                }
                throw ProviderError(.badRequest, "HTTP \(status) from \(host): \(detail)")
            case 401, 403, 404:
                throw ProviderError(.badRequest, "HTTP \(status) from \(host): \(detail)")
            default:
                throw ProviderError(.server, "HTTP \(status) from \(host)", retryAfter: retryAfter)
            }
        }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            throw ProviderError(.malformedResponse, "the reply from \(host) is not a JSON object")
        }
        return object
    }

    /// A reported token count above this (or below 0, or not an integer) is not believed: the estimate
    /// is used instead, so cost, budget and rate-limit arithmetic downstream cannot overflow.
    public static let maximumReportedTokens = 100_000_000

    static func tokens(_ value: Any?) -> Int? {
        guard let count = value as? Int, (0...maximumReportedTokens).contains(count) else { return nil }
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
