/// Model responses shared by every worker (`cs:{namespace}:cache:{key}`, kept 7 days), with a cross-process
/// single-flight claim (`cs:{namespace}:cache-claim:{key}`) so that one worker makes a call while the others
/// wait for its result.
public struct SharedResponseCache: Sendable {
    private let state: any SharedState
    private let namespace: String

    /// How long a cached response is kept: 7 days.
    public static let timeToLiveSeconds = 7 * 24 * 3600

    public init(state: any SharedState, namespace: String) {
        self.state = state
        self.namespace = namespace
    }

    public func get(_ key: String) async throws -> String? {
        try await state.get(cacheKey(key))
    }

    /// Stores `value` (the coordinator copying the store's answers in: the store's answer is the one its
    /// rows were built from).
    public func set(_ key: String, _ value: String) async throws {
        try await state.set(cacheKey(key), value, ttlSeconds: Double(Self.timeToLiveSeconds))
    }

    /// Stores `value` unless an answer is cached already, and returns the answer that stands: `value`, or the
    /// earlier one (a duplicate of the call finished first).
    public func setIfAbsent(_ key: String, _ value: String) async throws -> String {
        try await state.setIfAbsent(cacheKey(key), value, ttlSeconds: Double(Self.timeToLiveSeconds))
    }

    /// The claim on `key` for `owner`: a lease that lapses after `ttlMilliseconds` unless renewed.
    public func claim(_ key: String, owner: String, ttlMilliseconds: Int) -> any Lease {
        state.lease("cs:\(namespace):cache-claim:\(key)", owner: owner, ttlMilliseconds: ttlMilliseconds)
    }

    private func cacheKey(_ key: String) -> String { "cs:\(namespace):cache:\(key)" }
}
