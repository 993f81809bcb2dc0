import ConflictScope

/// A `Lease` in Redis: the key holds the owner, with a PX expiry; renew and release are Lua scripts that
/// check the owner first.
public struct RedisLease: Lease {
    let redis: RedisClient
    public let key: String
    public let owner: String
    public let ttlMilliseconds: Int

    public init(redis: RedisClient, key: String, owner: String, ttlMilliseconds: Int) {
        self.redis = redis
        self.key = key
        self.owner = owner
        self.ttlMilliseconds = max(1, ttlMilliseconds)
    }

    public func acquire() async throws -> Bool {
        try await redis.command(["SET", key, owner, "NX", "PX", String(ttlMilliseconds)]) != .null
    }

    public func renew() async throws -> Bool {
        try await redis.evaluate(Self.renewScript, keys: [key], arguments: [owner, String(ttlMilliseconds)])
            == .integer(1)
    }

    public func release() async throws {
        _ = try await redis.evaluate(Self.releaseScript, keys: [key], arguments: [owner])
    }

    public func holder() async throws -> String? { try await redis.get(key) }

    static let renewScript = RedisScript(
        """
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
        return 0
        """
    )

    static let releaseScript = RedisScript(
        """
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """
    )
}
