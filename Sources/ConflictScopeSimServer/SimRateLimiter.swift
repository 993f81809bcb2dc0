import ConflictScope
import Foundation

/// Each model's requests and tokens per minute, enforced in process with the same GCRA semantics as
/// `RedisRateLimiter`: a limit of L per minute adds `cost * 60 / L` seconds to its theoretical arrival time
/// (TAT); with tolerance tau = 1 s a call is admitted when `max(TAT, now) + increment - now <= tau` on every
/// limit (or, where the increment alone exceeds tau, when `TAT <= now`), and then every TAT moves on by its
/// increment. So L per minute admits at most L per 60 s on average, with a burst of L / 60. Tokens are charged
/// at admission (prompt estimate + `max_tokens`) and never settled against the real usage.
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

    /// One second's worth of any limit.
    static let tolerance = 1.0

    private let origin = ContinuousClock.now
    /// Theoretical arrival times in seconds since `origin`, by model and limit name.
    private var arrivals: [String: [String: Double]] = [:]

    /// Admits (and charges) one call of `model`, or says how long to wait.
    func admit(model: String, limits: Limits, inputTokens: Int, outputTokens: Int, now: ContinuousClock.Instant? = nil)
        -> Decision
    {
        let elapsed = (now ?? ContinuousClock.now) - origin
        let time = elapsed.inSeconds
        let charges: [(String, Int, Int?)] = [
            ("requests", 1, limits.requests), ("tokens", inputTokens + outputTokens, limits.tokens),
            ("input-tokens", inputTokens, limits.inputTokens), ("output-tokens", outputTokens, limits.outputTokens),
        ]
        let active = charges.compactMap { name, cost, limit -> (name: String, cost: Int, limit: Int)? in
            guard let limit, limit > 0 else { return nil }
            return (name, max(0, cost), limit)
        }
        var tats = arrivals[model] ?? [:]
        var wait = 0.0
        for charge in active {
            let tat = tats[charge.name] ?? time
            let increment = Double(charge.cost) * 60 / Double(charge.limit)
            if increment > Self.tolerance {
                wait = max(wait, tat - time)
            } else {
                wait = max(wait, max(tat, time) + increment - Self.tolerance - time)
            }
        }
        // A float's last bit never refuses a call the integer arithmetic of the Redis script would admit.
        let admitted = wait <= 1e-9
        if admitted {
            for charge in active {
                let tat = tats[charge.name] ?? time
                tats[charge.name] = max(tat, time) + Double(charge.cost) * 60 / Double(charge.limit)
            }
            arrivals[model] = tats
        }
        let states = active.map { charge -> LimitState in
            let backlog = max(0, (tats[charge.name] ?? time) - time)
            let remaining = Int(((Self.tolerance - backlog) * Double(charge.limit) / 60).rounded(.down))
            return LimitState(
                name: charge.name, limit: charge.limit, remaining: max(0, remaining), resetSeconds: backlog)
        }
        return Decision(admitted: admitted, retryAfter: admitted ? 0 : wait, states: states)
    }
}
