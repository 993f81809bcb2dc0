import Foundation

/// The simulated user's opening message, written once per scenario from its description and the user's
/// profile and shared by every target and condition. When the message describes an artifact between
/// ARTIFACT tags, a second call (stage `artifacts`) writes it out in place.
struct UserPromptStage {
    let runner: SweepRunner
    var config: SweepConfig { runner.config }

    /// The first name the user model plays: the first capitalised word of the persona.
    static func firstName(_ scenario: Scenario) -> String {
        let words = scenario.persona.split { !$0.isLetter && $0 != "-" && $0 != "'" }
        return words.first { $0.first?.isUppercase == true }.map(String.init) ?? "the user"
    }

    static func fields(_ scenario: Scenario) -> [String: String] {
        ["first_name": firstName(scenario), "description": scenario.description, "profile": scenario.profile]
    }

    func run(_ scenario: Scenario, taskID: String, records: any SweepRecords) async throws -> String? {
        let settings = SweepRunner.CallSettings(config.roles.user)
        let asked = try await runner.ask(
            .userPrompts, settings, .user, Self.fields(scenario), taskID: taskID, records: records,
            parse: AnswerParsing.text)
        guard case .parsed(let opening, _) = asked else { return nil }
        var message = ""
        var rest = opening[...]
        for (index, match) in opening.matches(of: /<ARTIFACT>([\s\S]*?)<\/ARTIFACT>/.ignoresCase()).enumerated() {
            let written = try await runner.ask(
                .artifacts, settings, .artifact, ["message": opening, "artifact": String(match.1)],
                taskID: "\(taskID)/artifact\(index)", records: records, parse: AnswerParsing.text)
            message += opening[rest.startIndex..<match.range.lowerBound]
            switch written {
            case .failed: return nil
            // An unusable artifact leaves the tags in the message, as in the paper's released prompts.
            case .invalid: message += opening[match.range]
            case .parsed(let text, _): message += text
            }
            rest = opening[match.range.upperBound...]
        }
        message += rest
        try await records.upsertUserPrompt(scenarioID: scenario.id, text: message)
        return message
    }
}
