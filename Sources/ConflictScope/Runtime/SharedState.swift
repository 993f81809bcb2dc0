/// What the roles of one sweep share besides the queues: short-lived keys (markers, the sweep's name and
/// run id, the live rankings), leases, the rate limits and the budget. Redis in the cluster
/// (`RedisSharedState`), `InMemorySharedState` in one process. Keys carry their sweep's namespace
/// (`ClusterNames`), so sweeps sharing one state never see each other's.
public protocol SharedState: Sendable {
    func get(_ key: String) async throws -> String?
    /// Sets `key`; it lapses after `ttlSeconds` (nil: it stays).
    func set(_ key: String, _ value: String, ttlSeconds: Double?) async throws
    /// Sets `key` unless it holds a value, and returns the value that stands: `value`, or the earlier one.
    func setIfAbsent(_ key: String, _ value: String, ttlSeconds: Double?) async throws -> String
    /// Adds `delta` to the integer at `key` (missing: 0), which then lapses after `ttlSeconds`; returns the sum.
    func increment(_ key: String, by delta: Int, ttlSeconds: Double) async throws -> Int
    func delete(_ keys: [String]) async throws
    /// Keys starting with `prefix` (tests and operators; not for the hot path).
    func keys(prefix: String) async throws -> [String]
    /// A lease on `key` for `owner`, lapsing after `ttlMilliseconds` unless renewed.
    func lease(_ key: String, owner: String, ttlMilliseconds: Int) -> any Lease
    /// The sweep's rate limits, shared by every role of this state.
    func rateLimiter(namespace: String, limits: [String: ModelRateLimit]) -> any SharedRateLimiter
    /// The sweep's budget, shared by every role of this state.
    func budget(namespace: String, limitUSD: Double) -> any SharedBudget
}

extension SharedState {
    public func set(_ key: String, _ value: String) async throws { try await set(key, value, ttlSeconds: nil) }

    public func increment(_ key: String, ttlSeconds: Double) async throws -> Int {
        try await increment(key, by: 1, ttlSeconds: ttlSeconds)
    }
}

/// A key held by one owner for a limited time, renewed while the owner lives: what the coordinator's lease
/// and the response cache's claims are made of. Renewing or releasing checks the owner first, so an owner
/// whose lease lapsed and was taken by another cannot touch the new holder's.
public protocol Lease: Sendable {
    var key: String { get }
    var owner: String { get }
    /// Takes the key if no one holds it; false when someone does.
    func acquire() async throws -> Bool
    /// Extends the lease; false when this owner no longer holds it.
    func renew() async throws -> Bool
    /// Gives the key up if this owner still holds it.
    func release() async throws
    /// The current holder, if any.
    func holder() async throws -> String?
}

/// A rate limiter whose use can be shown (the live view).
public protocol SharedRateLimiter: RateLimiter {
    func usage(model: String) async throws -> RateUse
}

/// The sweep's budget as the roles share it: spent (settled calls) plus reservations (calls in flight).
public protocol SharedBudget: BudgetGate {
    /// Raises spend to at least `spentUSD` (the store's total), never lowering it, and keeps every reservation:
    /// those of live calls are still needed, those of killed workers count as spent.
    func start(spentUSD: Double) async throws
    /// What the sweep has spent (settled calls only).
    func spentUSD() async throws -> Double
}

extension SharedBudget {
    /// The budget's unit, integer micro-dollars: reserve and settle round the same amount identically.
    public static func micros(_ usd: Double) -> Int {
        guard usd.isFinite else { return usd > 0 ? Int.max / 4 : 0 }
        return Int((max(0, usd) * 1_000_000).rounded())
    }
}

/// The budget has no spend on record (the shared state lost it and no coordinator restored it yet): no call
/// may reserve, since it would read as nothing spent.
public struct BudgetUnknown: Error, CustomStringConvertible {
    public init() {}
    public var description: String {
        "the sweep's budget is not in the shared state (restarted without its data?); waiting for the coordinator"
    }
}
