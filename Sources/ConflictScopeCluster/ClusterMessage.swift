import ConflictScope
import Foundation

/// What the aggregator consumes from the results queue (JSON bodies).
public enum ClusterMessage: Sendable, Equatable, Codable {
    /// The coordinator's tasks of one run (`id` is fresh per run), registered as pending before
    /// they are published.
    case register(id: String, tasks: [PipelineTask])
    /// A worker finished a task (or stopped it at the budget, or gave up on it): its rows and outcome.
    case finished(TaskOutcome, ResultBatch)

    public func encoded() throws -> [UInt8] { Array(try JSONEncoder().encode(self)) }

    public static func decode(_ body: [UInt8]) throws -> ClusterMessage {
        try JSONDecoder().decode(ClusterMessage.self, from: Data(body))
    }
}
