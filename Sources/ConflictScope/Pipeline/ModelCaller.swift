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
    let budget: BudgetTracker?
    private let inFlight = SingleFlight()

    public init(config: SweepConfig, store: ResultStore, providers: [String: any LLMProvider], limiter: any RateLimiter)
    {
        self.config = config
        self.store = store
        self.providers = providers
        self.limiter = limiter
        self.budget = config.maxCostUSD.map { BudgetTracker(limit: $0) }
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
        // Identical requests in flight together are made once; the others share the answer.
        let (text, shared) = try await inFlight.result(for: key) {
            try await self.callOnce(
                request, key: key, model: model, provider: provider, settings: settings, role: role, prompt: prompt,
                taskID: taskID)
        }
        if shared { await counters.add(cached: 1) }
        return text
    }

    private func callOnce(
        _ request: ChatRequest, key: String, model: SweepConfig.Model, provider: any LLMProvider,
        settings: SweepConfig.Provider, role: String, prompt: PromptTemplate?, taskID: String
    ) async throws -> String? {
        let modelName = model.name
        let maxTokens = request.maxTokens
        let sampleIndex = request.sampleIndex
        if let cached = try store.successfulResponse(key: key) {
            await counters.add(cached: 1)
            return cached
        }
        // Reserve the most this call can cost, so calls in flight together cannot overshoot the budget.
        let worstCase =
            (Double(request.estimatedPromptTokens) * model.inputUSDPerMillionTokens
                + Double(maxTokens) * model.outputUSDPerMillionTokens) / 1e6
        if let budget, !(try await budget.reserve(worstCase, spentBefore: { try self.store.spentUSD() })) {
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
                await budget?.settle(reserved: worstCase, actual: cost)
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
        await budget?.settle(reserved: worstCase, actual: 0)
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

/// Runs one piece of work per key at a time; callers arriving while it runs share its result.
actor SingleFlight {
    private var running: [String: Task<String?, any Error>] = [:]

    func result(for key: String, _ work: @escaping @Sendable () async throws -> String?) async throws -> (
        String?, shared: Bool
    ) {
        if let task = running[key] { return (try await task.value, true) }
        let task = Task { try await work() }
        running[key] = task
        defer { running[key] = nil }
        return (try await task.value, false)
    }
}

/// The sweep budget within one process: spend already recorded plus reservations of calls in flight.
actor BudgetTracker {
    let limit: Double
    private var committed: Double?
    private var reserved = 0.0

    init(limit: Double) { self.limit = limit }

    /// Reserves `amount` if it fits under the limit; `spentBefore` reads the store's spend once.
    func reserve(_ amount: Double, spentBefore: () throws -> Double) rethrows -> Bool {
        let spent = try committed ?? spentBefore()
        committed = spent
        guard spent + reserved + amount <= limit else { return false }
        reserved += amount
        return true
    }

    func settle(reserved amount: Double, actual: Double) {
        reserved -= amount
        committed = (committed ?? 0) + actual
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
