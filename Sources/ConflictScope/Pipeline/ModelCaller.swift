import Foundation
import Logging

/// The single path of every LLM call: the response cache (earlier call records), the sweep
/// budget, the rate limiter, retries with exponential backoff and jitter honouring Retry-After, the
/// circuit breaker, and the call record with tokens, latency and cost.
///
/// How a call ends is defined here once, for every stage:
/// - an answer (`ModelAnswer`), possibly unusable (cut off at the token limit, or empty): the caller
///   re-asks with a new sample index and in the end stores it as invalid with its raw text;
/// - `nil`, the call failed: no usable HTTP answer after its retries (transport errors, timeouts, 5xx,
///   429s past the retries, a prompt too long). Recorded as failed, never data; a rerun asks again;
/// - a thrown `SweepStopped`: an answer that every call to the model would get (401, 403, unknown model,
///   a refused parameter), or a model paused by its circuit breaker for longer than `breaker_minutes`.
///   Nothing is recorded for the call, no further call is made, and its task stays pending.
public final class ModelCaller: Sendable {
    let config: SweepConfig
    let providers: [String: any LLMProvider]
    let limiter: any RateLimiter
    public let counters = CallCounters()
    let budget: (any BudgetGate)?
    private let inFlight = SingleFlight()
    /// Set by the first fatal answer; every later call throws it at once.
    public let stop = StopSignal()
    let breaker: CircuitBreaker
    let logger: Logger

    /// Models paused by their circuit breaker (repeated transport failures), whose calls wait.
    public func pausedModels() async -> [String] { await breaker.openModels() }

    /// `budget`: the sweep's spending limit, when the config sets `max_cost_usd`.
    public init(
        config: SweepConfig, providers: [String: any LLMProvider], limiter: any RateLimiter,
        budget: (any BudgetGate)?, logger: Logger = ModelCaller.silentLogger
    ) {
        self.config = config
        self.providers = providers
        self.limiter = limiter
        self.budget = budget
        self.breaker = CircuitBreaker(limit: .seconds(config.breakerMinutes * 60))
        self.logger = logger
    }

    /// The default: a library logs only where its user asked it to (`run` passes one that writes to stderr).
    public static let silentLogger = Logger(label: "conflictscope.calls") { _ in SwiftLogNoOpLogHandler() }

    /// The budget was reached; no further calls are made in this run.
    public struct BudgetExhausted: Error {}

