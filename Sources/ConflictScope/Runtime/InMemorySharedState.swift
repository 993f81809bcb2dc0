import Foundation

/// `SharedState` in this process: what the embedded run and the roles' unit tests share instead of Redis.
/// Keys lapse like Redis keys; `forgetEverything` is a Redis restart without its data.
public final class InMemorySharedState: SharedState, @unchecked Sendable {
    // `values` and `limiters` are guarded by `lock`.
    private let lock = NSLock()
    private var values: [String: (value: String, expires: ContinuousClock.Instant?)] = [:]
    private var limiters: [String: InProcessRateLimiter] = [:]

    public init() {}

    /// Drops every key, as a Redis restarted without its data would.
    public func forgetEverything() { lock.withLock { values.removeAll() } }

    /// The value at `key` if it has not lapsed; call with `lock` held.
    private func current(_ key: String) -> String? {
        guard let entry = values[key] else { return nil }
        if let expires = entry.expires, expires <= .now {
            values[key] = nil
            return nil
        }
        return entry.value
    }

    private static func expiry(_ ttlSeconds: Double?) -> ContinuousClock.Instant? {
        ttlSeconds.map { .now + .seconds($0) }
    }

    /// Runs `body` on the values, atomically (what a Lua script is in Redis).
    func atomically<T>(_ body: (inout [String: String?]) throws -> T, keys: [String]) rethrows -> T {
        try lock.withLock {
            var view: [String: String?] = [:]
            for key in keys { view[key] = .some(current(key)) }
            let result = try body(&view)
            for (key, value) in view where value != current(key) {
                values[key] = value.map { ($0, values[key]?.expires) }
            }
            return result
        }
    }

    public func get(_ key: String) async throws -> String? { lock.withLock { current(key) } }

    public func set(_ key: String, _ value: String, ttlSeconds: Double?) async throws {
        lock.withLock { values[key] = (value, Self.expiry(ttlSeconds)) }
    }

    public func setIfAbsent(_ key: String, _ value: String, ttlSeconds: Double?) async throws -> String {
        lock.withLock {
            if let standing = current(key) { return standing }
            values[key] = (value, Self.expiry(ttlSeconds))
            return value
        }
    }

    public func increment(_ key: String, by delta: Int, ttlSeconds: Double) async throws -> Int {
        lock.withLock {
            let next = (current(key).flatMap { Int($0) } ?? 0) + delta
            values[key] = (String(next), Self.expiry(ttlSeconds))
            return next
        }
    }

    public func delete(_ keys: [String]) async throws {
        lock.withLock { for key in keys { values[key] = nil } }
    }

    public func keys(prefix: String) async throws -> [String] {
        lock.withLock { values.keys.filter { $0.hasPrefix(prefix) && current($0) != nil }.sorted() }
    }

    public func lease(_ key: String, owner: String, ttlMilliseconds: Int) -> any Lease {
        InMemoryLease(state: self, key: key, owner: owner, ttl: Double(max(1, ttlMilliseconds)) / 1000)
    }

    /// One limiter per namespace, shared by every role of this state; calls are bounded by rate only, as in
    /// the cluster, not by a count in flight.
    public func rateLimiter(namespace: String, limits: [String: ModelRateLimit]) -> any SharedRateLimiter {
        lock.withLock {
            if let limiter = limiters[namespace] { return limiter }
            let unbounded = Dictionary(uniqueKeysWithValues: limits.keys.map { ($0, Int.max) })
            let limiter = InProcessRateLimiter(limits: unbounded, rates: limits)
            limiters[namespace] = limiter
            return limiter
        }
    }

    public func budget(namespace: String, limitUSD: Double) -> any SharedBudget {
        InMemoryBudget(state: self, namespace: namespace, limitUSD: limitUSD)
    }

    fileprivate func renew(_ key: String, owner: String, ttl: Double) -> Bool {
        lock.withLock {
            guard current(key) == owner else { return false }
            values[key] = (owner, Self.expiry(ttl))
            return true
        }
    }

    fileprivate func release(_ key: String, owner: String) {
        lock.withLock { if current(key) == owner { values[key] = nil } }
    }
}

extension InProcessRateLimiter: SharedRateLimiter {}

struct InMemoryLease: Lease {
    let state: InMemorySharedState
    let key: String
    let owner: String
    let ttl: Double

    func acquire() async throws -> Bool { try await state.setIfAbsent(key, owner, ttlSeconds: ttl) == owner }
    func renew() async throws -> Bool { state.renew(key, owner: owner, ttl: ttl) }
    func release() async throws { state.release(key, owner: owner) }
    func holder() async throws -> String? { try await state.get(key) }
}

/// The Redis budget's rules over in-memory keys (`cs:{namespace}:budget:spent` and `:reserved`, integer
/// micro-dollars): reservations fail closed while the spend is unknown, and `start` never lowers it.
struct InMemoryBudget: SharedBudget {
    let state: InMemorySharedState
    let spentKey: String
    let reservedKey: String
    let limit: Int

    init(state: InMemorySharedState, namespace: String, limitUSD: Double) {
        self.state = state
        self.spentKey = "cs:\(namespace):budget:spent"
        self.reservedKey = "cs:\(namespace):budget:reserved"
        self.limit = Self.micros(limitUSD)
    }

    func start(spentUSD: Double) async throws {
        state.atomically(
            { keys in
                let current = keys[spentKey]!.flatMap { Int($0) } ?? -1
                if current < Self.micros(spentUSD) { keys[spentKey] = String(Self.micros(spentUSD)) }
                if keys[reservedKey]! == nil { keys[reservedKey] = "0" }
            }, keys: [spentKey, reservedKey])
    }

    func reserve(_ usd: Double) async throws -> Bool {
        try state.atomically(
            { keys in
                guard let spent = keys[spentKey]!.flatMap({ Int($0) }) else { throw BudgetUnknown() }
                let reserved = keys[reservedKey]!.flatMap { Int($0) } ?? 0
                guard spent + reserved + Self.micros(usd) <= limit else { return false }
                keys[reservedKey] = String(reserved + Self.micros(usd))
                return true
            }, keys: [spentKey, reservedKey])
    }

    func settle(reserved: Double, actual: Double) async throws {
        state.atomically(
            { keys in
                let held = keys[reservedKey]!.flatMap { Int($0) } ?? 0
                keys[reservedKey] = String(held - min(Self.micros(reserved), max(held, 0)))
                // A lost spend is not recreated from one call: `start` restores it from the store.
                if let spent = keys[spentKey]!.flatMap({ Int($0) }) {
                    keys[spentKey] = String(spent + Self.micros(actual))
                }
            }, keys: [spentKey, reservedKey])
    }

    func spentUSD() async throws -> Double {
        Double(try await state.get(spentKey).flatMap { Int($0) } ?? 0) / 1_000_000
    }
}
