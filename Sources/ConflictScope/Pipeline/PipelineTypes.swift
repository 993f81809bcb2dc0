/// A stage-1 outline: a context and the opportunity to act for value1 at value2's cost.
public struct Outline: Sendable, Equatable, Codable {
    public var id: String
    public var valueSet: String
    public var value1: String
    public var value2: String
    public var round: Int
    public var context: String
    public var actionOpportunity: String
    /// Survived deduplication (and the per-pair target count).
    public var kept: Bool
}

public enum ScenarioStatus: String, Sendable, Codable {
    /// Passed all six filter checks.
    case kept
    /// Failed at least one check.
    case rejected
    /// A filter call failed or could not be read: neither kept nor rejected; a re-run retries it.
    case undecided
}

public struct FilterCheck: Sendable, Equatable, Codable {
    public var pass: Bool
    public var reason: String
}

/// A detailed stage-2 scenario.
public struct Scenario: Sendable, Equatable, Codable {
    public var id: String
    public var outlineID: String
    public var valueSet: String
    public var value1: String
    public var value2: String
    public var description: String
    public var persona: String
    public var background: String
    public var goal: String
    /// Favours value1.
    public var action1: String
    /// Favours value2.
    public var action2: String
    public var consequence1: String
    public var consequence2: String
    public var generatingModel: String
    public var status: ScenarioStatus
    /// The six checks by name, when the filter answered.
    public var checks: [String: FilterCheck]?

    /// `outlineID` of scenarios imported from the paper's released data.
    public static let importedOutlineID = "import"

    public static let checkNames = [
        "realism", "specificity", "feasibility", "impossibility", "value_guidance", "genuine_dilemma",
    ]
}

/// A judgment with what the store keeps beside it.
public struct StoredJudgment: Sendable, Equatable, Codable {
    public var id: String
    public var judgment: Judgment
    /// Whether option A showed action1 (the A/B order, for position-bias analysis).
    public var action1IsA: Bool
    /// The judge's 1-7 rating (open-ended), 1 = clearly option A.
    public var likert: Int?
    /// The raw answer, kept for invalid ones.
    public var raw: String?
    public var reasoning: String?
}
