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

    /// Stores `value` (the coordinator copying the store's answers in: the store's answer is the one its
    /// rows were built from).
    public func set(_ key: String, _ value: String) async throws {
        try await redis.set(cacheKey(key), value, ttlSeconds: Self.timeToLiveSeconds)
    }

    /// Stores `value` unless an answer is cached already, and returns the answer that stands: `value`, or the
    /// earlier one (a duplicate of the call finished first).
    public func setIfAbsent(_ key: String, _ value: String) async throws -> String {
        let reply = try await redis.evaluate(
            Self.setIfAbsentScript, keys: [cacheKey(key)], arguments: [value, String(Self.timeToLiveSeconds)])
        guard let standing = reply.string else { throw RedisError.unexpectedReply("a string from the cache") }
        return standing
    }

    /// The claim on `key` for `owner`: a lease that lapses after `ttlMilliseconds` unless renewed.
    public func claim(_ key: String, owner: String, ttlMilliseconds: Int) -> RedisLease {
        RedisLease(
            redis: redis, key: "cs:\(namespace):cache-claim:\(key)", owner: owner, ttlMilliseconds: ttlMilliseconds)
    }

    private func cacheKey(_ key: String) -> String { "cs:\(namespace):cache:\(key)" }

    /// KEYS: the cache key. ARGV: value, TTL seconds.
    static let setIfAbsentScript = RedisScript(
        """
        local standing = redis.call('GET', KEYS[1])
        if standing then return standing end
        redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
        return ARGV[1]
        """
    )
}
