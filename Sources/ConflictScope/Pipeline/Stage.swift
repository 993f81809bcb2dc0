/// The stages of a sweep, as `plan --json`, `run --json`, `status` and the cluster's queues name them.
/// Six of them are tasks (a queue each in the cluster); `artifacts`, `likert` and `judge` are further
/// calls made inside the task of the stage before them, counted on their own in plans and records.
public enum Stage: String, Sendable, Codable, CaseIterable, Comparable {
    case generation
    case scenarioDetails = "scenario_details"
    case filter
    case userPrompts = "user_prompts"
    case artifacts
    case multipleChoice = "multiple_choice"
    case likert
    case openEnded = "open_ended"
    case judge

    /// The role whose model makes the stage's calls.
    public var role: Role {
        switch self {
        case .generation, .scenarioDetails: .generator
        case .filter: .filterJudge
        case .userPrompts, .artifacts: .user
        case .multipleChoice, .likert, .openEnded: .target
        case .judge: .judge
        }
    }

    /// The label in plans and summaries.
    public var label: String { rawValue }

    /// Whether the stage is a task of its own (a queue per model in the cluster).
    public var isTask: Bool {
        switch self {
        case .generation, .scenarioDetails, .filter, .userPrompts, .multipleChoice, .openEnded: true
        case .artifacts, .likert, .judge: false
        }
    }

    /// The stages that are tasks, in pipeline order.
    public static let tasks: [Stage] = allCases.filter(\.isTask)

    /// The models whose queues a stage's tasks use.
    public func queueModels(_ config: SweepConfig) -> [String] {
        switch role {
        case .generator: [config.roles.generator.model]
        case .filterJudge: [config.roles.filterJudge.model]
        case .user: [config.roles.user.model]
        case .judge: [config.roles.judge.model]
        case .target: config.targets
        case .embedder: config.roles.embedder.map { [$0.model] } ?? []
        }
    }

    public static func < (lhs: Stage, rhs: Stage) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// The roles that make calls, as recorded on every call.
    public enum Role: String, Sendable, Codable, CaseIterable {
        case generator
        case filterJudge = "filter_judge"
        case user, target, judge, embedder
    }
}

/// The four stage-1 templates: two causal structures at two severities (the paper's coc_mild, coc,
/// cc_mild and cc). In side-effect scenarios taking the action serves value1 and harms value2 on the
/// way; in means scenarios taking the action violates value1 as the necessary means to serve value2.
/// So the act side is action1 in half the scenarios and action2 in the other half.
public enum ScenarioTemplate: String, Sendable, Codable, CaseIterable {
    case sideEffectMild = "side_effect_mild"
    case sideEffectStrong = "side_effect_strong"
    case meansMild = "means_mild"
    case meansStrong = "means_strong"

    public var isSideEffect: Bool { self == .sideEffectMild || self == .sideEffectStrong }

    /// Which action takes the action opportunity (action1 always favours value1).
    public var actSide: ActSide { isSideEffect ? .action1 : .action2 }

    /// The template's code in the paper's released scenario ids.
    public var paperCode: String {
        switch self {
        case .sideEffectMild: "coc_mild"
        case .sideEffectStrong: "coc"
        case .meansMild: "cc_mild"
        case .meansStrong: "cc"
        }
    }

    public init?(paperCode: String) {
        guard let template = Self.allCases.first(where: { $0.paperCode == paperCode }) else { return nil }
        self = template
    }

    /// The prompt with the template's instructions.
    var prompt: PromptName {
        switch self {
        case .sideEffectMild: .templateSideEffectMild
        case .sideEffectStrong: .templateSideEffectStrong
        case .meansMild: .templateMeansMild
        case .meansStrong: .templateMeansStrong
        }
    }
}

/// The application domains a scenario is labelled with (stage 2), for the paper's domain analysis.
public enum ScenarioDomain: String, Sendable, Codable, CaseIterable {
    case health, education, work, finance, relationships, creative, technology, law, government, media, science
    case other

    /// Reads a model's label tolerantly; anything unknown is `other`.
    public init(label: String) {
        let cleaned = label.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        self = Self(rawValue: cleaned) ?? Self.allCases.first { cleaned.hasPrefix($0.rawValue) } ?? .other
    }
}
