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
    }

    private var models: [String: ModelStats] = [:]

    func received(model: String) { models[model, default: ModelStats()].requests += 1 }

    func rateLimited(model: String) { models[model, default: ModelStats()].rateLimited += 1 }

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

    /// The `/stats` body: per model, the counts, faults by kind, and successful responses per request hash.
    func json() -> Data {
        var object: [String: Any] = [:]
        for (model, stats) in models {
            object[model] = [
                "requests": stats.requests, "successes": stats.successes, "prompt_tokens": stats.promptTokens,
                "completion_tokens": stats.completionTokens, "rate_limited": stats.rateLimited,
                "faults": stats.faults,
                "successes_by_request": stats.successesByRequest,
                "duplicate_successes": stats.successesByRequest.values.reduce(0) { $0 + max(0, $1 - 1) },
            ]
        }
        let data = try? JSONSerialization.data(withJSONObject: ["models": object], options: [.sortedKeys])
        return data ?? Data("{}".utf8)
    }
}
