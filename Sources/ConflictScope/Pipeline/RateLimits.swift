/// A model's requests and tokens per minute, and the account they are counted against.
public struct ModelRateLimit: Sendable, Equatable {
    /// The provider's `account` and the model id: every config model name (and every sweep, in the cluster)
    /// that calls the same model on the same account shares one set of limits.
    public var account: String
    /// Requests per minute.
    public var requestsPerMinute: Int?
    /// Input plus output tokens per minute.
    public var tokensPerMinute: Int?
    /// Input (prompt) tokens per minute.
    public var inputTokensPerMinute: Int?
    /// Output (completion) tokens per minute.
    public var outputTokensPerMinute: Int?

    public init(
        account: String, requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil,
        inputTokensPerMinute: Int? = nil, outputTokensPerMinute: Int? = nil
    ) {
        self.account = account
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.inputTokensPerMinute = inputTokensPerMinute
        self.outputTokensPerMinute = outputTokensPerMinute
    }

    public var isLimited: Bool {
        [requestsPerMinute, tokensPerMinute, inputTokensPerMinute, outputTokensPerMinute].contains { $0 != nil }
    }

    /// Each configured model's limits, from its provider's `rpm`, `tpm`, `input_tpm` and `output_tpm`.
    public static func limits(of config: SweepConfig) -> [String: ModelRateLimit] {
        var limits: [String: ModelRateLimit] = [:]
        for model in config.models.values {
            guard let provider = config.providers[model.provider] else { continue }
            limits[model.name] = ModelRateLimit(
                account: "\(provider.account)/\(model.modelID)", requestsPerMinute: provider.requestsPerMinute,
                tokensPerMinute: provider.tokensPerMinute, inputTokensPerMinute: provider.inputTokensPerMinute,
                outputTokensPerMinute: provider.outputTokensPerMinute)
        }
        return limits
    }

    /// What `usage` costs against each enforced limit, in a fixed order: `rpm`, `tpm`, `itpm`, `otpm`.
    public func charges(_ usage: TokenUsage) -> [GCRA.Charge] {
        let candidates: [(String, Int, Int?)] = [
            ("rpm", 1, requestsPerMinute), ("tpm", usage.total, tokensPerMinute),
            ("itpm", usage.input, inputTokensPerMinute), ("otpm", usage.output, outputTokensPerMinute),
        ]
        return candidates.compactMap { kind, cost, perMinute in
            guard let perMinute, perMinute > 0 else { return nil }
            return GCRA.Charge(kind: kind, cost: max(0, cost), perMinute: perMinute)
        }
    }
}

/// The rate-limit rule every limiter of the project applies, in integer microseconds: the embedded run's
/// `InProcessRateLimiter`, the simulator server's limits, and (as its Lua port) `RedisRateLimiter`.
///
/// GCRA (virtual scheduling): each limit keeps a theoretical arrival time (TAT). A charge of `cost` against
/// L per minute moves it on by `cost * 60e6 / L` µs (rounded up). A call is admitted when, on every limit,
/// `max(TAT, now) + increment - now <= tolerance`, or, where the increment alone exceeds the tolerance,
/// when `TAT <= now`; then every TAT becomes `max(TAT, now) + increment`. So L per minute admits at most L
/// per minute on average, with a burst of `tolerance` worth.
public struct GCRA: Sendable {
    public struct Charge: Sendable, Equatable {
        /// `rpm`, `tpm`, `itpm` or `otpm`.
        public var kind: String
        public var cost: Int
        public var perMinute: Int

        public init(kind: String, cost: Int, perMinute: Int) {
            self.kind = kind
            self.cost = cost
            self.perMinute = perMinute
        }

        public var increment: Int { GCRA.increment(cost: cost, limit: perMinute) }
    }

    public let toleranceMicroseconds: Int
    /// TATs in µs of the caller's clock, by "account kind".
    private var arrivals: [String: Int] = [:]

    public init(toleranceMicroseconds: Int) { self.toleranceMicroseconds = toleranceMicroseconds }

    /// Admits (and charges) `charges` for `account` at `now` (µs), or returns how long to wait (µs, > 0).
    public mutating func admit(_ charges: [Charge], account: String, now: Int) -> Int {
        var wait = 0
        for charge in charges {
            let base = max(arrivals["\(account) \(charge.kind)"] ?? 0, now)
            let increment = charge.increment
            let need = increment > toleranceMicroseconds ? base - now : base + increment - toleranceMicroseconds - now
            wait = max(wait, need)
        }
        guard wait <= 0 else { return wait }
        for charge in charges {
            let key = "\(account) \(charge.kind)"
            arrivals[key] = max(arrivals[key] ?? 0, now) + charge.increment
        }
        return 0
    }

    /// Charges what a call used beyond its admitted estimate. Nothing is refunded: providers charge a call
    /// its prompt and max_tokens at admission and give back nothing unused.
    public mutating func chargeOverUse(estimated: [Charge], used: [Charge], account: String, now: Int) {
        for (before, after) in zip(estimated, used) where before.kind != "rpm" && after.cost > before.cost {
            let key = "\(account) \(before.kind)"
            arrivals[key] =
                max(arrivals[key] ?? 0, now) + GCRA.increment(cost: after.cost - before.cost, limit: before.perMinute)
        }
    }

    /// The TAT of one limit (µs), if it has one.
    public func arrival(account: String, kind: String) -> Int? { arrivals["\(account) \(kind)"] }

    /// cost * 60e6 / limit µs, rounded up (and bounded, so no arithmetic downstream overflows).
    public static func increment(cost: Int, limit: Int) -> Int {
        let scaled = cost.multipliedReportingOverflow(by: 60_000_000)
        if scaled.overflow { return Int.max / 4 }
        return (scaled.partialValue + limit - 1) / limit
    }
}

/// Requests and estimated tokens admitted against one account, in this clock minute and the one before, for
/// the live view and `status`.
public struct RateUse: Sendable, Equatable {
    public var requests = 0
    public var tokens = 0
    public var previousRequests = 0
    public var previousTokens = 0

    public init(requests: Int = 0, tokens: Int = 0, previousRequests: Int = 0, previousTokens: Int = 0) {
        self.requests = requests
        self.tokens = tokens
        self.previousRequests = previousRequests
        self.previousTokens = previousTokens
    }

    /// Adds one admitted request in `minute`, first moving the tally on if a new minute began.
    mutating func admit(tokens: Int, minute: Int, lastMinute: inout Int) {
        roll(to: minute, lastMinute: &lastMinute)
        requests += 1
        self.tokens += tokens
    }

    /// This tally as seen in `minute`: counts of older minutes move to `previous` or drop out.
    func seen(in minute: Int, lastMinute: Int) -> RateUse {
        var copy = self
        var last = lastMinute
        copy.roll(to: minute, lastMinute: &last)
        return copy
    }

    private mutating func roll(to minute: Int, lastMinute: inout Int) {
        guard minute != lastMinute else { return }
        if minute == lastMinute + 1 {
            (previousRequests, previousTokens) = (requests, tokens)
        } else {
            (previousRequests, previousTokens) = (0, 0)
        }
        (requests, tokens) = (0, 0)
        lastMinute = minute
    }
}
