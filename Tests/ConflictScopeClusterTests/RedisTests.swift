import ConflictScope
import Foundation
import Testing

@testable import ConflictScopeCluster

/// Integration tests against the Redis at `CONFLICTSCOPE_REDIS_URL` (default redis://127.0.0.1:6379/0).
/// Serialized: one test restarts Redis, which would disturb the others.
@Suite(.serialized)
struct RedisTests {
    static let url = redisURL

    let namespace = "test-\(UUID().uuidString)"

    func makeClient() throws -> RedisClient { try RedisClient(url: Self.url) }

    /// Deletes every key of this test's namespace.
    func cleanUp(_ redis: RedisClient) async throws {
        var cursor = "0"
        repeat {
            guard case .array(let page) = try await redis.command(["SCAN", cursor, "MATCH", "cs:\(namespace):*"]),
                page.count == 2, let next = page[0].string, case .array(let keys) = page[1]
            else { throw RedisError.unexpectedReply("a SCAN page") }
            try await redis.delete(keys.compactMap(\.string))
            cursor = next
        } while cursor != "0"
    }

    // MARK: - Client

    @Test func settingsHideThePassword() throws {
        let settings = try RedisSettings(url: "redis://:s3cret@10.0.0.7:6380/2")
        #expect(settings.host == "10.0.0.7" && settings.port == 6380 && settings.database == 2)
        #expect(settings.password == "s3cret")
        #expect(!settings.description.contains("s3cret"))
        #expect(settings.description == "redis://:***@10.0.0.7:6380/2")
        #expect(throws: RedisError.invalidURL) { try RedisSettings(url: "http://:s3cret@host") }
        #expect(!String(describing: RedisError.invalidURL).contains("s3cret"))
    }

    @Test func sha1MatchesKnownDigests() {
        #expect(SHA1.hexDigest(of: []) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(SHA1.hexDigest(of: Array("abc".utf8)) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        let long = Array(String(repeating: "a", count: 1000).utf8)
        #expect(SHA1.hexDigest(of: long) == "291e9a6c66994949b57ba5e650361e98fc36b1ba")
    }

    @Test func commandsRoundTrip() async throws {
        let redis = try makeClient()
        let key = "cs:\(namespace):plain"
        #expect(try await redis.command(["SET", key, "hello"]) == .status("OK"))
        #expect(try await redis.command(["GET", key]) == .string("hello"))
        #expect(try await redis.command(["GET", "cs:\(namespace):missing"]) == .null)

        let binary = "a\u{0}b – ünïcødé 🎯"
        try await redis.set(key, binary, ttlSeconds: 60)
        #expect(try await redis.get(key) == binary)
        #expect(try await redis.command(["STRLEN", key]) == .integer(binary.utf8.count))

        let counter = "cs:\(namespace):counter"
        #expect(try await redis.command(["INCR", counter]) == .integer(1))
        #expect(try await redis.command(["INCRBY", counter, "41"]) == .integer(42))

        let list = "cs:\(namespace):list"
        _ = try await redis.command(["RPUSH", list, "x", "", "z"])
        #expect(
            try await redis.command(["LRANGE", list, "0", "-1"]) == .array([.string("x"), .string(""), .string("z")]))

        #expect(try await redis.hashIncrement("cs:\(namespace):hash", field: "f", by: 3) == 3)
        #expect(try await redis.hashGetAll("cs:\(namespace):hash") == ["f": "3"])

