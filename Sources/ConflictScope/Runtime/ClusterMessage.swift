import Foundation

/// What the aggregator consumes from the results queue (JSON bodies).
public enum ClusterMessage: Sendable, Equatable, Codable {
    /// Part of the coordinator's tasks of one run (`id` is fresh per run), registered as pending before
    /// they are published; the run's registration is complete with its `last` part.
    case register(id: String, tasks: [PipelineTask], last: Bool)
    /// A worker finished a task (or stopped it at the budget, or gave up on it): its rows and outcome.
    case finished(TaskOutcome, ResultBatch)

    public func encoded() throws -> [UInt8] { Array(try JSONEncoder().encode(self)) }

    public static func decode(_ body: [UInt8]) throws -> ClusterMessage {
        try JSONDecoder().decode(ClusterMessage.self, from: Data(body))
    }
}

extension ClusterMessage {
    /// Why this message cannot come from a coordinator or worker of a sweep of `config` (in our own
    /// words), or nil. The aggregator dead-letters such a message instead of storing it: a forged
    /// `pending` outcome, for one, would keep the coordinator waiting for ever.
    public func problem(in config: SweepConfig) -> String? {
        switch self {
        case .register(let id, let tasks, _):
            guard !id.isEmpty else { return "a registration without an id" }
            return tasks.lazy.compactMap { $0.problem(in: config) }.first.map { "a registered task names \($0)" }
        case .finished(let outcome, _):
            guard outcome.state != .pending else { return "an outcome that is still pending" }
            guard let stage = PipelineTask.stage(ofID: outcome.taskID), stage.isTask else {
                return "an outcome of no known stage"
            }
            return outcome.followUps.lazy.compactMap { $0.problem(in: config) }.first.map { "a follow-up names \($0)" }
        }
    }
}
