import ConflictScope
import Foundation

/// A worker's `SweepRecords` for one task: rows are collected for the task's result message (the
/// aggregator is the store's only writer) and answers go through the sweep's Redis response cache.
///
/// The cache doubles as a cross-worker single flight: before a call, a worker claims its request
/// key; another worker asking the same request meanwhile waits for the cached answer instead of
/// paying for it again. A claim expires after `claimSeconds` in case its worker dies.
final class TaskRecords: SweepRecords, @unchecked Sendable {
    private let cache: RedisResponseCache
    private let owner: String
    private let claimSeconds: Double
    // `batch` and `claimed` are guarded by `lock`: a task's calls may run concurrently.
    private let lock = NSLock()
    private var batch = ResultBatch()
    private var claimed: Set<String> = []

    init(cache: RedisResponseCache, owner: String, claimSeconds: Double = 15) {
        self.cache = cache
        self.owner = owner
        self.claimSeconds = claimSeconds
    }

    /// The rows written so far.
    var rows: ResultBatch { lock.withLock { batch } }

    func successfulResponse(key: String) async throws -> ModelAnswer? {
        while true {
            if let cached = try await cache.get(key) { return ModelAnswer(cacheValue: cached) }
            if try await cache.claim(key, owner: owner, ttlMilliseconds: Int(claimSeconds * 1000)) {
                lock.withLock { _ = claimed.insert(key) }
                return nil
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func record(_ call: ResultStore.CallRecord) async throws {
        if call.status == "ok", let response = call.response {
            try await cache.set(call.key, ModelAnswer(text: response, truncated: call.truncated).cacheValue)
        }
        let wasClaimed = lock.withLock {
            batch.calls.append(call)
            return claimed.remove(call.key) != nil
        }
        if wasClaimed { try await cache.releaseClaim(call.key, owner: owner) }
    }

    func upsertOutline(_ outline: Outline) { lock.withLock { batch.outlines.append(outline) } }
    func upsertScenario(_ scenario: Scenario) { lock.withLock { batch.scenarios.append(scenario) } }

    func upsertUserPrompt(scenarioID: String, text: String) {
        lock.withLock { batch.userPrompts.append(.init(scenarioID: scenarioID, text: text)) }
    }

    func upsertJudgment(_ record: StoredJudgment) { lock.withLock { batch.judgments.append(record) } }

    /// Releases claims of calls that never finished (the task failed or was stopped).
    func releaseClaims() async {
        let keys = lock.withLock {
            defer { claimed.removeAll() }
            return claimed
        }
        for key in keys { try? await cache.releaseClaim(key, owner: owner) }
    }
}
