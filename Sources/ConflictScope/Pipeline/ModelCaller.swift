import Foundation

/// The single path of every LLM call: the response cache (the store's call records), the sweep
/// budget, the rate limiter, retries with exponential backoff and jitter honouring Retry-After, and
/// the call record with tokens, latency and cost. A call that still fails is recorded as failed and
/// returned as nil: infrastructure failures are never data.
public final class ModelCaller: Sendable {
    let config: SweepConfig
    let store: ResultStore
    let providers: [String: any LLMProvider]
    let limiter: any RateLimiter
    let counters = CallCounters()

    public init(config: SweepConfig, store: ResultStore, providers: [String: any LLMProvider], limiter: any RateLimiter)
    {
        self.config = config
        self.store = store
        self.providers = providers
        self.limiter = limiter
    }

    /// The budget was reached; no further calls are made in this run.
    public struct BudgetExhausted: Error {}

    public func chat(
        role: String, modelName: String, prompt: PromptTemplate?, messages: [ChatMessage], temperature: Double,
        maxTokens: Int, sampleIndex: Int, taskID: String
    ) async throws -> String? {
        guard let model = config.models[modelName], let provider = providers[model.provider],
            let settings = config.providers[model.provider]
        else { preconditionFailure("model \(modelName) was validated with the config") }
        let request = ChatRequest(
            model: model.modelID, messages: messages, temperature: temperature, maxTokens: maxTokens,
            sampleIndex: sampleIndex)
        let key = request.cacheKey
        if let cached = try store.successfulResponse(key: key) {
            await counters.add(cached: 1)
            return cached
        }
        if let budget = config.maxCostUSD, try store.spentUSD() >= budget {
            await counters.budgetReached()
            throw BudgetExhausted()
        }
        let clock = ContinuousClock()
        let started = clock.now
        var attempts = 0
        var lastError: ProviderError? = nil
        while attempts <= settings.maxRetries {
            attempts += 1
            await limiter.acquire(model: modelName, estimatedTokens: request.estimatedPromptTokens + maxTokens)
            let result: Result<ChatResponse, ProviderError>
            do {
                result = .success(try await provider.chat(request))
            } catch {
                result = .failure(error)
            }
            switch result {
            case .success(let response):
                await limiter.release(model: modelName, usedTokens: response.inputTokens + response.outputTokens)
                let cost =
                    (Double(response.inputTokens) * model.inputUSDPerMillionTokens
                        + Double(response.outputTokens) * model.outputUSDPerMillionTokens) / 1e6
                try store.record(
                    .init(
                        key: key, taskID: taskID, role: role, model: modelName, prompt: prompt?.id ?? "none",
                        sampleIndex: sampleIndex, status: "ok", response: response.text, error: nil,
                        inputTokens: response.inputTokens, outputTokens: response.outputTokens,
                        latencyMilliseconds: milliseconds(clock.now - started), costUSD: cost, attempts: attempts))
                await counters.add(made: 1)
                return response.text
            case .failure(let error):
                await limiter.release(model: modelName, usedTokens: request.estimatedPromptTokens)
                lastError = error
                guard error.isRetryable, attempts <= settings.maxRetries else { break }
                try await Task.sleep(for: .seconds(backoff(attempt: attempts, retryAfter: error.retryAfter, key: key)))
                continue
            }
            break
        }
        try store.record(
            .init(
                key: key, taskID: taskID, role: role, model: modelName, prompt: prompt?.id ?? "none",
                sampleIndex: sampleIndex, status: "failed", response: nil, error: lastError?.description,
                inputTokens: 0, outputTokens: 0, latencyMilliseconds: milliseconds(clock.now - started), costUSD: 0,
                attempts: attempts))
        await counters.add(failed: 1)
        return nil
    }

    /// Exponential backoff from 0.5 s with jitter (deterministic per call), or the provider's Retry-After.
    func backoff(attempt: Int, retryAfter: Double?, key: String) -> Double {
        if let retryAfter { return min(retryAfter, 300) }
        var rng = StableRandom(seed: UInt64(attempt), key: key)
        return min(0.5 * pow(2, Double(attempt - 1)), 30) * (0.5 + rng.uniform())
    }

    private func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }
}

/// What this run did, for progress and the summary.
public actor CallCounters {
    public private(set) var made = 0
    public private(set) var cached = 0
    public private(set) var failed = 0
    public private(set) var budgetHit = false

    func add(made: Int = 0, cached: Int = 0, failed: Int = 0) {
        self.made += made
        self.cached += cached
        self.failed += failed
    }

    func budgetReached() { budgetHit = true }
}

/// Pulls the JSON object out of a model's answer (tolerating code fences and surrounding prose).
enum AnswerParsing {
    static func jsonObject(_ text: String) -> [String: Any]? {
        guard let start = text.firstIndex(of: "{"), let end = text.lastIndex(of: "}"), start < end else { return nil }
        let data = Data(text[start...end].utf8)
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }

    static func string(_ object: [String: Any], _ key: String) -> String? {
        guard let text = object[key] as? String else { return nil }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? nil : trimmed
    }

    static func rating(_ object: [String: Any], _ key: String) -> Int? {
        guard let number = object[key] as? NSNumber, number.doubleValue == number.doubleValue.rounded(),
            (1...7).contains(number.intValue), !(object[key] is Bool)
        else { return nil }
        return number.intValue
    }

    /// "A" or "B" (case and whitespace tolerated), nil otherwise.
    static func letter(_ object: [String: Any], _ key: String) -> String? {
        guard let text = string(object, key)?.uppercased(), text == "A" || text == "B" else { return nil }
        return text
    }
}