        await #expect(throws: RedisError.self) { try await redis.command(["INCR", key]) }
        do {
            _ = try await redis.command(["NOSUCHCOMMAND"])
            Issue.record("an error reply should throw")
        } catch let error as RedisError {
            #expect(error.serverMessage?.hasPrefix("ERR") == true)
        }
        try await cleanUp(redis)
    }

    @Test func evaluateReloadsAfterScriptFlush() async throws {
        let redis = try makeClient()
        let script = RedisScript("return {KEYS[1], ARGV[1], 7}")
        let expected = RedisReply.array([.string("k"), .string("v"), .integer(7)])
        #expect(try await redis.evaluate(script, keys: ["k"], arguments: ["v"]) == expected)
        _ = try await redis.command(["SCRIPT", "FLUSH"])
        #expect(try await redis.evaluate(script, keys: ["k"], arguments: ["v"]) == expected)
        #expect(try await redis.command(["SCRIPT", "LOAD", script.source]) == .string(script.sha1))
    }

    @Test func reconnectsAfterRedisRestart() async throws {
        let redis = try makeClient()
        let key = "cs:\(namespace):before"
        try await redis.set(key, "1", ttlSeconds: 60)
        #expect(try await redis.get(key) == "1")

        let (status, _) = try await runScript("servers", ["restart", "redis"])
        #expect(status == 0)

        // The old connection is dead; the command reconnects and succeeds, and the key is still there (the
        // test Redis keeps an append-only file, as the deployed one does).
        #expect(try await redis.get(key) == "1")
        try await redis.set(key, "2", ttlSeconds: 60)
        #expect(try await redis.get(key) == "2")
        try await cleanUp(redis)
    }

    @Test func cancellationStopsRetrying() async throws {
        // Nothing listens on port 1: every attempt is refused and retried until the task is cancelled.
        let redis = try RedisClient(url: "redis://127.0.0.1:1/0")
        let task = Task { try await redis.command(["PING"]) }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
    }

    // MARK: - Rate limiter

    /// Runs `workers` limiters (each with its own connection, like separate worker processes) calling
    /// `acquire` back to back for `duration`; returns the admission times relative to the start.
    func hammer(
        workers: Int, limit: ModelRateLimit, estimate: TokenUsage, duration: Duration
    ) async throws -> (admissions: [Duration], elapsed: Duration) {
        let clients = try (0..<workers).map { _ in try makeClient() }
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + duration
        let admissions = try await withThrowingTaskGroup(of: [Duration].self) { group in
            for client in clients {
                let limiter = RedisRateLimiter(redis: client, namespace: namespace, limits: ["model": limit])
                group.addTask {
                    var times: [Duration] = []
                    while clock.now < deadline {
                        try await limiter.acquire(model: "model", estimate: estimate)
                        times.append(clock.now - start)
                    }
                    return times
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }.sorted()
        }
        return (admissions, clock.now - start)
    }

    /// The largest cost admitted in any window [t, t + 1 s) that starts at an admission.
    func busiestSecond(_ admissions: [Duration], cost: Int) -> Int {
        var best = 0
        var end = 0
        for start in admissions.indices {
            while end < admissions.count, admissions[end] < admissions[start] + .seconds(1) { end += 1 }
            best = max(best, (end - start) * cost)
        }
        return best
    }

    @Test func requestsPerMinuteHoldAcrossWorkers() async throws {
        let limit = ModelRateLimit(account: "provider/\(namespace)", requestsPerMinute: 600)
        let (admissions, elapsed) = try await hammer(
            workers: 4, limit: limit, estimate: TokenUsage(input: 10, output: 10), duration: .seconds(6)
        )
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        #expect(busiestSecond(admissions, cost: 1) <= 10 + 10)
        #expect(Double(admissions.count) >= 10 * seconds * 0.9)
        #expect(Double(admissions.count) <= 10 * seconds + 10 + 1)
        try await cleanUp(makeClient())
    }

    @Test func tokensPerMinuteHoldAcrossWorkers() async throws {
        let limit = ModelRateLimit(account: "provider/\(namespace)", tokensPerMinute: 60_000)
        let (admissions, elapsed) = try await hammer(
            workers: 4, limit: limit, estimate: TokenUsage(input: 200, output: 100), duration: .seconds(6)
        )
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let tokens = Double(admissions.count * 300)
        #expect(busiestSecond(admissions, cost: 300) <= 1_000 + 1_000)
        #expect(tokens >= 1_000 * seconds * 0.9)
        #expect(tokens <= 1_000 * seconds + 1_000 + 300)
        try await cleanUp(makeClient())
    }

    @Test func oversizedRequestIsNotStarved() async throws {
        let limit = ModelRateLimit(account: "provider/\(namespace)", tokensPerMinute: 60_000)
        let competitor = RedisRateLimiter(redis: try makeClient(), namespace: namespace, limits: ["model": limit])
        let limiter = RedisRateLimiter(redis: try makeClient(), namespace: namespace, limits: ["model": limit])
        // Small calls keep the limit saturated the whole time.
        let background = Task {
            while !Task.isCancelled {
                try await competitor.acquire(model: "model", estimate: TokenUsage(input: 100, output: 100))
            }
        }
        try await Task.sleep(for: .milliseconds(500))
        let clock = ContinuousClock()
        let started = clock.now
        // 5,000 tokens is five seconds' worth at 1,000 tokens/s: more than the one-second burst.
        try await limiter.acquire(model: "model", estimate: TokenUsage(input: 1_000, output: 4_000))
        #expect(clock.now - started < .seconds(3))
        background.cancel()
        _ = await background.result
        try await cleanUp(makeClient())
    }

    @Test func settleChargesOverrunsAndRefundsNothing() async throws {
        let limit = ModelRateLimit(account: "provider/\(namespace)", requestsPerMinute: 600, tokensPerMinute: 60_000)
        let limiter = RedisRateLimiter(redis: try makeClient(), namespace: namespace, limits: ["model": limit])
        // Unused tokens are not given back (providers keep charging prompt + max_tokens): after a call charged
        // 0.9 s worth that used almost nothing, the next call of 0.6 s worth waits about 0.9 s (with a refund it
        // would wait 0.1 s).
        let estimate = TokenUsage(input: 100, output: 800)
        try await limiter.acquire(model: "model", estimate: estimate)
        try await limiter.settle(model: "model", estimate: estimate, actual: TokenUsage(input: 100, output: 1))
        let refused = RedisRateLimiter(redis: try makeClient(), namespace: namespace, limits: ["model": limit])
        let held = Task { try await refused.acquire(model: "model", estimate: TokenUsage(input: 100, output: 500)) }
        try await Task.sleep(for: .milliseconds(400))
        held.cancel()
        await #expect(throws: CancellationError.self) { try await held.value }
        try await Task.sleep(for: .seconds(1))

        // An overrun is charged: 6,000 extra tokens push the next call back by about five seconds.
        try await limiter.settle(
            model: "model", estimate: TokenUsage(input: 100, output: 100), actual: TokenUsage(input: 100, output: 6_100)
        )
        let probe = RedisRateLimiter(redis: try makeClient(), namespace: namespace, limits: ["model": limit])
        let waiting = Task { try await probe.acquire(model: "model", estimate: TokenUsage(input: 1, output: 1)) }
        try await Task.sleep(for: .milliseconds(500))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        try await cleanUp(makeClient())
    }

    @Test func pauseBlocksModelsWithAndWithoutLimits() async throws {
        let limit = ModelRateLimit(account: "provider/\(namespace)", requestsPerMinute: 6_000)
        let limiter = RedisRateLimiter(redis: try makeClient(), namespace: namespace, limits: ["limited": limit])
        let clock = ContinuousClock()
        for model in ["limited", "unlimited"] {
            try await limiter.acquire(model: model, estimate: TokenUsage(input: 1, output: 1))
            try await limiter.pause(model: model, seconds: 0.6)
            try await limiter.pause(model: model, seconds: 0.1)  // a shorter pause never shortens a longer one
            let started = clock.now
            try await limiter.acquire(model: model, estimate: TokenUsage(input: 1, output: 1))
            let waited = clock.now - started
            #expect(waited >= .milliseconds(540))
            #expect(waited < .seconds(2))
        }
        try await cleanUp(makeClient())
    }

    // MARK: - Budget

    @Test func budgetAdmitsExactlyWhatFits() async throws {
        let clients = try (0..<4).map { _ in try makeClient() }
        let budgets = clients.map { RedisBudget(redis: $0, namespace: namespace, limitUSD: 1.0) }
        try await budgets[0].start(spentUSD: 0)
        let admitted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<20 { group.addTask { try await budgets[index % 4].reserve(0.1) } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(admitted == 10)
        #expect(try await budgets[1].reserve(0.000_001) == false)

        try await budgets[0].settle(reserved: 0.1, actual: 0.03)
        #expect(abs(try await budgets[2].spentUSD() - 0.03) < 1e-9)
        #expect(try await budgets[3].reserve(0.07))  // 0.03 spent + 0.9 reserved + 0.07 = 1.0
        #expect(try await budgets[3].reserve(0.000_001) == false)

        // A coordinator start raises the spend to the store's total but never lowers it (the store lags
        // behind settled calls), and keeps every reservation (calls in flight, or paid by killed workers).
        try await budgets[0].start(spentUSD: 0.01)
        #expect(abs(try await budgets[2].spentUSD() - 0.03) < 1e-9)
        #expect(try await budgets[1].reserve(0.000_001) == false)
        for _ in 0..<9 { try await budgets[0].settle(reserved: 0.1, actual: 0) }
        try await budgets[0].settle(reserved: 0.07, actual: 0)
        try await budgets[0].start(spentUSD: 0.95)
        #expect(abs(try await budgets[2].spentUSD() - 0.95) < 1e-9)
        #expect(try await budgets[1].reserve(0.1) == false)
        #expect(try await budgets[1].reserve(0.05))
        try await cleanUp(clients[0])
    }

    /// Redis lost the budget's keys: no call may start until the coordinator restores the spend, and a call
    /// settled meanwhile does not recreate it as almost nothing spent.
    @Test func aMissingBudgetFailsClosed() async throws {
        let client = try makeClient()
        let budget = RedisBudget(redis: client, namespace: namespace, limitUSD: 1.0)
        try await budget.start(spentUSD: 0.5)
        #expect(try await budget.reserve(0.1))
        _ = try await client.delete(["cs:\(namespace):budget:spent", "cs:\(namespace):budget:reserved"])
        await #expect(throws: BudgetUnknown.self) { try await budget.reserve(0.1) }
        try await budget.settle(reserved: 0.1, actual: 0.02)
        await #expect(throws: BudgetUnknown.self) { try await budget.reserve(0.1) }
        try await budget.start(spentUSD: 0.92)
        #expect(try await budget.reserve(0.08))
        #expect(try await budget.reserve(0.000_001) == false)
        try await cleanUp(client)
    }

    // MARK: - Response cache

    @Test func cacheStoresAndClaimsExclusively() async throws {
        let cache = SharedResponseCache(state: RedisSharedState(redis: try makeClient()), namespace: namespace)
        let other = SharedResponseCache(state: RedisSharedState(redis: try makeClient()), namespace: namespace)
        #expect(try await cache.get("k") == nil)
        try await cache.set("k", "{\"answer\": \"A\"}")
        #expect(try await other.get("k") == "{\"answer\": \"A\"}")

        let first = cache.claim("call", owner: "worker-1", ttlMilliseconds: 10_000)
        let second = other.claim("call", owner: "worker-2", ttlMilliseconds: 10_000)
        #expect(try await first.acquire())
        #expect(try await second.acquire() == false)
        try await second.release()  // not its claim: nothing happens
        #expect(try await second.renew() == false)
        #expect(try await second.acquire() == false)
        try await first.release()
        #expect(try await second.acquire())

        // Only the first answer is cached; a late duplicate gets the earlier one back.
        #expect(try await cache.setIfAbsent("dup", "first answer") == "first answer")
        #expect(try await other.setIfAbsent("dup", "second answer") == "first answer")
        #expect(try await other.get("dup") == "first answer")
        try await cleanUp(makeClient())
    }

    /// A claim renewed while its owner works outlives its time to live; one left alone lapses.
    @Test func aRenewedClaimOutlivesItsTimeToLive() async throws {
        let cache = SharedResponseCache(state: RedisSharedState(redis: try makeClient()), namespace: namespace)
        // Renewed every 200 ms, a stall of 800 ms between two renewals would still be within its time to live.
        let held = cache.claim("slow-call", owner: "worker-1", ttlMilliseconds: 1_000)
        let rival = cache.claim("slow-call", owner: "worker-2", ttlMilliseconds: 1_000)
        #expect(try await held.acquire())
        for _ in 0..<10 {
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await held.renew())
        }
        #expect(try await rival.acquire() == false, "renewed for 2 s, twice its time to live")
        try await Task.sleep(for: .milliseconds(1_300))
        #expect(try await held.renew() == false, "left alone, it lapsed")
        #expect(try await rival.acquire())
        try await cleanUp(makeClient())
    }
}
