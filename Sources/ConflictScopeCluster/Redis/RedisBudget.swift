import ConflictScope

/// The sweep's spending limit shared by every worker, kept in Redis as integer micro-dollars:
/// `cs:{namespace}:budget:spent` (settled costs) and `cs:{namespace}:budget:reserved` (calls in flight).
public struct RedisBudget: BudgetGate {
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

    /// Sets what the sweep has spent so far and drops every reservation; the coordinator calls this when a
    /// sweep starts or resumes (reservations of calls from before a restart are void).
    public func start(spentUSD: Double) async throws {
        _ = try await redis.command(["MSET", spentKey, String(Self.micros(spentUSD)), reservedKey, "0"])
    }

    public func reserve(_ usd: Double) async throws -> Bool {
        let reply = try await redis.evaluate(
            Self.reserveScript, keys: [spentKey, reservedKey], arguments: [String(Self.micros(usd)), String(limit)]
        )
        guard let admitted = reply.integer else { throw RedisError.unexpectedReply("an integer from reserve") }
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

    /// Rounds to the nearest micro-dollar; reserve and settle round the same amount identically.
    static func micros(_ usd: Double) -> Int {
        guard usd.isFinite else { return usd > 0 ? Int.max / 4 : 0 }
        return Int((max(0, usd) * 1_000_000).rounded())
    }

    /// KEYS: spent, reserved. ARGV: amount, limit (µ$). Returns 1 and reserves when spent + reserved + amount
    /// fits under the limit, else 0.
    static let reserveScript = RedisScript(
        """
        local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
        local reserved = tonumber(redis.call('GET', KEYS[2]) or '0')
        local amount = tonumber(ARGV[1])
        if spent + reserved + amount > tonumber(ARGV[2]) then return 0 end
        redis.call('INCRBY', KEYS[2], amount)
        return 1
        """
    )

    /// KEYS: spent, reserved. ARGV: reserved amount, actual cost (µ$). Reserved never drops below zero (a
    /// settle after `start` cleared the reservations).
    static let settleScript = RedisScript(
        """
        local reserved = tonumber(redis.call('GET', KEYS[2]) or '0')
        local release = math.min(tonumber(ARGV[1]), math.max(reserved, 0))
        redis.call('DECRBY', KEYS[2], release)
        return redis.call('INCRBY', KEYS[1], ARGV[2])
        """
    )
}
