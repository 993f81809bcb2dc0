/// A key held by one owner for a limited time, renewed while the owner lives: what the coordinator's lease
/// and the response cache's claims are made of. Renewing or releasing checks the owner first, so an owner
/// whose lease expired and was taken by another cannot touch the new holder's.
public struct RedisLease: Sendable {
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

    /// Takes the key if no one holds it; false when someone does.
    public func acquire() async throws -> Bool {
        try await redis.command(["SET", key, owner, "NX", "PX", String(ttlMilliseconds)]) != .null
    }

    /// Extends the lease; false when this owner no longer holds it.
    public func renew() async throws -> Bool {
        try await redis.evaluate(Self.renewScript, keys: [key], arguments: [owner, String(ttlMilliseconds)])
            == .integer(1)
    }

    /// Gives the key up if this owner still holds it.
    public func release() async throws {
        _ = try await redis.evaluate(Self.releaseScript, keys: [key], arguments: [owner])
    }

    /// The current holder, if any.
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