    /// Asks `modelName` for `stage`. `maxTokens` is raised to the model's floor for a reasoning model.
    public func chat(
        stage: Stage, modelName: String, prompt: PromptTemplate?, messages: [ChatMessage], temperature: Double,
        maxTokens: Int, sampleIndex: Int, taskID: String, records: any SweepRecords
    ) async throws -> ModelAnswer? {
        let (model, provider, settings) = resolve(modelName)
        let tokens = model.tokenBudget(maxTokens)
        let request = ChatRequest(
            model: model.modelID, messages: messages, temperature: temperature, maxTokens: tokens,
            sampleIndex: sampleIndex, contract: model.contract)
        let call = PendingCall(
            key: Self.cacheKey(request.cacheKey, settings), model: model, settings: settings, stage: stage,
            prompt: prompt?.id ?? "none", sampleIndex: sampleIndex, taskID: taskID,
            estimatedInputTokens: request.estimatedPromptTokens, maxOutputTokens: tokens)
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
            key: Self.cacheKey(Self.embeddingRequestKey(model: model, texts: texts), settings),
            model: model, settings: settings, stage: .generation, role: "embedder", prompt: "none", sampleIndex: 0,
            taskID: taskID, estimatedInputTokens: estimated, maxOutputTokens: 0)
        let answer = try await perform(call, records: records) { () async throws(ProviderError) -> ChatResponse in
            let vectors = try await provider.embed(texts, model: model.modelID)
            let data = (try? JSONSerialization.data(withJSONObject: vectors)) ?? Data("[]".utf8)
            return ChatResponse(text: String(decoding: data, as: UTF8.self), inputTokens: estimated, outputTokens: 0)
        }
        guard let answer, let vectors = Self.vectors(answer.text), vectors.count == texts.count else { return nil }
        return vectors
    }

    /// The store key of `embed`'s call for `texts` with config model `modelName`; nil for an unknown model.
    public static func embeddingKey(config: SweepConfig, modelName: String, texts: [String]) -> String? {
        guard let model = config.models[modelName], let settings = config.providers[model.provider] else { return nil }
        return cacheKey(embeddingRequestKey(model: model, texts: texts), settings)
    }

    private static func embeddingRequestKey(model: SweepConfig.Model, texts: [String]) -> String {
        StableHash.hex128("embed\u{1}\(model.modelID)\u{1}" + texts.joined(separator: "\u{1}"))
    }

    /// The vectors of a stored embedding answer.
    static func vectors(_ text: String) -> [[Double]]? {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[NSNumber]])?.map { $0.map(\.doubleValue) }
    }

    private func resolve(_ modelName: String) -> (SweepConfig.Model, any LLMProvider, SweepConfig.Provider) {
        guard let model = config.models[modelName], let provider = providers[model.provider],
            let settings = config.providers[model.provider]
        else { preconditionFailure("model \(modelName) was validated with the config") }
        return (model, provider, settings)
    }

    /// The response cache's key: the request's, plus the endpoint of a real provider, so the same model name
    /// pointed at another server is asked again. (Simulated answers depend on the request alone.)
    private static func cacheKey(_ requestKey: String, _ provider: SweepConfig.Provider) -> String {
        guard provider.kind != .simulated else { return requestKey }
        return StableHash.hex128("\(requestKey)\u{1}\(provider.kind.rawValue)\u{1}\(provider.baseURL ?? "")")
    }

    /// What is known about a call before it is made.
    private struct PendingCall: Sendable {
        var key: String
        var model: SweepConfig.Model
        var settings: SweepConfig.Provider
        var stage: Stage
        var role: String
        var prompt: String
        var sampleIndex: Int
        var taskID: String
        var estimatedInputTokens: Int
        var maxOutputTokens: Int

        init(
            key: String, model: SweepConfig.Model, settings: SweepConfig.Provider, stage: Stage, role: String? = nil,
            prompt: String, sampleIndex: Int, taskID: String, estimatedInputTokens: Int, maxOutputTokens: Int
        ) {
            self.key = key
            self.model = model
            self.settings = settings
            self.stage = stage
            self.role = role ?? stage.role.rawValue
            self.prompt = prompt
            self.sampleIndex = sampleIndex
            self.taskID = taskID
            self.estimatedInputTokens = estimatedInputTokens
            self.maxOutputTokens = maxOutputTokens
        }
    }

    /// Identical calls in flight together are made once; the others share the answer.
    private func perform(
        _ call: PendingCall, records: any SweepRecords,
        attempt: @escaping @Sendable () async throws(ProviderError) -> ChatResponse
    ) async throws -> ModelAnswer? {
        try await stop.check()
        let (answer, shared) = try await inFlight.result(for: call.key) {
            try await self.performOnce(call, records: records, attempt: attempt)
        }
        if shared {
            await counters.add(cached: 1, stage: call.stage)
            SweepMetrics.cachedCall(model: call.model.name)
        }
        return answer
    }

    private func performOnce(
        _ call: PendingCall, records: any SweepRecords,
        attempt: @Sendable () async throws(ProviderError) -> ChatResponse
    ) async throws -> ModelAnswer? {
        let model = call.model
        if let cached = try await records.successfulResponse(key: call.key) {
            await counters.add(cached: 1, stage: call.stage)
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
        var settled = false
        // What the provider charged once it answered: settled even if recording the answer then fails.
        var paid = 0.0
        do {
            return try await callAndRecord()
        } catch {
            // Thrown out of (a stop, a cancellation, a store or Redis error): the reservation goes back, less
            // what an answered call cost, before this call returns. In a task of its own, because this one
            // may be cancelled.
            if !settled, let budget {
                await Task { [paid] in try? await budget.settle(reserved: worstCase, actual: paid) }.value
            }
            throw error
        }

        func callAndRecord() async throws -> ModelAnswer? {
            let clock = ContinuousClock()
            var attemptStarted = clock.now
            func record(status: String, response: ChatResponse?, error: ProviderError?, cost: Double, attempts: Int)
                async throws -> ModelAnswer?
            {
                try await records.record(
                    .init(
                        key: call.key, taskID: call.taskID, role: call.role, model: model.name, prompt: call.prompt,
                        sampleIndex: call.sampleIndex, status: status, response: response?.text,
                        error: error?.description, inputTokens: response?.inputTokens ?? 0,
                        outputTokens: response?.outputTokens ?? 0,
                        latencyMilliseconds: milliseconds(clock.now - attemptStarted), costUSD: cost,
                        attempts: attempts,
                        truncated: response?.truncated ?? false))
            }
            var attempts = 0
            var lastError: ProviderError? = nil
            var retriesLeft = call.settings.maxRetries
            // A 429 says "not now", not "this request fails": it draws on a budget of its own, four times
            // max_retries, so a provider throttling in bursts does not turn calls into missing data.
            var rateLimitedRetriesLeft = call.settings.maxRetries * 4
            while true {
                try await breaker.admit(model: model.name, stop: stop)
                attempts += 1
                let estimate = TokenUsage(input: call.estimatedInputTokens, output: call.maxOutputTokens)
                let waitStarted = clock.now
                try await limiter.acquire(model: model.name, estimate: estimate)
                SweepMetrics.rateLimitWait(model: model.name, seconds: (clock.now - waitStarted).inSeconds)
                // Latency is the provider's: from the admitted attempt, not from waiting for a slot or a limit.
                attemptStarted = clock.now
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
                    if error.isFatal {
                        throw await stop.raise(
                            "provider \(call.settings.name), model \(model.name) (\(model.modelID)): \(error.description)"
                        )
                    }
                    if error.isTransport, await breaker.failed(model: model.name) {
                        // The model is paused: this call waits for it instead of failing, its task stays pending.
                        logger.warning(
                            "model paused after repeated transport failures",
                            metadata: ["model": "\(model.name)", "error": "\(error.description)"])
                        retriesLeft = call.settings.maxRetries
                        continue
                    }
                    if error.kind == .rateLimited {
                        SweepMetrics.rateLimited(model: model.name)
                        if let seconds = error.retryAfter {
                            try await limiter.pause(model: model.name, seconds: seconds)
                        }
                    }
                    if error.kind == .rateLimited {
                        guard rateLimitedRetriesLeft > 0 else { break }
                        rateLimitedRetriesLeft -= 1
                    } else {
                        guard error.isRetryable, retriesLeft > 0 else { break }
                        retriesLeft -= 1
                    }
                    let delay = backoff(attempt: attempts, retryAfter: error.retryAfter, key: call.key)
                    logger.debug(
                        "retrying a call",
                        metadata: [
                            "model": "\(model.name)", "task": "\(call.taskID)", "attempt": "\(attempts)",
                            "error": "\(error.description)", "delay_s": "\(delay)",
                        ])
                    try await Task.sleep(for: .seconds(delay))
                    continue
                }
                await breaker.succeeded(model: model.name)
                let cost =
                    (Double(response.inputTokens) * model.inputUSDPerMillionTokens
                        + Double(response.outputTokens) * model.outputUSDPerMillionTokens) / 1e6
                paid = cost
                // Best effort, and after the answer is recorded: an error of the shared state here must not lose a
                // paid answer, and a settle lost leaves the call charged at its estimate, the cautious side.
                let settleLimiter = {
                    try? await self.limiter.settle(
                        model: model.name, estimate: estimate,
                        actual: TokenUsage(input: response.inputTokens, output: response.outputTokens))
                }
                // Cached before the limiter and the budget are settled; an identical call recorded first is the
                // answer that stands.
                let standing: ModelAnswer?
                do {
                    standing = try await record(
                        status: "ok", response: response, error: nil, cost: cost, attempts: attempts)
                } catch {
                    await settleLimiter()
                    throw error
                }
                await settleLimiter()
                await counters.add(made: 1, stage: call.stage)
                SweepMetrics.call(model: model.name, status: "ok", seconds: (clock.now - attemptStarted).inSeconds)
                SweepMetrics.usage(
                    model: model.name, inputTokens: response.inputTokens, outputTokens: response.outputTokens,
                    costUSD: cost)
                settled = true
                try await budget?.settle(reserved: worstCase, actual: cost)
                return standing ?? ModelAnswer(text: response.text, truncated: response.truncated)
            }
            logger.warning(
                "call failed",
                metadata: [
                    "model": "\(model.name)", "task": "\(call.taskID)", "attempts": "\(attempts)",
                    "error": "\(lastError?.description ?? "unknown")",
                ])
            _ = try await record(status: "failed", response: nil, error: lastError, cost: 0, attempts: attempts)
            await counters.add(failed: 1, stage: call.stage)
            SweepMetrics.call(model: model.name, status: "failed", seconds: (clock.now - attemptStarted).inSeconds)
            settled = true
            try await budget?.settle(reserved: worstCase, actual: 0)
            return nil
        }
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

/// Runs one piece of work per key at a time; callers arriving while it runs share its result. The work is
/// cancelled once every caller waiting for it is (a worker's drain or a task held too long), and not before:
/// one caller giving up does not take the answer from the others.
actor SingleFlight {
    private struct Flight {
        let task: Task<ModelAnswer?, any Error>
        var waiting: Int
    }

    private var running: [String: Flight] = [:]

    func result(for key: String, _ work: @escaping @Sendable () async throws -> ModelAnswer?) async throws -> (
        ModelAnswer?, shared: Bool
    ) {
        if var flight = running[key] {
            flight.waiting += 1
            running[key] = flight
            return (try await wait(for: flight.task, key: key), true)
        }
        let task = Task { try await work() }
        running[key] = Flight(task: task, waiting: 1)
        defer { running[key] = nil }
        return (try await wait(for: task, key: key), false)
    }

    private func wait(for task: Task<ModelAnswer?, any Error>, key: String) async throws -> ModelAnswer? {
        try await withTaskCancellationHandler {
            try await task.value
        } onCancel: {
            Task { await self.gaveUp(key, task) }
        }
    }

    private func gaveUp(_ key: String, _ task: Task<ModelAnswer?, any Error>) {
        guard var flight = running[key], flight.task == task else { return }
        flight.waiting -= 1
        running[key] = flight
        if flight.waiting == 0 { task.cancel() }
    }
}

/// What this run did, for progress and the summary, in total and by stage.
public actor CallCounters {
    /// Calls of one stage: made (answered), cached (reused), failed, and asks whose answers stayed
    /// unusable after their re-asks (invalid).
    public struct Counts: Sendable, Equatable {
        public var made = 0
        public var cached = 0
        public var failed = 0
        public var invalid = 0

        public init() {}
    }

    public private(set) var byStage: [Stage: Counts] = [:]
    public private(set) var budgetHit = false

    public var made: Int { byStage.values.reduce(0) { $0 + $1.made } }
    public var cached: Int { byStage.values.reduce(0) { $0 + $1.cached } }
    public var failed: Int { byStage.values.reduce(0) { $0 + $1.failed } }
    /// Answers that could not be used after their re-asks, by stage.
    public var invalidByStage: [Stage: Int] { byStage.compactMapValues { $0.invalid > 0 ? $0.invalid : nil } }

    func add(made: Int = 0, cached: Int = 0, failed: Int = 0, invalid: Int = 0, stage: Stage) {
        byStage[stage, default: Counts()].made += made
        byStage[stage, default: Counts()].cached += cached
        byStage[stage, default: Counts()].failed += failed
        byStage[stage, default: Counts()].invalid += invalid
    }

    func budgetReached() { budgetHit = true }
}

/// Why a sweep stopped before its end: one line naming the provider, model, status and the provider's
/// (redacted) message, or the model its circuit breaker paused for too long.
public struct SweepStopped: Error, CustomStringConvertible, Equatable {
    public var line: String
    public var description: String { line }

    public init(line: String) { self.line = line }
}

/// The first fatal answer of a run. Once raised, every call throws it without being made.
public actor StopSignal {
    public private(set) var reason: SweepStopped?

    /// Records `line` unless a reason is already set; returns the reason in force.
    func raise(_ line: String) -> SweepStopped {
        if reason == nil { reason = SweepStopped(line: line) }
        return reason!
    }

    func check() throws {
        if let reason { throw reason }
    }
}

/// Pauses a model whose calls keep failing in the network (connection refused, DNS, timeouts): after
/// `threshold` transport failures in a row with no answer between them, no call to it starts for a probe
/// interval (15 s, doubling to 2 min); then calls try again, and the first answer closes the breaker.
/// A model paused for longer than `limit` in total stops the sweep.
actor CircuitBreaker {
    static let threshold = 6
    static let firstInterval = Duration.seconds(15)
    static let longestInterval = Duration.seconds(120)

    private struct State {
        var failures = 0
        var interval = CircuitBreaker.firstInterval
        var openedAt: ContinuousClock.Instant?
        var pausedUntil: ContinuousClock.Instant?
    }

    let limit: Duration
    private var states: [String: State] = [:]

    init(limit: Duration) { self.limit = limit }

    /// Waits while `model` is paused; throws a stop once it has been paused for longer than `limit`.
    func admit(model: String, stop: StopSignal) async throws {
        while true {
            try await stop.check()
            guard let state = states[model], let until = state.pausedUntil, until > .now else { return }
            if let openedAt = state.openedAt, ContinuousClock.now - openedAt > limit {
                throw await stop.raise(
                    "model \(model) paused by its circuit breaker for more than \(limit.inSeconds / 60) minutes "
                        + "after repeated transport failures; its tasks stay pending")
            }
            try await Task.sleep(until: min(until, (state.openedAt ?? .now) + limit + .milliseconds(10)))
        }
    }

    /// Counts a transport failure; true when the model is (now) paused.
    func failed(model: String) -> Bool {
        var state = states[model] ?? State()
        state.failures += 1
        guard state.failures >= Self.threshold else {
            states[model] = state
            return false
        }
        if state.pausedUntil.map({ $0 <= .now }) ?? true {
            state.openedAt = state.openedAt ?? .now
            state.pausedUntil = .now + state.interval
            state.interval = min(state.interval * 2, Self.longestInterval)
        }
        states[model] = state
        return true
    }

    func succeeded(model: String) { states[model] = nil }

    /// Models whose breaker is open: paused, or probing after a pause, with no answer since.
    func openModels() -> [String] { states.filter { $0.value.openedAt != nil }.keys.sorted() }
}
