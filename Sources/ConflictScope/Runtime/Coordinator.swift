import Foundation
import Logging

/// Starts (or resumes) a cluster sweep and waits for it to finish.
///
/// It registers the sweep (its id in the store), tells workers the id through the shared state, declares every
/// queue before traffic, copies the store's answers into the shared response cache (so a resumed
/// sweep, or one whose shared state was lost, pays for nothing twice), registers and publishes the tasks
/// the store does not have as done, and decides completion from the store's task table alone.
public struct Coordinator: Sendable {
    let config: SweepConfig
    let store: ResultStore
    let transport: any TaskTransport
    let state: any SharedState
    let logger: Logger
    /// Seconds between looks at the task table.
    var pollInterval = 0.5
    /// The coordinator's lease and the sweep's name key last this long without renewal; both are renewed
    /// every third of it while the coordinator runs.
    var leaseSeconds = 30.0
    /// How long a starting coordinator waits for a held lease to lapse (one killed without releasing it,
    /// restarted at once) before it gives up on another coordinator that is still running.
    var leaseWaitSeconds = 35.0
    /// How long a finished sweep waits for workers to stop consuming before it deletes the task queues.
    var queueDeletionWaitSeconds = 15.0
    /// The largest registration message, in bytes (well under the broker's message size limit).
    var registrationChunkBytes = 4 * 1024 * 1024
    let identity = UUID().uuidString
    /// Where the roles run: recorded in the store, so `status` reads a cluster's queues only for a cluster sweep.
    var mode = SweepMode.cluster

    public init(
        config: SweepConfig, store: ResultStore, transport: any TaskTransport, state: any SharedState, logger: Logger
    ) {
        self.config = config
        self.store = store
        self.transport = transport
        self.state = state
        self.logger = logger
    }

    /// Tells workers the sweep's id under its name. The key expires unless a coordinator renews it, so a sweep
    /// that ended never leaves its id to the next sweep of that name.
    private func publishName(_ sweepID: String) async throws {
        try await state.set(ClusterNames.sweepKey(configName: config.name), sweepID, ttlSeconds: leaseSeconds)
    }

    /// Another coordinator of the same sweep holds the lease.
    public struct AlreadyRunning: Error, CustomStringConvertible {
        public let sweepID: String
        public var description: String {
            "another coordinator is running sweep \(sweepID) (its lease did not lapse in 35 s); "
                + "run one coordinator per sweep"
        }
    }

    /// Publishes what is left to do and waits until the task table has nothing pending.
    /// `progress` receives the task counts by stage and state after each look.
    public func run(progress: (@Sendable ([String: [TaskState: Int]]) -> Void)? = nil) async throws
        -> EmbeddedSweep.Summary
    {
        let sweepID = try store.bindSweep(config)
        try store.setMode(mode)
        let names = ClusterNames(sweepID: sweepID, sweepName: config.name)
        let lease = state.lease(names.coordinatorKey, owner: identity, ttlMilliseconds: Int(leaseSeconds * 1000))
        let waitUntil = ContinuousClock.now + .seconds(leaseWaitSeconds)
        while try await !lease.acquire() {
            guard ContinuousClock.now < waitUntil else { throw AlreadyRunning(sweepID: sweepID) }
            logger.warning("another coordinator holds the sweep's lease; waiting for it to lapse")
            try await Task.sleep(for: .seconds(1))
        }
        try await publishName(sweepID)
        var renewedAt = ContinuousClock.now
        do {
            let summary = try await run(names: names, progress: progress) {
                // Renews the lease and the name key every third of their life. A lease the shared state lost (a restart
                // without its data) is taken again; one another coordinator holds ends this one.
                guard ContinuousClock.now - renewedAt > .seconds(leaseSeconds / 3) else { return }
                if try await !lease.renew(), try await !lease.acquire() {
                    throw AlreadyRunning(sweepID: sweepID)
                }
                try await publishName(sweepID)
                renewedAt = .now
            }
            try? await lease.release()
            return summary
        } catch {
            try? await lease.release()
            throw error
        }
    }

