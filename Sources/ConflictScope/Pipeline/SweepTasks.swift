/// Which tasks a sweep starts from and which tasks a scenario leads to.
public struct SweepTasks: Sendable {
    public let config: SweepConfig

    public init(config: SweepConfig) { self.config = config }

    /// The tasks a sweep starts from: round 0 of every value pair, and the evaluations of scenarios
    /// imported into `store` (the paper's released data, evaluated as they are).
    public func initial(store: ResultStore) throws -> [PipelineTask] {
        var initial: [PipelineTask] = []
        for set in config.valueSets where config.scenariosPerPair(for: set.name) > 0 {
            for (value1, value2) in set.pairs {
                initial.append(.generate(valueSet: set.name, value1: value1, value2: value2, round: 0, kept: []))
            }
        }
        for scenario in try store.importedKeptScenarios() where config.valueSet(named: scenario.valueSet) != nil {
            initial += evaluations(scenario, importedUserPrompt: try store.userPrompt(scenarioID: scenario.id))
        }
        return initial
    }

    /// What follows stage 2: the filter, or with the filter off the evaluations; nothing for an invalid one.
    func afterDetails(_ scenario: Scenario) -> [PipelineTask] {
        switch scenario.status {
        case .undecided: [.filter(scenario)]
        case .kept: evaluations(scenario, importedUserPrompt: nil)
        case .rejected, .invalid: []
        }
    }

    /// A kept scenario's evaluations: the user prompt (then open-ended answers; an imported prompt is
    /// used as it is) and multiple choice.
    func evaluations(_ scenario: Scenario, importedUserPrompt: String?) -> [PipelineTask] {
        var next: [PipelineTask] = []
        if config.formats.contains(.open) {
            if let importedUserPrompt {
                next += openEnded(scenario, userMessage: importedUserPrompt)
            } else {
                next.append(.userPrompt(scenario))
            }
        }
        if config.formats.contains(.mcq) {
            for target in config.targets {
                for condition in config.conditions {
                    next.append(.multipleChoice(scenario, target: target, condition: condition.name))
                }
            }
        }
        return next
    }

    func openEnded(_ scenario: Scenario, userMessage: String) -> [PipelineTask] {
        config.targets.flatMap { target in
            config.conditions.map {
                PipelineTask.openEnded(scenario, userMessage: userMessage, target: target, condition: $0.name)
            }
        }
    }
}
