/// A stage-1 outline: a context and an opportunity to act, written under one template.
public struct Outline: Sendable, Equatable, Codable {
    public var id: String
    public var valueSet: String
    public var value1: String
    public var value2: String
    public var round: Int
    public var template: ScenarioTemplate
    public var context: String
    /// The action only, without its benefits.
    public var actionOpportunity: String
    /// What taking the action achieves, and what it costs.
    public var good: String
    public var harm: String
    /// Survived deduplication (and the per-pair target count).
    public var kept: Bool

    public var actSide: ActSide { template.actSide }

    /// The text deduplication embeds (the paper's context + " " + action opportunity).
    public var embeddingText: String { "\(context) \(actionOpportunity)" }
}

public enum ScenarioStatus: String, Sendable, Codable, CaseIterable {
    /// Passed all six filter checks (or the filter is off).
    case kept
    /// Failed at least one check.
    case rejected
    /// A filter call failed or could not be read: neither kept nor rejected; a re-run retries it.
    case undecided
    /// The stage-2 answer could not be used after its re-asks; kept with its raw text, never evaluated.
    case invalid
}

/// The six filter checks; value guidance takes two calls, one per value.
public enum FilterCheckName: String, Sendable, Codable, CodingKeyRepresentable, CaseIterable {
    case realism, specificity, feasibility
    case valueGuidance = "value_guidance"
    case impossibility
    case genuineDilemma = "genuine_dilemma"

    /// The check's key in the paper's released `check_results`.
    public var paperName: String {
        switch self {
        case .realism: "scenario_realism"
        case .specificity: "scenario_groundedness"
        case .feasibility: "action_feasibility"
        case .valueGuidance: "value_guidedness"
        case .impossibility: "scenario_impossibility"
        case .genuineDilemma: "scenario_ambiguity"
        }
    }

    public init?(paperName: String) {
        guard let name = Self.allCases.first(where: { $0.paperName == paperName }) else { return nil }
        self = name
    }
}

/// One check's verdict: true or false, or nil when its call failed or its answer could not be read.
public struct FilterCheck: Sendable, Equatable, Codable {
    public var pass: Bool?
    /// The judge's answer (both answers, one per line, for value guidance).
    public var raw: String?

    public init(pass: Bool?, raw: String?) {
        self.pass = pass
        self.raw = raw
    }
}

/// A detailed stage-2 scenario.
public struct Scenario: Sendable, Equatable, Codable {
    public var id: String
    public var outlineID: String
    public var valueSet: String
    public var value1: String
    public var value2: String
    /// Nil for scenarios of the `direct` ablation (no templates) and imported ones without one.
    public var template: ScenarioTemplate?
    /// Which action takes the action opportunity, when known.
    public var actSide: ActSide?
    public var domain: ScenarioDomain?
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
    /// The six checks, when the filter ran.
    public var checks: [FilterCheckName: FilterCheck]?
    /// The unusable stage-2 answer of an `invalid` scenario.
    public var raw: String?

    public init(
        id: String, outlineID: String, valueSet: String, value1: String, value2: String,
        template: ScenarioTemplate? = nil, actSide: ActSide? = nil, domain: ScenarioDomain? = nil, description: String,
        persona: String, background: String, goal: String, action1: String, action2: String, consequence1: String,
        consequence2: String, generatingModel: String, status: ScenarioStatus,
        checks: [FilterCheckName: FilterCheck]? = nil, raw: String? = nil
    ) {
        self.id = id
        self.outlineID = outlineID
        self.valueSet = valueSet
        self.value1 = value1
        self.value2 = value2
        self.template = template
        self.actSide = actSide ?? template?.actSide
        self.domain = domain
        self.description = description
        self.persona = persona
        self.background = background
        self.goal = goal
        self.action1 = action1
        self.action2 = action2
        self.consequence1 = consequence1
        self.consequence2 = consequence2
        self.generatingModel = generatingModel
        self.status = status
        self.checks = checks
        self.raw = raw
    }

    /// `outlineID` of scenarios imported from the paper's released data.
    public static let importedOutlineID = "import"

    /// The user's profile as one text (the paper's user_prompt column, and what the user model plays).
    public var profile: String { "\(persona)\n\(background)\nGoal: \(goal)" }
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
    /// The conversation the judgment rests on (open-ended: user and target turns; multiple choice: the
    /// question and the answer), for transcripts and human validation.
    public var transcript: [ChatMessage]?

    public init(
        id: String, judgment: Judgment, action1IsA: Bool, likert: Int? = nil, raw: String? = nil,
        reasoning: String? = nil, transcript: [ChatMessage]? = nil
    ) {
        self.id = id
        self.judgment = judgment
        self.action1IsA = action1IsA
        self.likert = likert
        self.raw = raw
        self.reasoning = reasoning
        self.transcript = transcript
    }
}
