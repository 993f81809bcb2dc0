import ConflictScope
import Foundation

/// Each model's requests and tokens per minute, enforced in process by the project's one rule (`GCRA`)
/// with a tolerance of 1 s, as providers allow a burst of one second's worth: L per minute admits at most
/// L per 60 s on average, with a burst of L / 60. Tokens are charged at admission (prompt estimate +
/// `max_tokens`) and never settled against the real usage.
actor SimRateLimiter {
    /// One model's limits; nil means unlimited.
    struct Limits: Sendable, Equatable {
        var requests: Int?
        var tokens: Int?
        var inputTokens: Int?
        var outputTokens: Int?

        var isEmpty: Bool { requests == nil && tokens == nil && inputTokens == nil && outputTokens == nil }
    }

    /// What one limit says after a decision, for the `x-ratelimit-*` headers.
    struct LimitState: Sendable, Equatable {
        /// `requests`, `tokens`, `input-tokens` or `output-tokens` (the header suffix).
        var name: String
        var limit: Int
        /// What could be admitted at once now (the burst left).
        var remaining: Int
        /// Seconds until the limit is fully replenished.
        var resetSeconds: Double
    }

    struct Decision: Sendable {
        var admitted: Bool
        /// Seconds to wait before a retry can be admitted (0 when admitted).
        var retryAfter: Double
        var states: [LimitState]
    }

    /// One second's worth of any limit, in µs.
    static let tolerance = 1_000_000
    /// Header suffix of each of GCRA's limit kinds.
    static let headerNames = ["rpm": "requests", "tpm": "tokens", "itpm": "input-tokens", "otpm": "output-tokens"]

    private let origin = ContinuousClock.now
    private var gcra = GCRA(toleranceMicroseconds: SimRateLimiter.tolerance)

    /// Admits (and charges) one call of `model`, or says how long to wait.
    func admit(model: String, limits: Limits, inputTokens: Int, outputTokens: Int, now: ContinuousClock.Instant? = nil)
        -> Decision
    {
        let time = ((now ?? ContinuousClock.now) - origin).inMicroseconds
        let rate = ModelRateLimit(
            account: model, requestsPerMinute: limits.requests, tokensPerMinute: limits.tokens,
            inputTokensPerMinute: limits.inputTokens, outputTokensPerMinute: limits.outputTokens)
        let charges = rate.charges(TokenUsage(input: max(0, inputTokens), output: max(0, outputTokens)))
        let wait = gcra.admit(charges, account: model, now: time)
        let states = charges.map { charge -> LimitState in
            let backlog = max(0, (gcra.arrival(account: model, kind: charge.kind) ?? time) - time)
            let remaining = (Self.tolerance - backlog) * charge.perMinute / 60_000_000
            return LimitState(
                name: Self.headerNames[charge.kind]!, limit: charge.perMinute, remaining: max(0, remaining),
                resetSeconds: Double(backlog) / 1e6)
        }
        return Decision(admitted: wait <= 0, retryAfter: wait <= 0 ? 0 : Double(wait) / 1e6, states: states)
    }
}
