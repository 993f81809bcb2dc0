import ConflictScope

/// The roles' `SharedState` in Redis: plain keys with PX expiries, `RedisLease`, the Lua rate limiter
/// (`RedisRateLimiter`) and budget (`RedisBudget`).
public struct RedisSharedState: SharedState {
    public let redis: RedisClient

    public init(redis: RedisClient) { self.redis = redis }

    public func get(_ key: String) async throws -> String? { try await redis.get(key) }

    public func set(_ key: String, _ value: String, ttlSeconds: Double?) async throws {
        var arguments = ["SET", key, value]
        if let ttlSeconds { arguments += ["PX", String(Self.milliseconds(ttlSeconds))] }
        _ = try await redis.command(arguments)
    }

    public func setIfAbsent(_ key: String, _ value: String, ttlSeconds: Double?) async throws -> String {
        let ttl = ttlSeconds.map { String(Self.milliseconds($0)) } ?? "0"
        let reply = try await redis.evaluate(Self.setIfAbsentScript, keys: [key], arguments: [value, ttl])
        guard let standing = reply.string else { throw RedisError.unexpectedReply("a string from set-if-absent") }
        return standing
    }

    public func increment(_ key: String, by delta: Int, ttlSeconds: Double) async throws -> Int {
        let reply = try await redis.evaluate(
            Self.incrementScript, keys: [key], arguments: [String(delta), String(Self.milliseconds(ttlSeconds))])
        guard let value = reply.integer else { throw RedisError.unexpectedReply("an integer from increment") }
        return value
    }

    public func delete(_ keys: [String]) async throws { try await redis.delete(keys) }

    /// SCAN, not KEYS: a cluster's Redis holds every cached answer, and KEYS would block it.
    public func keys(prefix: String) async throws -> [String] {
        let pattern = prefix.map { "*?[]\\".contains($0) ? "\\\($0)" : String($0) }.joined() + "*"
        var cursor = "0"
        var found: [String] = []
        repeat {
            guard
                case .array(let reply) = try await redis.command(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"]),
                reply.count == 2, let next = reply[0].string, case .array(let page) = reply[1]
            else { throw RedisError.unexpectedReply("a cursor and a page from SCAN") }
            found += page.compactMap(\.string)
            cursor = next
        } while cursor != "0"
        return found
    }

    public func lease(_ key: String, owner: String, ttlMilliseconds: Int) -> any Lease {
        RedisLease(redis: redis, key: key, owner: owner, ttlMilliseconds: ttlMilliseconds)
    }

    public func rateLimiter(namespace: String, limits: [String: ModelRateLimit]) -> any SharedRateLimiter {
        RedisRateLimiter(redis: redis, namespace: namespace, limits: limits)
    }

    public func budget(namespace: String, limitUSD: Double) -> any SharedBudget {
        RedisBudget(redis: redis, namespace: namespace, limitUSD: limitUSD)
    }

    static func milliseconds(_ seconds: Double) -> Int { max(1, Int((seconds * 1000).rounded())) }

    /// KEYS: the key. ARGV: value, TTL in ms (0: none).
    static let setIfAbsentScript = RedisScript(
        """
        local standing = redis.call('GET', KEYS[1])
        if standing then return standing end
        if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
        else redis.call('SET', KEYS[1], ARGV[1]) end
        return ARGV[1]
        """
    )

    /// KEYS: the key. ARGV: TTL in ms.
    static let incrementScript = RedisScript(
        """
        local value = redis.call('INCRBY', KEYS[1], ARGV[1])
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        return value
        """
    )
}
