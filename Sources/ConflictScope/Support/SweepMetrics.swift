import Metrics

/// Every metric the roles report, named in one place (docs/operations.md explains each). They go
/// through swift-metrics: a cluster role bootstraps the Prometheus backend and serves them at
/// /metrics; without a backend (an embedded run) they cost nothing.
public enum SweepMetrics {
    /// What happened to a task message on a worker.
    public enum TaskEvent: String, Sendable {
        case consumed, acked, retried
        case deadLettered = "dead_lettered"
    }

    /// Tasks still running at a worker's drain deadline, cancelled and left to redelivery.
    public static func drainCancelled(_ tasks: Int) {
        Counter(label: "conflictscope_tasks_drain_cancelled_total").increment(by: Int64(tasks))
    }

    public static func task(_ event: TaskEvent, stage: String, model: String) {
        Counter(label: "conflictscope_tasks_\(event.rawValue)_total", dimensions: [("stage", stage), ("model", model)])
            .increment()
    }

    /// An LLM call that ended: `status` is ok or failed; `seconds` covers every attempt.
    static func call(model: String, status: String, seconds: Double) {
        Counter(label: "conflictscope_llm_calls_total", dimensions: [("model", model), ("status", status)]).increment()
        Timer(label: "conflictscope_llm_call_duration_seconds", dimensions: [("model", model), ("status", status)])
            .recordSeconds(seconds)
    }

    /// A call answered from the response cache or shared with an identical call in flight.
    static func cachedCall(model: String) {
        Counter(label: "conflictscope_llm_calls_total", dimensions: [("model", model), ("status", "cached")])
            .increment()
    }

    static func rateLimitWait(model: String, seconds: Double) {
        Timer(label: "conflictscope_rate_limit_wait_seconds", dimensions: [("model", model)]).recordSeconds(seconds)
    }

    /// A provider answered 429.
    static func rateLimited(model: String) {
        Counter(label: "conflictscope_rate_limited_total", dimensions: [("model", model)]).increment()
    }

    static func usage(model: String, inputTokens: Int, outputTokens: Int, costUSD: Double) {
        Counter(label: "conflictscope_tokens_total", dimensions: [("model", model), ("direction", "input")])
            .increment(by: inputTokens)
        Counter(label: "conflictscope_tokens_total", dimensions: [("model", model), ("direction", "output")])
            .increment(by: outputTokens)
        FloatingPointCounter(label: "conflictscope_cost_usd_total", dimensions: [("model", model)])
            .increment(by: costUSD)
    }

    /// The aggregator stored a task's result.
    public static func resultStored(stage: String) {
        Counter(label: "conflictscope_results_stored_total", dimensions: [("stage", stage)]).increment()
    }

    public static func refit(seconds: Double) {
        Counter(label: "conflictscope_ranking_refits_total").increment()
        Timer(label: "conflictscope_ranking_refit_duration_seconds").recordSeconds(seconds)
    }

    /// The coordinator's view of the task table, summed over stages.
    public static func tasks(_ counts: [String: [TaskState: Int]]) {
        for state in TaskState.allCases {
            let total = counts.values.reduce(0) { $0 + ($1[state] ?? 0) }
            Gauge(label: "conflictscope_tasks", dimensions: [("state", state.rawValue)]).record(total)
        }
    }

    public static func ready(_ ready: Bool) {
        Gauge(label: "conflictscope_ready").record(ready ? 1 : 0)
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    public var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }

    /// The duration in whole microseconds (the rate limiters' unit).
    public var inMicroseconds: Int {
        Int(components.seconds) * 1_000_000 + Int(components.attoseconds / 1_000_000_000_000)
    }
}

extension Timer {
    fileprivate func recordSeconds(_ seconds: Double) { recordNanoseconds(Int64(seconds * 1e9)) }
}
