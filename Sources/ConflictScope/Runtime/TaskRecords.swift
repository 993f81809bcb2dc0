import Foundation

/// A worker's `SweepRecords` for one task: rows are collected for the task's result message (the
/// aggregator is the store's only writer) and answers go through the sweep's shared response cache.
///
/// The cache doubles as a cross-worker single flight: before a call, a worker claims its request
/// key; another worker asking the same request meanwhile waits for the cached answer instead of
/// paying for it again. A claim is a lease of `claimSeconds`, renewed every third of that while the
/// call runs (through rate-limit waits, retries and slow providers), so it lapses only when its worker
/// died or lost the shared state. An answer is cached only if none is: a late duplicate adopts the earlier answer.
///
/// While the task holds a claim, or waits for another's, it waits on the outside (admission, the budget, the
/// provider, a claim of a holder that died), so its `DeliveryCount` is lowered for that time: a holder
/// killed then does not count against the task.
final class TaskRecords: SweepRecords, @unchecked Sendable {
    private let cache: SharedResponseCache
    private let owner: String
    private let claimSeconds: Double
    private let deliveryCount: DeliveryCount?
    // `batch`, `claimed`, `waits` and `renewal` are guarded by `lock`: a task's calls may run concurrently.
    private let lock = NSLock()
    private var batch = ResultBatch()
    private var claimed: [String: any Lease] = [:]
    /// Claims held plus waits for other workers' claims.
    private var waits = 0
    private var renewal: Task<Void, Never>?

    init(cache: SharedResponseCache, owner: String, claimSeconds: Double = 15, deliveryCount: DeliveryCount? = nil) {
        self.cache = cache
        self.owner = owner
        self.claimSeconds = claimSeconds
        self.deliveryCount = deliveryCount
    }

    deinit { renewal?.cancel() }

    /// The rows written so far.
    var rows: ResultBatch { lock.withLock { batch } }

    func successfulResponse(key: String) async throws -> ModelAnswer? {
        let claim = cache.claim(key, owner: owner, ttlMilliseconds: Int(claimSeconds * 1000))
        // Waiting for another worker's claim: the wait goes on as this task's own claim, or ends.
        var waiting = false
        do {
            while true {
                if let cached = try await cache.get(key) {
                    if waiting { await changeWaits(by: -1) }
                    return ModelAnswer(cacheValue: cached)
                }
                if try await claim.acquire() {
                    lock.withLock {
                        claimed[key] = claim
                        if renewal == nil { renewal = Task { [weak self] in await self?.renewClaims() } }
                    }
                    if waiting { waiting = false } else { await changeWaits(by: 1) }
                    // The holder before may have cached its answer and let go between our look and our claim.
                    if let cached = try await cache.get(key) {
                        await letGo(key)
                        return ModelAnswer(cacheValue: cached)
                    }
                    return nil
                }
                if !waiting {
                    waiting = true
                    await changeWaits(by: 1)
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        } catch {
            if waiting { await Task { await self.changeWaits(by: -1) }.value }
            throw error
        }
    }

    /// Counts waits on the outside; the task's delivery count is lowered while there is any.
    private func changeWaits(by delta: Int) async {
        let (before, after) = lock.withLock {
            defer { waits += delta }
            return (waits, waits + delta)
        }
        if before == 0 && after > 0 { await deliveryCount?.add(-1) }
        if before > 0 && after == 0 { await deliveryCount?.add(1) }
    }

    /// Keeps this task's claims alive while it holds any.
    private func renewClaims() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(claimSeconds / 3))
            for claim in lock.withLock({ Array(claimed.values) }) { _ = try? await claim.renew() }
        }
    }

    func record(_ call: ResultStore.CallRecord) async throws -> ModelAnswer? {
        var call = call
        var standing: ModelAnswer?
        if call.status == "ok", let response = call.response {
            let ours = ModelAnswer(text: response, truncated: call.truncated)
            let cached = ModelAnswer(
                cacheValue: try await Self.persistently { try await self.cache.setIfAbsent(call.key, ours.cacheValue) })
            // The row carries the answer that stands (with this call's cost: it was paid for).
            (call.response, call.truncated) = (cached.text, cached.truncated)
            standing = cached
        }
        lock.withLock { batch.calls.append(call) }
        await letGo(call.key)
        return standing
    }

    /// Gives up this task's claim on `key`, if it holds one.
    private func letGo(_ key: String) async {
        guard let claim = lock.withLock({ claimed.removeValue(forKey: key) }) else { return }
        try? await claim.release()
        await changeWaits(by: -1)
    }

    /// A paid answer is not given up for one error of the shared state: `write` is tried for up to about 30 s.
    private static func persistently<T>(_ write: () async throws -> T) async throws -> T {
        var delay = 0.25
        for _ in 0..<7 {
            do { return try await write() } catch is CancellationError { throw CancellationError() } catch {
                try await Task.sleep(for: .seconds(delay))
                delay *= 2
            }
        }
        return try await write()
    }

    func upsertOutline(_ outline: Outline) { lock.withLock { batch.outlines.append(outline) } }
    func upsertScenario(_ scenario: Scenario) { lock.withLock { batch.scenarios.append(scenario) } }

    func upsertUserPrompt(scenarioID: String, text: String) {
        lock.withLock { batch.userPrompts.append(.init(scenarioID: scenarioID, text: text)) }
    }

    func upsertJudgment(_ record: StoredJudgment) { lock.withLock { batch.judgments.append(record) } }

    /// Releases claims of calls that never finished (the task failed, was stopped or cancelled) and stops
    /// renewing.
    func releaseClaims() async {
        let claims = lock.withLock {
            defer {
                claimed.removeAll()
                renewal?.cancel()
                renewal = nil
            }
            return Array(claimed.values)
        }
        for claim in claims { try? await claim.release() }
        if !claims.isEmpty { await changeWaits(by: -claims.count) }
    }
}

/// How many of a task's holders died in our own code, as opposed to while the task waited on the outside or
/// before they began it, and how often it came back redelivered: what `Worker.Options.deliveryLimit` bounds. A
/// worker adds one death when it begins a task and takes it off when it is through with it; `TaskRecords` takes
/// one off while the task holds a claim or waits for another worker's, and puts it back after. A holder killed
/// during a provider call, a rate-limit wait or the wait for a dead holder's claim to lapse (scale-ins, node
/// failures), or with the task only prefetched, leaves the deaths where they were; one that a task crashes in
/// its own handling leaves them one higher. Copies of a task (a hand-back whose original was redelivered too)
/// share the counts.
struct DeliveryCount: Sendable {
    let state: any SharedState
    let deathsKey: String
    let redeliveriesKey: String

    init(state: any SharedState, names: ClusterNames, taskID: String) {
        self.state = state
        deathsKey = names.deathsKey(taskID: taskID)
        redeliveriesKey = names.redeliveriesKey(taskID: taskID)
    }

    /// Best effort: a lost update errs by one death either way.
    func add(_ delta: Int) async {
        _ = try? await state.increment(deathsKey, by: delta, ttlSeconds: Self.ttlSeconds)
    }

    /// Counts one more redelivery; the holders that died in their own handling of the task, and the
    /// redeliveries so far.
    func redelivered() async throws -> (deaths: Int, redeliveries: Int) {
        let redeliveries = try await state.increment(redeliveriesKey, by: 1, ttlSeconds: Self.ttlSeconds)
        return (Int(try await state.get(deathsKey) ?? "") ?? 0, redeliveries)
    }

    private static let ttlSeconds = Double(SharedResponseCache.timeToLiveSeconds)
}
