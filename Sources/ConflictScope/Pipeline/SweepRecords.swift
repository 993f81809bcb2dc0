/// Where a sweep's rows go and where answers already paid for are found. The embedded run writes
/// straight to the store; a cluster worker collects each task's rows into one result message for
/// the aggregator, the store's only writer.
public protocol SweepRecords: Sendable {
    /// The answer to an identical request made before, if it succeeded.
    func successfulResponse(key: String) async throws -> ModelAnswer?
    /// Records a call. For a successful one, returns the answer that stands for its request key: the
    /// call's own, or the one recorded first when an identical call (another worker's duplicate) got there
    /// before it; the pipeline goes on with that one, so store, cache and follow-ups agree.
    @discardableResult
    func record(_ call: ResultStore.CallRecord) async throws -> ModelAnswer?
    func upsertOutline(_ outline: Outline) async throws
    func upsertScenario(_ scenario: Scenario) async throws
    func upsertUserPrompt(scenarioID: String, text: String) async throws
    func upsertJudgment(_ record: StoredJudgment) async throws
}

extension ResultStore: SweepRecords {}

/// A model's answer as the pipeline uses it: its text, and whether it was cut off at the token limit.
public struct ModelAnswer: Sendable, Equatable {
    public var text: String
    public var truncated: Bool

    public init(text: String, truncated: Bool = false) {
        self.text = text
        self.truncated = truncated
    }

    /// Came back, but cannot be an answer: cut off, or empty. Re-asked, then stored as invalid.
    public var isUnusable: Bool { truncated || text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }

    /// One string for a cache that holds strings (the cluster's Redis): the text itself, or for a truncated
    /// answer the text after a marker no model writes.
    public var cacheValue: String { truncated ? Self.truncatedMarker + text : text }

    public init(cacheValue: String) {
        if cacheValue.hasPrefix(Self.truncatedMarker) {
            self.init(text: String(cacheValue.dropFirst(Self.truncatedMarker.count)), truncated: true)
        } else {
            self.init(text: cacheValue)
        }
    }

    static let truncatedMarker = "\u{0}truncated\u{0}"
}

/// The rows one task wrote, as a cluster worker sends them to the aggregator.
public struct ResultBatch: Sendable, Equatable, Codable {
    public var calls: [ResultStore.CallRecord] = []
    public var outlines: [Outline] = []
    public var scenarios: [Scenario] = []
    public var userPrompts: [UserPrompt] = []
    public var judgments: [StoredJudgment] = []

    public struct UserPrompt: Sendable, Equatable, Codable {
        public var scenarioID: String
        public var text: String

        public init(scenarioID: String, text: String) {
            self.scenarioID = scenarioID
            self.text = text
        }
    }

    public init() {}
}

/// How a task ended, with the tasks it led to.
public struct TaskOutcome: Sendable, Equatable, Codable {
    public var taskID: String
    public var state: TaskState
    public var followUps: [PipelineTask]

    public init(taskID: String, state: TaskState, followUps: [PipelineTask]) {
        self.taskID = taskID
        self.state = state
        self.followUps = followUps
    }
}

/// A task's row in the store's task table (cluster runs).
public enum TaskState: String, Sendable, Codable, CaseIterable {
    /// Published and not finished yet.
    case pending
    /// Finished: its rows are stored.
    case done
    /// Finished with a call that failed (its rows are stored, that answer `missing`); a resumed sweep
    /// publishes it again, so the failed call is asked again, as an embedded rerun does.
    case incomplete
    /// Not done because the sweep budget was reached; a resumed sweep publishes it again.
    case stopped
    /// Failed repeatedly for reasons other than the provider (and was dead-lettered); a resumed
    /// sweep publishes it again.
    case dead
}
