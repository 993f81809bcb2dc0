import ConflictScope

/// The sweep's spending limit shared by every worker, kept in Redis as integer micro-dollars:
/// `cs:{namespace}:budget:spent` (settled costs) and `cs:{namespace}:budget:reserved` (calls in flight).
public struct RedisBudget: SharedBudget {
    private let redis: RedisClient
    private let spentKey: String
    private let reservedKey: String
    private let limit: Int

    public init(redis: RedisClient, namespace: String, limitUSD: Double) {
        self.redis = redis
        self.spentKey = "cs:\(namespace):budget:spent"
        self.reservedKey = "cs:\(namespace):budget:reserved"
        self.limit = Self.micros(limitUSD)
    }

    /// Raises what the sweep has spent to at least the store's total; the coordinator calls this when a sweep
    /// starts or resumes, and after Redis lost the keys. It never lowers the spend (the store lags behind
    /// calls settled but not yet stored) and keeps every reservation: those of live calls are still needed,
    /// and those of killed workers count as spent, since their calls may have been paid for.
    public func start(spentUSD: Double) async throws {
        _ = try await redis.evaluate(
            Self.startScript, keys: [spentKey, reservedKey], arguments: [String(Self.micros(spentUSD))])
    }

    public func reserve(_ usd: Double) async throws -> Bool {
        let reply = try await redis.evaluate(
            Self.reserveScript, keys: [spentKey, reservedKey], arguments: [String(Self.micros(usd)), String(limit)]
        )
        guard let admitted = reply.integer else { throw RedisError.unexpectedReply("an integer from reserve") }
        if admitted == -1 { throw BudgetUnknown() }
        return admitted == 1
    }

    public func settle(reserved: Double, actual: Double) async throws {
        _ = try await redis.evaluate(
            Self.settleScript, keys: [spentKey, reservedKey],
            arguments: [String(Self.micros(reserved)), String(Self.micros(actual))]
        )
    }

    /// What the sweep has spent (settled calls only).
    public func spentUSD() async throws -> Double {
        let value = try await redis.get(spentKey).flatMap { Int($0) } ?? 0
        return Double(value) / 1_000_000
    }

    /// KEYS: spent, reserved. ARGV: the store's spend (µ$).
    static let startScript = RedisScript(
        """
        local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
        if current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
        if not redis.call('GET', KEYS[2]) then redis.call('SET', KEYS[2], '0') end
        return 1
        """
    )

    /// KEYS: spent, reserved. ARGV: amount, limit (µ$). Returns 1 and reserves when spent + reserved + amount
    /// fits under the limit, 0 when it does not, -1 when the spend is unknown (fails closed).
    static let reserveScript = RedisScript(
        """
        local known = redis.call('GET', KEYS[1])
        if not known then return -1 end
        local spent = tonumber(known)
        local reserved = tonumber(redis.call('GET', KEYS[2]) or '0')
        local amount = tonumber(ARGV[1])
        if spent + reserved + amount > tonumber(ARGV[2]) then return 0 end
        redis.call('INCRBY', KEYS[2], amount)
        return 1
        """
    )

    /// KEYS: spent, reserved. ARGV: reserved amount, actual cost (µ$). Reserved never drops below zero (a
    /// settle after Redis lost the keys). A lost spend is not recreated from this one call (that would read as
    /// almost nothing spent): `start` restores it from the store, which has this call's cost by then or soon.
    static let settleScript = RedisScript(
        """
        local reserved = tonumber(redis.call('GET', KEYS[2]) or '0')
        local release = math.min(tonumber(ARGV[1]), math.max(reserved, 0))
        redis.call('DECRBY', KEYS[2], release)
        if not redis.call('GET', KEYS[1]) then return -1 end
        return redis.call('INCRBY', KEYS[1], ARGV[2])
        """
    )
}
