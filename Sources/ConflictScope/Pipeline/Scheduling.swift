/// A unit of pipeline work. Tasks carry what they need, so a queue can hand them to any worker.
public enum PipelineTask: Sendable, Equatable, Codable {
    /// Stage 1 for one value pair and round: one call per template (outlines, or whole scenarios in the
    /// single-stage ablation; one call without templates in the direct one), then deduplication against
    /// `kept`, what the pair kept in earlier rounds (in id order).
    case generate(valueSet: String, value1: String, value2: String, round: Int, kept: [KeptCandidate])
    /// Stage 2: an outline becomes a detailed scenario.
    case detail(Outline)
    /// The six filter checks of a scenario (seven calls).
    case filter(Scenario)
    /// The simulated user's opening message (and any artifact it describes), shared by every target
    /// and condition.
    case userPrompt(Scenario)
    /// A target's multiple-choice answer and its two Likert ratings.
    case multipleChoice(Scenario, target: String, condition: String)
    /// A target's open-ended conversation with the simulated user, and the judge's reading of it.
    case openEnded(Scenario, userMessage: String, target: String, condition: String)

    /// The stage the task is.
    public var stage: Stage {
        switch self {
        case .generate: .generation
        case .detail: .scenarioDetails
        case .filter: .filter
        case .userPrompt: .userPrompts
        case .multipleChoice: .multipleChoice
        case .openEnded: .openEnded
        }
    }

    /// Deterministic id, led by the stage: the key of every random choice the task makes and of the
    /// rows it writes.
    public var id: String {
        let subject =
            switch self {
            case .generate(let set, let value1, let value2, let round, _): "\(set)/\(value1)|\(value2)/r\(round)"
            case .detail(let outline): outline.id
            case .filter(let scenario), .userPrompt(let scenario): scenario.id
            case .multipleChoice(let scenario, let target, let condition),
                .openEnded(let scenario, _, let target, let condition):
                "\(scenario.id)/\(target)/\(condition)"
            }
        return "\(stage.rawValue)/\(subject)"
    }

    /// The stage named by the first part of a task id, if it is one.
    public static func stage(ofID id: String) -> Stage? { Stage(rawValue: String(id.prefix { $0 != "/" })) }

    /// The model whose calls the task waits on first (its queue in the cluster is per stage and model).
    public func firstModel(_ config: SweepConfig) -> String {
        switch self {
        case .generate, .detail: config.roles.generator.model
        case .filter: config.roles.filterJudge.model
        case .userPrompt: config.roles.user.model
        case .multipleChoice(_, let target, _), .openEnded(_, _, let target, _): target
        }
    }
}

/// What deduplication compares later candidates of a pair with: a kept outline (or, without an outline
/// stage, a kept scenario), its template and the text that was embedded.
public struct KeptCandidate: Sendable, Equatable, Codable {
    public var id: String
    public var template: ScenarioTemplate?
    public var text: String

    public init(id: String, template: ScenarioTemplate?, text: String) {
        self.id = id
        self.template = template
        self.text = text
    }
}

/// Tokens of one call: the prompt and the completion.
public struct TokenUsage: Sendable, Equatable {
    public var input: Int
    public var output: Int
    public var total: Int { input + output }

    public init(input: Int, output: Int) {
        self.input = input
        self.output = output
    }
}

/// Admits calls to a model. The in-process limiter bounds concurrency per model; the cluster's
/// enforces requests and tokens per minute across workers.
public protocol RateLimiter: Sendable {
    /// Waits until `model` may be called, charging one request and `estimate` (prompt tokens plus
    /// max_tokens).
    func acquire(model: String, estimate: TokenUsage) async throws
    /// Corrects an admitted call's charge from `estimate` to what it `actual`ly used.
    func settle(model: String, estimate: TokenUsage, actual: TokenUsage) async throws
    /// The provider answered 429: no call to `model` starts for `seconds` (its Retry-After).
    func pause(model: String, seconds: Double) async throws
}

