import Foundation

/// Stage 2: an outline becomes a full scenario (description, user profile, the two actions and their
/// consequences, a domain label). An answer that cannot be used is re-asked, then stored as `invalid`
/// with its raw text and never evaluated.
struct ScenarioDetailsStage {
    let runner: SweepRunner
    var config: SweepConfig { runner.config }

    /// A scenario as a writer answers it (stage 2, and the single-stage and direct ablations).
    struct Answer: Decodable {
        var description: LooseText?
        var persona: LooseText?
        var background: LooseText?
        var goal: LooseText?
        var action1: LooseText?
        var action2: LooseText?
        var consequence1: LooseText?
        var consequence2: LooseText?
        var domain: LooseText?
        /// Direct ablation only: which action takes an action.
        var acting: LooseText?

        var isUsable: Bool { description?.trimmed != nil && action1?.trimmed != nil && action2?.trimmed != nil }

        func scenario(
            id: String, outlineID: String, pair: GenerationStage.Pair, template: ScenarioTemplate?, actSide: ActSide?,
            generatingModel: String
        ) -> Scenario? {
            guard isUsable else { return nil }
            return Scenario(
                id: id, outlineID: outlineID, valueSet: pair.valueSet, value1: pair.value1, value2: pair.value2,
                template: template, actSide: actSide, domain: domain.map { ScenarioDomain(label: $0.value) },
                description: description?.trimmed ?? "", persona: persona?.trimmed ?? "",
                background: background?.trimmed ?? "", goal: goal?.trimmed ?? "", action1: action1?.trimmed ?? "",
                action2: action2?.trimmed ?? "", consequence1: consequence1?.trimmed ?? "",
                consequence2: consequence2?.trimmed ?? "", generatingModel: generatingModel, status: .undecided)
        }
    }

    /// The domains a writer may label a scenario with, as the prompts list them.
    static let domainList = ScenarioDomain.allCases.map(\.rawValue).joined(separator: ", ")

    /// Which action takes the action opportunity under `template` (action1 always favours value 1).
    static func actionRoles(_ template: ScenarioTemplate) -> String {
        template.isSideEffect
            ? "action1 takes the action opportunity, which favours value 1; action2 holds back from it, which "
                + "favours value 2."
            : "action1 holds back from the action opportunity, which favours value 1 (taking it would violate "
                + "value 1); action2 takes it, which favours value 2."
    }

    func run(_ outline: Outline, taskID: String, records: any SweepRecords) async throws -> Scenario? {
        var fields = runner.definitions(outline.valueSet, outline.value1, outline.value2)
        fields["context"] = outline.context
        fields["action_opportunity"] = outline.actionOpportunity
        fields["good"] = outline.good
        fields["harm"] = outline.harm
        fields["action_roles"] = Self.actionRoles(outline.template)
        fields["domains"] = Self.domainList
        let pair = GenerationStage.Pair(valueSet: outline.valueSet, value1: outline.value1, value2: outline.value2)
        let id = "s/\(outline.id)"
        let model = config.roles.generator.model
        let asked = try await runner.ask(
            .scenarioDetails, SweepRunner.CallSettings(config.roles.generator), .scenario, fields, taskID: taskID,
            records: records
        ) { raw in
            AnswerParsing.decode(Answer.self, from: raw)?.scenario(
                id: id, outlineID: outline.id, pair: pair, template: outline.template, actSide: nil,
                generatingModel: model)
        }
        var scenario: Scenario
        switch asked {
        case .failed:
            return nil
        case .invalid(let raw):
            scenario = Scenario(
                id: id, outlineID: outline.id, valueSet: outline.valueSet, value1: outline.value1,
                value2: outline.value2, template: outline.template, description: "", persona: "", background: "",
                goal: "", action1: "", action2: "", consequence1: "", consequence2: "", generatingModel: model,
                status: .invalid, raw: raw)
        case .parsed(let parsed, _):
            scenario = parsed
            scenario.status = config.generation.filter ? .undecided : .kept
        }
        try await records.upsertScenario(scenario)
        return scenario
    }
}
