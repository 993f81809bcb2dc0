import ConflictScope
import Foundation

/// Enforces each model's requests and tokens per minute across every process that shares the Redis
/// namespace: the project's one rate-limit rule (`GCRA` in the core library), ported to one Lua script.
///
/// Each limit keeps a theoretical arrival time (TAT, integer microseconds of Redis' clock) at
/// `cs:{namespace}:rl:{account}:{rpm|tpm|itpm|otpm}`. A call costs 1 request, `estimate.total` tokens,
/// `estimate.input` input tokens and `estimate.output` output tokens; its increment on a limit of L per
/// minute is cost * 60e6 / L µs. With tolerance tau = 0.5 s it is admitted when
/// max(TAT, now) + increment - now <= tau on every limit — or, on a limit where the increment alone exceeds
/// tau, when TAT <= now — and then every TAT becomes max(TAT, now) + increment. Otherwise the script returns
/// how long to wait and the caller sleeps and tries again.
///
/// Fairness: a call that has waited a second or more, or that is bigger than the tolerance's worth, takes a
/// short hold (`...:hold`) when it is refused, so that smaller calls arriving meanwhile cannot keep it waiting
/// for ever; the hold lasts until its owner's retry (plus 100 ms) and is dropped when the owner is admitted.
///
/// A pause (`...:paused`, µs) blocks every call to the account until it ends, also for models without limits.
public struct RedisRateLimiter: SharedRateLimiter {
    private let redis: RedisClient
    private let namespace: String
    private let limits: [String: ModelRateLimit]

    /// Half a second's worth of any limit, in µs. Providers allow a burst of one second's worth; the other
    /// half absorbs the variation in how long admitted calls take to reach the provider (a call admitted on
    /// schedule but delivered faster than the one before it would otherwise exceed the provider's burst and
    /// draw a 429). The rate over time is the same; only the burst is smaller.
    static let tolerance = 500_000
    /// Keys outlive the moment their TAT passes by this many milliseconds.
    static let expirySlackMilliseconds = 180_000
    /// A call waiting at least this long takes the hold when refused.
    static let starvationThreshold = Duration.seconds(1)

    /// `limits` is keyed by the config's model name; models not listed are admitted at once unless paused.
    public init(redis: RedisClient, namespace: String, limits: [String: ModelRateLimit]) {
        self.redis = redis
        self.namespace = namespace
        self.limits = limits
    }

    public func acquire(model: String, estimate: TokenUsage) async throws {
        let account = limits[model]?.account ?? model
        let charges = charges(model: model, usage: estimate)
        let keys = [key(account, "paused"), key(account, "hold")] + charges.map { key(account, $0.kind) }
        let owner = UUID().uuidString
        let started = ContinuousClock.now
        while true {
            let starving = ContinuousClock.now - started >= Self.starvationThreshold
            let arguments =
                [String(Self.tolerance), String(Self.expirySlackMilliseconds), owner, starving ? "1" : "0"]
                + charges.map { String($0.increment) }
                + [String(estimate.total)]
            guard let wait = try await redis.evaluate(Self.acquireScript, keys: keys, arguments: arguments).integer
            else { throw RedisError.unexpectedReply("an integer wait from the rate-limit script") }
            if wait <= 0 { return }
            try await Task.sleep(for: .microseconds(wait))
        }
    }

    public func settle(model: String, estimate: TokenUsage, actual: TokenUsage) async throws {
        guard let account = limits[model]?.account else { return }
        let estimated = charges(model: model, usage: estimate).filter { $0.kind != "rpm" }
        let used = charges(model: model, usage: actual).filter { $0.kind != "rpm" }
        // As `GCRA.chargeOverUse`.
        var keys: [String] = []
        var deltas: [String] = []
        for (before, after) in zip(estimated, used) {
            // Providers charge a call prompt + max_tokens when they admit it and give back nothing unused
            // (OpenAI; the sim-server), so a refund here would let more through than they accept: only a call
            // that used more than estimated is charged the difference (rounded up).
            let difference = after.cost - before.cost
            guard difference > 0 else { continue }
            let delta = GCRA.increment(cost: difference, limit: before.perMinute)
            keys.append(key(account, before.kind))
            deltas.append(String(delta))
        }
        guard !keys.isEmpty else { return }
        _ = try await redis.evaluate(
            Self.settleScript, keys: keys, arguments: [String(Self.expirySlackMilliseconds)] + deltas
        )
    }

