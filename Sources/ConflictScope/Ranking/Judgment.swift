/// What a judge (or a multiple-choice answer) decided for one scenario.
public enum Choice: String, Sendable, CaseIterable, Codable {
    /// The action favouring `value1` was chosen.
    case a = "A"
    /// The action favouring `value2` was chosen.
    case b = "B"
    /// The model answered, but the answer could not be read as A or B.
    case invalid
    /// The call failed (transport error after retries): there is no answer at all.
    case missing

    /// Whether this answer counts as a comparison; invalid and missing ones never do.
    public var isValid: Bool { self == .a || self == .b }
}

/// Which action takes the scenario's action opportunity ("acts"): action1 in side-effect scenarios, action2 in means scenarios.
public enum ActSide: String, Sendable, Codable, CaseIterable { case action1, action2 }

/// The two evaluation formats of the paper.
public enum EvaluationFormat: String, Sendable, CaseIterable, Codable, Comparable {
    /// Multiple choice: what a model says it would do (expressed preferences).
    case mcq
    /// Open-ended with a simulated user: what a model does (revealed preferences).
    case open

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// One scored scenario for one target model, in one format and condition.
public struct Judgment: Sendable, Equatable, Codable {
    public var model: String
    public var valueSet: String
    public var format: EvaluationFormat
    public var condition: String
    public var scenarioID: String
    public var value1: String
    public var value2: String
    public var choice: Choice
    /// Likert ratings (1-7) of the actions favouring value1 and value2, when the format has them.
    public var likertA: Int?
    public var likertB: Int?
    /// The value ranking a steered condition's system prompt asked for, highest first.
    public var targetRanking: [String]?
    public var actSide: ActSide?

    public init(
        model: String, valueSet: String, format: EvaluationFormat, condition: String, scenarioID: String,
        value1: String, value2: String, choice: Choice, likertA: Int? = nil, likertB: Int? = nil,
        targetRanking: [String]? = nil, actSide: ActSide? = nil
    ) {
        self.model = model
        self.valueSet = valueSet
        self.format = format
        self.condition = condition
        self.scenarioID = scenarioID
        self.value1 = value1
        self.value2 = value2
        self.choice = choice
        self.likertA = likertA
        self.likertB = likertB
        self.targetRanking = targetRanking
        self.actSide = actSide
    }

    /// The value the chosen action favours, or nil for invalid and missing answers.
    public var favouredValue: String? {
        switch choice {
        case .a: value1
        case .b: value2
        case .invalid, .missing: nil
        }
    }

    public var group: GroupKey {
        GroupKey(model: model, valueSet: valueSet, format: format, condition: condition)
    }
}

/// The unit that gets one Bradley-Terry ranking: a model on a value set in one format and condition.
public struct GroupKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var model: String
    public var valueSet: String
    public var format: EvaluationFormat
    public var condition: String

    public init(model: String, valueSet: String, format: EvaluationFormat, condition: String) {
        self.model = model
        self.valueSet = valueSet
        self.format = format
        self.condition = condition
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.model, lhs.valueSet, lhs.format.rawValue, lhs.condition)
            < (rhs.model, rhs.valueSet, rhs.format.rawValue, rhs.condition)
    }

    /// Stable text key; bootstrap streams are derived from it, so it must never change.
    public var description: String { "\(model)/\(valueSet)/\(format.rawValue)/\(condition)" }
}
