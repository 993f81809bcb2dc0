import ConflictScope
import Foundation

/// What `status` adds for a cluster sweep: queue depths, rate-limit settings and the aggregator's
/// live rankings. Progress by stage comes from the store (`SweepStatus.tasks`).
public struct ClusterStatus: Sendable, JSONRepresentable {
    public struct Queue: Sendable, Equatable {
        public var name: String
        /// Messages ready for delivery (not counting those delivered and not yet acknowledged).
        public var ready: Int
        public var consumers: Int
    }

    public var queues: [Queue] = []
    /// The aggregator's live rankings (JSON) as it published them, or nil before its first refit.
    public var live: String?
    /// Each limited model's limits, as workers enforce them.
    public var rateLimits: [String: ModelRateLimit] = [:]
    /// Requests and estimated tokens admitted per limited model, this minute and the last.
    public var usage: [String: RateUse] = [:]
    /// Servers that could not be reached in time.
    public var problems: [String] = []

    /// Reads the broker and Redis, giving up on either after `timeout` seconds (then closing both).
    public static func read(
        config: SweepConfig, sweepID: String, broker: BrokerConnection, redis: RedisClient, timeout: Double = 3
    ) async -> ClusterStatus {
        let names = ClusterNames(sweepID: sweepID, sweepName: config.name)
        let watchdog = Task {
            try await Task.sleep(for: .seconds(timeout))
            await broker.close()
            redis.shutdown()
        }
        defer { watchdog.cancel() }
        var status = ClusterStatus()
        status.rateLimits = ModelRateLimit.limits(of: config).filter { $0.value.isLimited }
        do {
            for queue in names.taskQueues(config) + [names.results, names.dead] {
                let state = try await broker.queueState(queue)
                status.queues.append(Queue(name: queue, ready: state?.messages ?? 0, consumers: state?.consumers ?? 0))
            }
        } catch {
            status.problems.append("RabbitMQ: \(error)")
        }
        do {
            let limiter = RedisRateLimiter(redis: redis, namespace: sweepID, limits: status.rateLimits)
            for model in status.rateLimits.keys { status.usage[model] = try await limiter.usage(model: model) }
            status.live = try await redis.get(names.liveKey)
        } catch {
            status.problems.append("Redis: \(error)")
        }
        return status
    }

    public var json: JSONValue {
        .object([
            (
                "queues",
                .array(
                    queues.map {
                        .object([
                            ("name", .string($0.name)), ("ready", .int($0.ready)), ("consumers", .int($0.consumers)),
                        ])
                    })
            ),
            (
                "rate_limits",
                .array(
                    rateLimits.keys.sorted().map { model in
                        let limit = rateLimits[model]!
                        let used = usage[model]
                        return .object([
                            ("model", .string(model)), ("account", .string(limit.account)),
                            ("rpm", limit.requestsPerMinute.map { .int($0) } ?? .null),
                            ("tpm", limit.tokensPerMinute.map { .int($0) } ?? .null),
                            ("input_tpm", limit.inputTokensPerMinute.map { .int($0) } ?? .null),
                            ("output_tpm", limit.outputTokensPerMinute.map { .int($0) } ?? .null),
                            ("requests_this_minute", .int(used?.requests ?? 0)),
                            ("tokens_this_minute", .int(used?.tokens ?? 0)),
                            ("requests_last_minute", .int(used?.previousRequests ?? 0)),
                            ("tokens_last_minute", .int(used?.previousTokens ?? 0)),
                        ])
                    })
            ),
            ("live", live.map { .serialized($0) } ?? .null),
            ("problems", .array(problems.map { .string($0) })),
        ])
    }

    public func table() -> String {
        var out = "Cluster\n"
        for problem in problems { out += "  unreachable: \(problem)\n" }
        for queue in queues { out += "  queue \(queue.name): \(queue.ready) ready, \(queue.consumers) consumers\n" }
        for model in rateLimits.keys.sorted() {
            let limit = rateLimits[model]!
            let parts = [
                limit.requestsPerMinute.map { "\($0) rpm" }, limit.tokensPerMinute.map { "\($0) tpm" },
                limit.inputTokensPerMinute.map { "\($0) input tpm" },
                limit.outputTokensPerMinute.map { "\($0) output tpm" },
            ].compactMap { $0 }
            let used = usage[model]
            out +=
                "  rate limit \(model) (\(limit.account)): \(parts.joined(separator: ", ")); last minute "
                + "\(used?.previousRequests ?? 0) requests, \(used?.previousTokens ?? 0) tokens; this minute "
                + "\(used?.requests ?? 0), \(used?.tokens ?? 0)\n"
        }
        if let live, let object = try? JSONSerialization.jsonObject(with: Data(live.utf8)) as? [String: Any] {
            out +=
                "  live rankings: \(object["judgments"] ?? 0) judgments, \(object["refits"] ?? 0) refits, "
                + "updated \(object["updated_at"] ?? "")\n"
        }
        return out
    }
}
