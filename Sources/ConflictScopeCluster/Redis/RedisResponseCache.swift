/// Model responses shared by every worker (`cs:{namespace}:cache:{key}`, kept 7 days), with a cross-process
/// single-flight claim so that one worker makes a call while the others wait for its result.
public struct RedisResponseCache: Sendable {
    private let redis: RedisClient
    private let namespace: String

    /// How long a cached response is kept: 7 days.
    public static let timeToLiveSeconds = 7 * 24 * 3600

    public init(redis: RedisClient, namespace: String) {
        self.redis = redis
        self.namespace = namespace
    }

    public func get(_ key: String) async throws -> String? {
        try await redis.get(cacheKey(key))
    }

    public func set(_ key: String, _ value: String) async throws {
        try await redis.set(cacheKey(key), value, ttlSeconds: Self.timeToLiveSeconds)
    }

    /// Claims `key` for `owner` for `ttlMilliseconds` (SET NX PX); false when another owner holds it.
    public func claim(_ key: String, owner: String, ttlMilliseconds: Int) async throws -> Bool {
        let reply = try await redis.command(["SET", claimKey(key), owner, "NX", "PX", String(max(1, ttlMilliseconds))])
        return reply != .null
    }

    /// Releases `owner`'s claim on `key`; does nothing when the claim expired or belongs to someone else.
    public func releaseClaim(_ key: String, owner: String) async throws {
        _ = try await redis.evaluate(Self.releaseScript, keys: [claimKey(key)], arguments: [owner])
    }

    private func cacheKey(_ key: String) -> String { "cs:\(namespace):cache:\(key)" }
    private func claimKey(_ key: String) -> String { "cs:\(namespace):cache-claim:\(key)" }

    static let releaseScript = RedisScript(
        """
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """
    )
}
