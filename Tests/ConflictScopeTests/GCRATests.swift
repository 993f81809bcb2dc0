import Foundation
import Testing

@testable import ConflictScope

@Suite("The one rate-limit rule (GCRA)")
struct GCRATests {
    /// 600 requests a minute with half a second's tolerance: a burst of 5 at once, then one every 100 ms.
    @Test func aLimitAdmitsItsBurstThenOneCallPerIncrement() {
        var gcra = GCRA(toleranceMicroseconds: 500_000)
        let charge = [GCRA.Charge(kind: "rpm", cost: 1, perMinute: 600)]
        let burst = (0..<10).map { _ in gcra.admit(charge, account: "a", now: 0) }
        #expect(burst.prefix(5).allSatisfy { $0 == 0 }, "\(burst)")
        #expect(burst.dropFirst(5).allSatisfy { $0 > 0 })
        #expect(burst[5] == 100_000, "the next call waits one increment")
        #expect(gcra.admit(charge, account: "a", now: 100_000) == 0)
        // Another account has its own limits.
        #expect(gcra.admit(charge, account: "b", now: 0) == 0)
    }

    @Test func aChargeBiggerThanTheToleranceWaitsForAnEmptyBucketAndOverUseIsCharged() {
        var gcra = GCRA(toleranceMicroseconds: 500_000)
        let big = [GCRA.Charge(kind: "tpm", cost: 6_000, perMinute: 60_000)]  // 6 s worth
        #expect(gcra.admit(big, account: "a", now: 0) == 0)
        #expect(gcra.admit(big, account: "a", now: 1_000_000) == 5_000_000)
        #expect(gcra.admit(big, account: "a", now: 6_000_000) == 0)
        // Using more than estimated moves the bucket on; using less gives nothing back.
        let estimated = [GCRA.Charge(kind: "tpm", cost: 100, perMinute: 60_000)]
        gcra.chargeOverUse(
            estimated: estimated, used: [GCRA.Charge(kind: "tpm", cost: 1_100, perMinute: 60_000)], account: "a",
            now: 6_000_000)
        #expect(gcra.arrival(account: "a", kind: "tpm") == 13_000_000)
        gcra.chargeOverUse(
            estimated: estimated, used: [GCRA.Charge(kind: "tpm", cost: 0, perMinute: 60_000)], account: "a",
            now: 6_000_000)
        #expect(gcra.arrival(account: "a", kind: "tpm") == 13_000_000)
    }

    /// The embedded run's limiter paces calls by `rpm`, counted per account: two model names on one account
    /// and model id share the limit.
    @Test func theEmbeddedLimiterPacesCallsPerAccount() async throws {
        let shared = ModelRateLimit(account: "acct/model-x", requestsPerMinute: 1_200)
        let limiter = InProcessRateLimiter(limits: [:], rates: ["first": shared, "second": shared])
        let started = ContinuousClock.now
        for index in 0..<30 {
            let model = index.isMultiple(of: 2) ? "first" : "second"
            try await limiter.acquire(model: model, estimate: TokenUsage(input: 10, output: 10))
            await limiter.settle(
                model: model, estimate: TokenUsage(input: 10, output: 10), actual: TokenUsage(input: 10, output: 10))
        }
        // 20 a second with a burst of 10: the last of 30 calls is admitted after about 1 s.
        let elapsed = ContinuousClock.now - started
        // (No upper bound: under a loaded test run sleeps overrun; the rule's own arithmetic is tested above.)
        #expect(elapsed >= .milliseconds(900), "\(elapsed)")
    }

    @Test func theEmbeddedLimiterCountsWhatEachAccountWasAdmitted() async throws {
        let shared = ModelRateLimit(account: "acct/model-x", requestsPerMinute: 6_000)
        let limiter = InProcessRateLimiter(limits: [:], rates: ["first": shared, "second": shared])
        for model in ["first", "second", "first", "other"] {
            try await limiter.acquire(model: model, estimate: TokenUsage(input: 30, output: 20))
            await limiter.settle(
                model: model, estimate: TokenUsage(input: 30, output: 20), actual: TokenUsage(input: 30, output: 20))
        }
        // Both model names share the account; a model without limits has its own tally.
        let first = await limiter.usage(model: "first")
        #expect(first.requests + first.previousRequests == 3)
        #expect(first.tokens + first.previousTokens == 150)
        #expect(await limiter.usage(model: "second") == first)
        let other = await limiter.usage(model: "other")
        #expect(other.requests + other.previousRequests == 1)
        #expect(await limiter.usage(model: "never") == RateUse())
    }

    @Test func aRateTallyMovesOnWithTheClockMinute() {
        var use = RateUse()
        var minute = 7
        use.admit(tokens: 10, minute: 7, lastMinute: &minute)
        use.admit(tokens: 5, minute: 7, lastMinute: &minute)
        #expect(use == RateUse(requests: 2, tokens: 15))
        // The next minute sees them as the last minute's; two minutes on, they are gone.
        #expect(use.seen(in: 8, lastMinute: minute) == RateUse(previousRequests: 2, previousTokens: 15))
        #expect(use.seen(in: 9, lastMinute: minute) == RateUse())
        use.admit(tokens: 1, minute: 8, lastMinute: &minute)
        #expect(use == RateUse(requests: 1, tokens: 1, previousRequests: 2, previousTokens: 15))
        #expect(minute == 8)
    }

    @Test func limitsAreKeyedByTheProvidersAccountAndTheModelID() throws {
        let (config, _) = try writeTemporaryConfig(
            """
            [sweep]
            name = "accounts"
            [providers.team]
            kind = "openai"
            base_url = "http://127.0.0.1:8000/v1"
            account = "team-org"
            rpm = 100
            [providers.team-batch]
            kind = "openai"
            base_url = "http://127.0.0.1:8001/v1"
            account = "team-org"
            rpm = 100
            [providers.other]
            kind = "openai"
            base_url = "http://127.0.0.1:8002/v1"
            [models.writer]
            provider = "team"
            model = "gpt-x"
            [models.batch-writer]
            provider = "team-batch"
            model = "gpt-x"
            [models.own]
            provider = "other"
            model = "gpt-x"
            \(writerRoles)
            [targets]
            models = ["batch-writer", "own"]
            """)
        let limits = ModelRateLimit.limits(of: config)
        #expect(limits["writer"]?.account == "team-org/gpt-x")
        #expect(limits["batch-writer"]?.account == limits["writer"]?.account)
        #expect(limits["own"]?.account == "openai:http://127.0.0.1:8002/v1:/gpt-x")
    }
}
