extension PipelineTask {
    /// Why this task cannot be one of a sweep of `config` (a stray or forged message), in our own words,
    /// or nil when it can. A cluster worker checks every delivered task with it: a task naming a model,
    /// value set, value or condition the config lacks, or a round outside `max_rounds`, would otherwise
    /// fail deep in the pipeline or trap (an unknown model is a precondition of `ModelCaller`).
    public func problem(in config: SweepConfig) -> String? {
        func values(_ setName: String, _ value1: String, _ value2: String) -> String? {
            guard let set = config.valueSet(named: setName) else { return "a value set the config does not have" }
            guard value1 != value2, set.valueNames.contains(value1), set.valueNames.contains(value2) else {
                return "values that are not two values of their set"
            }
            return nil
        }
        func round(_ round: Int) -> String? {
            (0..<config.generation.maxRounds).contains(round) ? nil : "a round outside generation.max_rounds"
        }
        func scenario(_ scenario: Scenario) -> String? {
            scenario.id.isEmpty
                ? "a scenario without an id" : values(scenario.valueSet, scenario.value1, scenario.value2)
        }
        func evaluation(_ target: String, _ condition: String) -> String? {
            guard config.targets.contains(target) else { return "a target model the config does not have" }
            guard config.conditions.contains(where: { $0.name == condition }) else {
                return "a condition the config does not have"
            }
            return nil
        }
        switch self {
        case .generate(let set, let value1, let value2, let number, _):
            return values(set, value1, value2) ?? round(number)
        case .detail(let outline):
            return values(outline.valueSet, outline.value1, outline.value2) ?? round(outline.round)
        case .filter(let subject), .userPrompt(let subject):
            return scenario(subject)
        case .multipleChoice(let subject, let target, let condition),
            .openEnded(let subject, _, let target, let condition):
            return scenario(subject) ?? evaluation(target, condition)
        }
    }
}