/// The embedded run's limiter: at most `limit(model)` calls in flight per model, first come first served;
/// each model's requests and tokens per minute under the project's one rule (`GCRA`, with the cluster's
/// half-second tolerance), counted per account; and no call to a paused account until its pause ends.
public actor InProcessRateLimiter: RateLimiter {
    private let limits: [String: Int]
    private let rates: [String: ModelRateLimit]
    private var inFlight: [String: Int] = [:]
    private var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]
    private var pausedUntil: [String: ContinuousClock.Instant] = [:]
    private var gcra = GCRA(toleranceMicroseconds: 500_000)
    private let origin = ContinuousClock.now
    /// Admitted requests and estimated tokens per account, with the minute each tally was last moved to.
    private var tallies: [String: (use: RateUse, minute: Int)] = [:]

    /// `limits`: concurrency per model name (models not listed get 8); `rates`: requests and tokens per
    /// minute per model name (`ModelRateLimit.limits(of:)`; models not listed are not rate limited).
    public init(limits: [String: Int], rates: [String: ModelRateLimit] = [:]) {
        self.limits = limits
        self.rates = rates
    }

    private func account(_ model: String) -> String { rates[model]?.account ?? model }

    private var now: Int { (ContinuousClock.now - origin).inMicroseconds }

    public func acquire(model: String, estimate: TokenUsage) async throws {
        if inFlight[model, default: 0] < limits[model, default: 8] {
            inFlight[model, default: 0] += 1
        } else {
            await withCheckedContinuation { waiting[model, default: []].append($0) }
        }
        do {
            let charges = rates[model]?.charges(estimate) ?? []
            while true {
                if let until = pausedUntil[account(model)], until > .now {
                    try await Task.sleep(until: until)
                    continue
                }
                let wait = gcra.admit(charges, account: account(model), now: now)
                if wait <= 0 {
                    var tally = tallies[account(model)] ?? (RateUse(), minute)
                    tally.use.admit(tokens: estimate.total, minute: minute, lastMinute: &tally.minute)
                    tallies[account(model)] = tally
                    return
                }
                try await Task.sleep(for: .microseconds(max(wait, 1000)))
            }
        } catch {
            // Cancelled while waiting: the slot goes to the next caller.
            release(model)
            throw error
        }
    }

    public func settle(model: String, estimate: TokenUsage, actual: TokenUsage) {
        if let rate = rates[model] {
            gcra.chargeOverUse(
                estimated: rate.charges(estimate), used: rate.charges(actual), account: rate.account, now: now)
        }
        release(model)
    }

    private func release(_ model: String) {
        if var queue = waiting[model], !queue.isEmpty {
            // Hand the slot straight to the next waiter.
            let next = queue.removeFirst()
            waiting[model] = queue
            next.resume()
        } else {
            inFlight[model, default: 0] -= 1
        }
    }

    /// The clock minute since this limiter started.
    private var minute: Int { now / 60_000_000 }

    /// What `model`'s account was admitted this minute and the last (every model, limited or not).
    public func usage(model: String) -> RateUse {
        guard let tally = tallies[account(model)] else { return RateUse() }
        return tally.use.seen(in: minute, lastMinute: tally.minute)
    }

    public func pause(model: String, seconds: Double) {
        guard seconds > 0, seconds.isFinite else { return }
        let until = ContinuousClock.now + .seconds(seconds)
        if until > pausedUntil[account(model)] ?? .now { pausedUntil[account(model)] = until }
    }
}

/// The sweep's spending limit (`max_cost_usd`), shared by every call of the sweep.
public protocol BudgetGate: Sendable {
    /// Reserves `usd` (a call's worst-case cost) if it fits under the limit with everything spent
    /// and reserved so far; false when it does not.
    func reserve(_ usd: Double) async throws -> Bool
    /// Replaces a reservation with the call's actual cost.
    func settle(reserved: Double, actual: Double) async throws
}
