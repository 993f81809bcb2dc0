import Foundation

/// The single path of every LLM call: the response cache (earlier call records), the sweep
/// budget, the rate limiter, retries with exponential backoff and jitter honouring Retry-After, and
/// the call record with tokens, latency and cost. A call that still fails is recorded as failed and
/// returned as nil: infrastructure failures are never data.
public final class ModelCaller: Sendable {
    let config: SweepConfig
    let providers: [String: any LLMProvider]
    let limiter: any RateLimiter
    public let counters = CallCounters()
    let budget: (any BudgetGate)?
    private let inFlight = SingleFlight()

    /// `budget`: the sweep's spending limit, when the config sets `max_cost_usd`.
    public init(
        config: SweepConfig, providers: [String: any LLMProvider], limiter: any RateLimiter,
        budget: (any BudgetGate)?
    ) {
        self.config = config
        self.providers = providers
        self.limiter = limiter
        self.budget = budget
    }

    /// The budget was reached; no further calls are made in this run.
    public struct BudgetExhausted: Error {}

    public func chat(
        role: String, modelName: String, prompt: PromptTemplate?, messages: [ChatMessage], temperature: Double,
        maxTokens: Int, sampleIndex: Int, taskID: String, records: any SweepRecords
    ) async throws -> String? {
        let (model, provider, settings) = resolve(modelName)
        let request = ChatRequest(
            model: model.modelID, messages: messages, temperature: temperature, maxTokens: maxTokens,
            sampleIndex: sampleIndex)
        let call = PendingCall(
            key: request.cacheKey, model: model, settings: settings, role: role, prompt: prompt?.id ?? "none",
            sampleIndex: sampleIndex, taskID: taskID, estimatedInputTokens: request.estimatedPromptTokens,
            maxOutputTokens: maxTokens)
        return try await perform(call, records: records) { () async throws(ProviderError) -> ChatResponse in
            try await provider.chat(request)
        }
    }

