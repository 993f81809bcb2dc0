/// A unit of pipeline work. Tasks carry what they need, so a queue can hand them to any worker.
public enum PipelineTask: Sendable, Equatable {
    /// Stage 1 for one value pair and round: one call per severity template, then deduplication.
    case generate(valueSet: String, value1: String, value2: String, round: Int)
    /// Stage 2: an outline becomes a detailed scenario.
    case detail(Outline)
    /// The six filter checks of a scenario.
    case filter(Scenario)
    /// The simulated user's opening message, shared by every target and condition.
    case userPrompt(Scenario)
    /// A target's multiple-choice answer.
    case multipleChoice(Scenario, target: String, condition: String)
    /// A target's open-ended reply to the user's message, then the judge's reading of it.
    case openEnded(Scenario, target: String, condition: String)

    /// Deterministic id: the key of every random choice the task makes and of the rows it writes.
    public var id: String {
        switch self {
        case .generate(let set, let value1, let value2, let round): "generate/\(set)/\(value1)|\(value2)/r\(round)"
        case .detail(let outline): "detail/\(outline.id)"
        case .filter(let scenario): "filter/\(scenario.id)"
        case .userPrompt(let scenario): "user/\(scenario.id)"
        case .multipleChoice(let scenario, let target, let condition): "mcq/\(scenario.id)/\(target)/\(condition)"
        case .openEnded(let scenario, let target, let condition): "open/\(scenario.id)/\(target)/\(condition)"
        }
    }
}

/// Hands out tasks and collects their follow-ups until no work is left. The embedded run uses the
/// in-process queue; the cluster supplies a broker-backed one.
public protocol TaskQueue: Sendable {
    func drain(_ initial: [PipelineTask], handle: @escaping @Sendable (PipelineTask) async -> [PipelineTask]) async
}

/// Runs tasks concurrently in this process, at most `maxInFlight` at once (calls are further limited
/// per model by the rate limiter).
public struct InProcessTaskQueue: TaskQueue {
    public var maxInFlight: Int

    public init(maxInFlight: Int = 256) { self.maxInFlight = maxInFlight }

    public func drain(_ initial: [PipelineTask], handle: @escaping @Sendable (PipelineTask) async -> [PipelineTask])
        async
    {
        var pending = initial
        await withTaskGroup(of: [PipelineTask].self) { group in
            var running = 0
            while true {
                while running < maxInFlight, let task = pending.popLast() {
                    group.addTask { await handle(task) }
                    running += 1
                }
                guard running > 0, let followUps = await group.next() else { break }
                running -= 1
                pending.append(contentsOf: followUps.reversed())
            }
        }
    }
}

/// Admits calls to a model. The in-process limiter bounds concurrency per model; the cluster's
/// enforces requests and tokens per minute across workers.
public protocol RateLimiter: Sendable {
    func acquire(model: String, estimatedTokens: Int) async
    func release(model: String, usedTokens: Int) async
}

/// At most `limit(model)` calls in flight per model, first come first served.
public actor InProcessRateLimiter: RateLimiter {
    private let limits: [String: Int]
    private var inFlight: [String: Int] = [:]
    private var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]

    /// `limits`: concurrency per model name; models not listed get 8.
    public init(limits: [String: Int]) { self.limits = limits }

    public func acquire(model: String, estimatedTokens: Int) async {
        if inFlight[model, default: 0] < limits[model, default: 8] {
            inFlight[model, default: 0] += 1
            return
        }
        await withCheckedContinuation { waiting[model, default: []].append($0) }
    }

    public func release(model: String, usedTokens: Int) {
        if var queue = waiting[model], !queue.isEmpty {
            // Hand the slot straight to the next waiter.
            let next = queue.removeFirst()
            waiting[model] = queue
            next.resume()
        } else {
            inFlight[model, default: 0] -= 1
        }
    }
}
