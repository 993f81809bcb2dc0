import ConflictScope
import Foundation

/// What the server has served, per model, and the attempt counts that fault decisions depend on.
actor SimStats {
    struct ModelStats: Sendable {
        var requests = 0
        var successes = 0
        var promptTokens = 0
        var completionTokens = 0
        var rateLimited = 0
        var faults: [String: Int] = [:]
        /// Successful responses per request hash: more than one means a client paid twice.
        var successesByRequest: [String: Int] = [:]
        /// Admitted attempts and faults served per request hash.
        var attempts: [String: Int] = [:]
        var faultsByRequest: [String: Int] = [:]
        /// Each admitted request: seconds since the server started, and the tokens the limiter charged
        /// (prompt estimate + max_tokens), in admission order.
        var admittedAt: [Double] = []
        var admittedTokens: [Int] = []
    }

    private var models: [String: ModelStats] = [:]
    private let origin = ContinuousClock.now
    /// Wall-clock time of `origin`, so a benchmark can place admissions on its own timeline.
    private let originUnix = Date().timeIntervalSince1970

    func received(model: String) { models[model, default: ModelStats()].requests += 1 }

    func rateLimited(model: String) { models[model, default: ModelStats()].rateLimited += 1 }

    /// Records a request the rate limiter admitted, with the tokens it charged.
    func admitted(model: String, chargedTokens: Int) {
        let elapsed = ContinuousClock.now - origin
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        var stats = models[model] ?? ModelStats()
        stats.admittedAt.append(seconds)
        stats.admittedTokens.append(chargedTokens)
        models[model] = stats
    }

    /// Counts an admitted attempt at `key` and decides, from the key and the attempt number alone, whether it
    /// gets a fault (and which): at most `faults.maxPerRequest` per key. The fault, if any, is counted.
    func beginAttempt(model: String, key: String, faults: SweepConfig.SimulatedFaults) -> (attempt: Int, fault: String?)
    {
        var stats = models[model] ?? ModelStats()
        defer { models[model] = stats }
        let attempt = stats.attempts[key, default: 0]
        stats.attempts[key] = attempt + 1
        guard faults.isEnabled, stats.faultsByRequest[key, default: 0] < faults.maxPerRequest else {
            return (attempt, nil)
        }
        var random = StableRandom(seed: UInt64(attempt), key: "fault/\(key)")
        let draw = random.uniform()
        var cumulative = 0.0
        for (name, rate) in faults.rates where rate > 0 {
            cumulative += rate
            if draw < cumulative {
                stats.faultsByRequest[key, default: 0] += 1
                stats.faults[name, default: 0] += 1
                return (attempt, name)
            }
        }
        return (attempt, nil)
    }

    func succeeded(model: String, key: String, promptTokens: Int, completionTokens: Int) {
        var stats = models[model] ?? ModelStats()
        stats.successes += 1
        stats.promptTokens += promptTokens
        stats.completionTokens += completionTokens
        stats.successesByRequest[key, default: 0] += 1
        models[model] = stats
    }

    /// The `/stats` body: per model, the counts, faults by kind, and successful responses per request hash;
    /// with `admissions`, also every admitted request's time (seconds after `started_at_unix`) and charged tokens.
    func json(admissions: Bool = false) -> Data {
        var object: [String: Any] = [:]
        for (model, stats) in models {
            var entry: [String: Any] = [
                "requests": stats.requests, "successes": stats.successes, "prompt_tokens": stats.promptTokens,
                "completion_tokens": stats.completionTokens, "rate_limited": stats.rateLimited,
                "faults": stats.faults,
                "successes_by_request": stats.successesByRequest,
                "duplicate_successes": stats.successesByRequest.values.reduce(0) { $0 + max(0, $1 - 1) },
                "admitted": stats.admittedAt.count, "admitted_tokens": stats.admittedTokens.reduce(0, +),
            ]
            if admissions {
                entry["admissions"] = ["at": stats.admittedAt, "tokens": stats.admittedTokens]
            }
            object[model] = entry
        }
        let body: [String: Any] = ["models": object, "started_at_unix": originUnix]
        let data = try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        return data ?? Data("{}".utf8)
    }
}
