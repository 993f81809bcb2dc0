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

    /// The tasks of the config's plan that the store never registered: those a config extending its sweep adds
    /// (round 0 of a new value set's pairs, the evaluations of kept scenarios by a new target, condition or format).
    public func unregistered(store: ResultStore) throws -> [PipelineTask] {
        let imported = Set(try store.importedKeptScenarios().map(\.id))
        var planned = try initial(store: store)
        for scenario in try store.scenarios()
        where scenario.status == .kept && !imported.contains(scenario.id)
            && config.valueSet(named: scenario.valueSet) != nil
        {
            // With its user prompt stored, a new target's open-ended task starts from it.
            planned += evaluations(scenario, importedUserPrompt: try store.userPrompt(scenarioID: scenario.id))
        }
        let registered = try store.registeredTaskIDs()
        return planned.filter { !registered.contains($0.id) }
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