    private func run(
        names: ClusterNames, progress: (@Sendable ([String: [TaskState: Int]]) -> Void)?,
        renew: () async throws -> Void
    ) async throws -> EmbeddedSweep.Summary {
        let sweepID = names.sweepID
        // A new start retries what an earlier stop left pending (after the key or model is fixed), and what a
        // finished run left dead.
        try await state.delete([names.stopKey, names.finishedKey])
        try await transport.declare(names.queueSpecs(config))
        if let limit = config.maxCostUSD {
            try await state.budget(namespace: sweepID, limitUSD: limit).start(
                spentUSD: try store.spentUSD())
        }
        let cached = try await preloadCache(names)
        // A fresh sweep starts from its initial tasks; a resumed one from every task not done, and the tasks a
        // config that extends the sweep adds (targets, conditions, formats, value sets).
        let known = try store.taskCounts()
        let tasks =
            known.isEmpty
            ? try SweepTasks(config: config).initial(store: store)
            : try store.unfinishedTasks() + SweepTasks(config: config).unregistered(store: store)
        logger.info(
            "coordinator publishing",
            metadata: ["sweep": "\(sweepID)", "tasks": "\(tasks.count)", "cache.preloaded": "\(cached)"])
        // Registered (confirmed on the results queue) before any of them can finish; completion is
        // judged only once the aggregator has stored this run's registration.
        let registration = UUID().uuidString
        // Markers of earlier runs no longer count: a task is published again only because the store
        // lacks its result, which may have been lost with the broker's data after a worker finished it.
        try await state.set(names.runKey, registration)
        let bodies = try tasks.map { Array(try JSONEncoder().encode($0)) }
        let parts = Self.chunks(bodies.map(\.count), limit: registrationChunkBytes)
        for (index, range) in parts.enumerated() {
            let message = ClusterMessage.register(
                id: registration, tasks: Array(tasks[range]), last: index == parts.count - 1)
            try await transport.publish(try message.encoded(), to: names.results)
        }
        if !tasks.isEmpty {
            try await withThrowingDiscardingTaskGroup { group in
                for (task, body) in zip(tasks, bodies) {
                    let queue = names.taskQueue(for: task, config: config)
                    group.addTask { try await transport.publish(body, to: queue) }
                }
            }
        }
        while true {
            // Registration first: it is stored in the transaction that reopens the tasks, so counts
            // read after it include them.
            let registered = try store.hasRegistration(registration)
            let counts = try store.taskCounts()
            progress?(counts)
            try await restoreAfterStateLoss(names, run: registration)
            try await renew()
            if let line = try await state.get(names.stopKey) {
                logger.error("sweep stopped; its unfinished tasks stay pending", metadata: ["reason": "\(line)"])
                throw SweepStopped(line: line)
            }
            let pending = counts.values.reduce(0) { $0 + ($1[.pending] ?? 0) }
            if registered && pending == 0 { break }
            try await Task.sleep(for: .seconds(pollInterval))
        }
        await finish(names)
        let counts = try store.taskCounts()
        let dead = counts.values.reduce(0) { $0 + ($1[.dead] ?? 0) }
        if dead > 0 {
            logger.error("tasks dead-lettered; run the coordinator again to retry them", metadata: ["tasks": "\(dead)"])
        }
        let calls = try store.callCounts()
        var summary = try EmbeddedSweep.summary(
            config: config, store: store, sweepID: sweepID, made: calls.ok, cached: 0, failed: calls.failed,
            budgetReached: counts.values.contains { ($0[.stopped] ?? 0) > 0 })
        summary.deadTasks = dead
        return summary
    }

    /// Tells the workers the sweep is finished, waits up to `queueDeletionWaitSeconds` for them to stop
    /// consuming, then deletes the task and retry queues (nothing in them is needed: the store has every
    /// task's outcome) and the name key if it still names this sweep. A failure here leaves queues behind,
    /// never the sweep unfinished.
    private func finish(_ names: ClusterNames) async {
        do {
            try await state.set(names.finishedKey, "1", ttlSeconds: Double(SharedResponseCache.timeToLiveSeconds))
            let queues = names.workQueues(config)
            let deadline = ContinuousClock.now + .seconds(queueDeletionWaitSeconds)
            while ContinuousClock.now < deadline {
                var consumers = 0
                for queue in names.taskQueues(config) {
                    consumers += try await transport.queueState(queue)?.consumers ?? 0
                }
                if consumers == 0 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            for queue in queues { try await transport.deleteQueue(queue) }
            let nameKey = ClusterNames.sweepKey(configName: config.name)
            if try await state.get(nameKey) == names.sweepID { try await state.delete([nameKey]) }
            logger.info("finished sweep's task queues deleted", metadata: ["queues": "\(queues.count)"])
        } catch {
            logger.warning("cannot delete the finished sweep's task queues", metadata: ["error": "\(error)"])
        }
    }

    /// Index ranges of consecutive items whose sizes add up to at most `limit` (an item bigger than `limit`
    /// goes alone), and one empty range for no items: a registration always has a last part.
    static func chunks(_ sizes: [Int], limit: Int) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var start = 0
        var bytes = 0
        for (index, size) in sizes.enumerated() {
            if index > start && bytes + size > limit {
                ranges.append(start..<index)
                (start, bytes) = (index, 0)
            }
            bytes += size
        }
        ranges.append(start..<sizes.count)
        return ranges
    }

    /// A restarted shared state (Redis) has lost the answers, the run id and the budget; they are set again
    /// from the coordinator and the store (the name key and the lease are renewed anyway).
    func restoreAfterStateLoss(_ names: ClusterNames, run: String) async throws {
        guard try await state.get(names.runKey) == nil else { return }
        logger.warning("the shared state lost the sweep; restoring it from the store")
        // The answers first: calls wait for the budget (a missing one fails closed), and must then find them.
        _ = try await preloadCache(names)
        try await state.set(names.runKey, run)
        if let limit = config.maxCostUSD {
            let budget = state.budget(namespace: names.sweepID, limitUSD: limit)
            try await budget.start(spentUSD: try store.spentUSD())
        }
    }

    /// Copies every successful answer in the store into the response cache; returns how many.
    func preloadCache(_ names: ClusterNames) async throws -> Int {
        let cache = SharedResponseCache(state: state, namespace: names.sweepID)
        var after = ""
        var count = 0
        while true {
            let page = try store.successfulResponses(after: after, limit: 500)
            guard let last = page.last else { return count }
            for entry in page { try await cache.set(entry.key, entry.answer.cacheValue) }
            count += page.count
            after = last.key
        }
    }
}