    /// Embeddings through the same cache, budget, limiter, retries and records as chat calls. The
    /// vectors are stored as the call's JSON response, so a resumed sweep does not pay for them twice.
    public func embed(modelName: String, texts: [String], taskID: String, records: any SweepRecords) async throws
        -> [[Double]]?
    {
        let (model, provider, settings) = resolve(modelName)
        let estimated = texts.reduce(0) { $0 + $1.utf8.count } / 4 + 1
        let call = PendingCall(
            key: StableHash.hex128("embed\u{1}\(model.modelID)\u{1}" + texts.joined(separator: "\u{1}")),
            model: model, settings: settings, role: "embedder", prompt: "none", sampleIndex: 0, taskID: taskID,
            estimatedInputTokens: estimated, maxOutputTokens: 0)
        let text = try await perform(call, records: records) { () async throws(ProviderError) -> ChatResponse in
            let vectors = try await provider.embed(texts, model: model.modelID)
            let data = (try? JSONSerialization.data(withJSONObject: vectors)) ?? Data("[]".utf8)
            return ChatResponse(text: String(decoding: data, as: UTF8.self), inputTokens: estimated, outputTokens: 0)
        }
        guard let text, let vectors = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[NSNumber]],
            vectors.count == texts.count
        else { return nil }
        return vectors.map { $0.map(\.doubleValue) }
    }

    private func resolve(_ modelName: String) -> (SweepConfig.Model, any LLMProvider, SweepConfig.Provider) {
        guard let model = config.models[modelName], let provider = providers[model.provider],
            let settings = config.providers[model.provider]
        else { preconditionFailure("model \(modelName) was validated with the config") }
        return (model, provider, settings)
    }

    /// What is known about a call before it is made.
    private struct PendingCall: Sendable {
        var key: String
        var model: SweepConfig.Model
        var settings: SweepConfig.Provider
        var role: String
        var prompt: String
        var sampleIndex: Int
        var taskID: String
        var estimatedInputTokens: Int
        var maxOutputTokens: Int
    }

    /// Identical calls in flight together are made once; the others share the answer.
    private func perform(
        _ call: PendingCall, records: any SweepRecords,
        attempt: @escaping @Sendable () async throws(ProviderError) -> ChatResponse
    ) async throws -> String? {
        let (text, shared) = try await inFlight.result(for: call.key) {
            try await self.performOnce(call, records: records, attempt: attempt)
        }
        if shared {
            await counters.add(cached: 1)
            SweepMetrics.cachedCall(model: call.model.name)
        }
        return text
    }

    private func performOnce(
        _ call: PendingCall, records: any SweepRecords,
        attempt: @Sendable () async throws(ProviderError) -> ChatResponse
    ) async throws -> String? {
        let model = call.model
        if let cached = try await records.successfulResponse(key: call.key) {
            await counters.add(cached: 1)
            SweepMetrics.cachedCall(model: model.name)
            return cached
        }
        // Reserve the most this call can cost, so calls in flight together cannot overshoot the budget.
        let worstCase =
            (Double(call.estimatedInputTokens) * model.inputUSDPerMillionTokens
                + Double(call.maxOutputTokens) * model.outputUSDPerMillionTokens) / 1e6
        if let budget, !(try await budget.reserve(worstCase)) {
            await counters.budgetReached()
            throw BudgetExhausted()
        }
        let clock = ContinuousClock()
        let started = clock.now
        func record(status: String, response: ChatResponse?, error: ProviderError?, cost: Double, attempts: Int)
            async throws
        {
            try await records.record(
                .init(
                    key: call.key, taskID: call.taskID, role: call.role, model: model.name, prompt: call.prompt,
                    sampleIndex: call.sampleIndex, status: status, response: response?.text,
                    error: error?.description, inputTokens: response?.inputTokens ?? 0,
                    outputTokens: response?.outputTokens ?? 0,
                    latencyMilliseconds: milliseconds(clock.now - started), costUSD: cost, attempts: attempts))
        }
        var attempts = 0
        var lastError: ProviderError? = nil
        while attempts <= call.settings.maxRetries {
            attempts += 1
            let estimate = TokenUsage(input: call.estimatedInputTokens, output: call.maxOutputTokens)
            let waitStarted = clock.now
            try await limiter.acquire(model: model.name, estimate: estimate)
            SweepMetrics.rateLimitWait(model: model.name, seconds: (clock.now - waitStarted).inSeconds)
            let response: ChatResponse
            do {
                response = try await attempt()
            } catch {
                try await limiter.settle(
                    model: model.name, estimate: estimate,
                    actual: TokenUsage(input: call.estimatedInputTokens, output: 0))
                // A cancelled call (a worker shutting down) is not a provider failure: record nothing.
                try Task.checkCancellation()
                lastError = error
                if error.kind == .rateLimited {
                    SweepMetrics.rateLimited(model: model.name)
                    if let seconds = error.retryAfter { try await limiter.pause(model: model.name, seconds: seconds) }
                }
                guard error.isRetryable, attempts <= call.settings.maxRetries else { break }
                try await Task.sleep(
                    for: .seconds(backoff(attempt: attempts, retryAfter: error.retryAfter, key: call.key)))
                continue
            }
            try await limiter.settle(
                model: model.name, estimate: estimate,
                actual: TokenUsage(input: response.inputTokens, output: response.outputTokens))
            let cost =
                (Double(response.inputTokens) * model.inputUSDPerMillionTokens
                    + Double(response.outputTokens) * model.outputUSDPerMillionTokens) / 1e6
            try await record(status: "ok", response: response, error: nil, cost: cost, attempts: attempts)
            await counters.add(made: 1)
            SweepMetrics.call(model: model.name, status: "ok", seconds: (clock.now - started).inSeconds)
            SweepMetrics.usage(
                model: model.name, inputTokens: response.inputTokens, outputTokens: response.outputTokens,
                costUSD: cost)
            try await budget?.settle(reserved: worstCase, actual: cost)
            return response.text
        }
        try await record(status: "failed", response: nil, error: lastError, cost: 0, attempts: attempts)
        await counters.add(failed: 1)
        SweepMetrics.call(model: model.name, status: "failed", seconds: (clock.now - started).inSeconds)
        try await budget?.settle(reserved: worstCase, actual: 0)
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
public actor BudgetTracker: BudgetGate {
    let limit: Double
    private var spent: Double
    private var reserved = 0.0

    /// `spent`: what the sweep's recorded calls cost before this run.
    public init(limit: Double, spent: Double) {
        self.limit = limit
        self.spent = spent
    }

    public func reserve(_ amount: Double) -> Bool {
        guard spent + reserved + amount <= limit else { return false }
        reserved += amount
        return true
    }

    public func settle(reserved amount: Double, actual: Double) {
        reserved -= amount
        spent += actual
    }
}

/// What this run did, for progress and the summary.
public actor CallCounters {
    public private(set) var made = 0
    public private(set) var cached = 0
    public private(set) var failed = 0
    public private(set) var budgetHit = false
    /// Answers that could not be used after their re-asks, by stage.
    public private(set) var invalidByStage: [Stage: Int] = [:]

    func add(made: Int = 0, cached: Int = 0, failed: Int = 0) {
        self.made += made
        self.cached += cached
        self.failed += failed
    }

    func add(invalid: Int, stage: Stage) { invalidByStage[stage, default: 0] += invalid }

    func budgetReached() { budgetHit = true }
}