    public func pause(model: String, seconds: Double) async throws {
        guard seconds > 0, seconds.isFinite else { return }
        let account = limits[model]?.account ?? model
        let micros = Int((seconds * 1_000_000).rounded(.up))
        _ = try await redis.evaluate(Self.pauseScript, keys: [key(account, "paused")], arguments: [String(micros)])
    }

    private func key(_ account: String, _ suffix: String) -> String { "cs:\(namespace):rl:\(account):\(suffix)" }

    /// The enforced limits of `model` with what `usage` costs against each, in a fixed order.
    private func charges(model: String, usage: TokenUsage) -> [GCRA.Charge] {
        limits[model]?.charges(usage) ?? []
    }

    /// KEYS: paused, hold, then one TAT key per limit. ARGV: tau µs, expiry slack ms, owner, starving (1/0),
    /// one increment µs per limit, then the estimated tokens (for the usage counts). Returns 0 when
    /// admitted, else the wait in µs (at least 1 ms).
    static let acquireScript = RedisScript(
        """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
        if paused > now then return math.max(paused - now, 1000) end
        local tau = tonumber(ARGV[1])
        local slack = tonumber(ARGV[2])
        local owner = ARGV[3]
        local starving = ARGV[4] == '1'
        local holder = redis.call('GET', KEYS[2])
        if holder and holder ~= owner then
            return math.max(redis.call('PTTL', KEYS[2]), 1) * 1000
        end
        local wait = 0
        local bases = {}
        for i = 3, #KEYS do
            local inc = tonumber(ARGV[i + 2])
            local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
            local base = math.max(tat, now)
            bases[i] = base
            local need
            if inc > tau then
                need = base - now
                starving = true
            else
                need = base + inc - tau - now
            end
            if need > wait then wait = need end
        end
        if wait > 0 then
            wait = math.max(wait, 1000)
            if starving then
                redis.call('SET', KEYS[2], owner, 'PX', math.floor(wait / 1000) + 100)
            end
            return wait
        end
        for i = 3, #KEYS do
            local tat = bases[i] + tonumber(ARGV[i + 2])
            redis.call('SET', KEYS[i], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + slack)
        end
        if holder then redis.call('DEL', KEYS[2]) end
        -- Usage per minute of Redis time, for `status` (standalone Redis: the key is built here).
        local used = string.gsub(KEYS[1], ':paused$', ':used:') .. math.floor(now / 60000000)
        redis.call('HINCRBY', used, 'requests', 1)
        redis.call('HINCRBY', used, 'tokens', tonumber(ARGV[#KEYS + 3]))
        redis.call('PEXPIRE', used, 180000)
        return 0
        """
    )

    /// Requests and estimated tokens admitted for `model` in the current minute and the one before
    /// (of Redis' clock), as `status` shows them.
    public func usage(model: String) async throws -> RateUse {
        let account = limits[model]?.account ?? model
        guard case .array(let time) = try await redis.command(["TIME"]),
            let seconds = time.first?.string.flatMap(Int.init)
        else { throw RedisError.unexpectedReply("TIME") }
        let minute = seconds / 60
        let current = try await redis.hashGetAll(key(account, "used:\(minute)"))
        let previous = try await redis.hashGetAll(key(account, "used:\(minute - 1)"))
        return RateUse(
            requests: Int(current["requests"] ?? "") ?? 0, tokens: Int(current["tokens"] ?? "") ?? 0,
            previousRequests: Int(previous["requests"] ?? "") ?? 0, previousTokens: Int(previous["tokens"] ?? "") ?? 0)
    }

    /// KEYS: TAT keys. ARGV: expiry slack ms, then one signed delta µs per key.
    static let settleScript = RedisScript(
        """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local slack = tonumber(ARGV[1])
        for i = 1, #KEYS do
            local delta = tonumber(ARGV[i + 1])
            local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
            if delta > 0 and tat < now then tat = now end
            tat = tat + delta
            if tat > now then
                redis.call('SET', KEYS[i], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + slack)
            else
                redis.call('DEL', KEYS[i])
            end
        end
        return 0
        """
    )

    /// KEYS: paused. ARGV: pause µs. Extends the pause to now + ARGV[1] unless it already ends later.
    static let pauseScript = RedisScript(
        """
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local ends = now + tonumber(ARGV[1])
        local existing = tonumber(redis.call('GET', KEYS[1]) or '0')
        if existing > ends then ends = existing end
        redis.call('SET', KEYS[1], string.format('%d', ends), 'PX', math.floor((ends - now) / 1000) + 1000)
        return 0
        """
    )
}
