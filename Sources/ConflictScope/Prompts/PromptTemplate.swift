import Foundation

/// The prompts of every stage, kept as resource files (`Resources/prompts/NAME.txt`). A file starts with
/// `version: N` (recorded on every call made with it) and `Task: ...` (a marker naming the stage, which
/// the simulated provider reads like any model would read an instruction).
public enum PromptName: String, Sendable, CaseIterable {
    case deployment, outline, scenario, direct, mcq, likert, user, artifact, judge, steering
    case singleStage = "single_stage"
    case userFollowup = "user_followup"
    case templateSideEffectMild = "template_side_effect_mild"
    case templateSideEffectStrong = "template_side_effect_strong"
    case templateMeansMild = "template_means_mild"
    case templateMeansStrong = "template_means_strong"
    case filterRealism = "filter_realism"
    case filterSpecificity = "filter_specificity"
    case filterFeasibility = "filter_feasibility"
    case filterValueGuidance = "filter_value_guidance"
    case filterImpossibility = "filter_impossibility"
    case filterGenuineDilemma = "filter_genuine_dilemma"
}

public struct PromptTemplate: Sendable, Equatable {
    public let name: PromptName
    public let version: Int
    /// The text after the version line, with `{{placeholder}}` slots.
    public let body: String
    /// Placeholders in order of first appearance.
    public let placeholders: [String]
    /// The template as a pattern with one capture per placeholder, compiled once.
    private let extractor: Extractor

    public static func == (lhs: PromptTemplate, rhs: PromptTemplate) -> Bool {
        lhs.name == rhs.name && lhs.version == rhs.version && lhs.body == rhs.body
    }

    public init(name: PromptName, text: String) throws {
        self.name = name
        let lines = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
        guard let first = lines.first, first.hasPrefix("version:"),
            let version = Int(first.dropFirst("version:".count).trimmingCharacters(in: .whitespaces)), lines.count == 2
        else { throw PromptError("prompt \(name.rawValue) must start with a `version: N` line") }
        self.version = version
        self.body = String(lines[1]).trimmingCharacters(in: .whitespacesAndNewlines)
        var seen: [String] = []
        for match in body.matches(of: /\{\{([a-z0-9_]+)\}\}/) where !seen.contains(String(match.1)) {
            seen.append(String(match.1))
        }
        self.placeholders = seen
        self.extractor = Extractor(body: body)
    }

    /// `name@version`, as recorded with each call.
    public var id: String { "\(name.rawValue)@\(version)" }

    /// The marker line `Task: ...`, if the prompt has one.
    public var task: String? {
        body.split(separator: "\n").first { $0.hasPrefix("Task:") }.map {
            String($0.dropFirst(5)).trimmingCharacters(in: .whitespaces)
        }
    }

    /// The body without its `Task:` line, for templates embedded in another prompt (severities).
    public var instructions: String {
        body.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("Task:") }
            .joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Fills every placeholder; a missing one is a programming error.
    public func render(_ values: [String: String]) -> String {
        var text = body
        for placeholder in placeholders {
            guard let value = values[placeholder] else { preconditionFailure("prompt \(id) needs {{\(placeholder)}}") }
            text = text.replacingOccurrences(of: "{{\(placeholder)}}", with: value)
        }
        return text
    }

    /// Recovers the placeholder values from a rendered prompt (nil if `text` was not rendered from it).
    public func extract(from text: String) -> [String: String]? { extractor.extract(from: text) }
}

/// Matches rendered prompts against a template. Sendable because it is immutable after init and
/// NSRegularExpression matching is thread-safe.
private final class Extractor: @unchecked Sendable {
    let regex: NSRegularExpression?
    let order: [String]

    init(body: String) {
        var pattern = "^"
        var remaining = Substring(body)
        var order: [String] = []
        while let match = remaining.firstMatch(of: /\{\{([a-z0-9_]+)\}\}/) {
            pattern += NSRegularExpression.escapedPattern(for: String(remaining[..<match.range.lowerBound]))
            let placeholder = String(match.1)
            if order.contains(placeholder) {
                pattern += "[\\s\\S]*?"
            } else {
                pattern += "([\\s\\S]*?)"
                order.append(placeholder)
            }
            remaining = remaining[match.range.upperBound...]
        }
        pattern += NSRegularExpression.escapedPattern(for: String(remaining)) + "$"
        self.regex = try? NSRegularExpression(pattern: pattern)
        self.order = order
    }

    func extract(from text: String) -> [String: String]? {
        guard let regex, let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) else {
            return nil
        }
        var values: [String: String] = [:]
        for (index, placeholder) in order.enumerated() {
            guard let range = Range(match.range(at: index + 1), in: text) else { return nil }
            values[placeholder] = String(text[range])
        }
        return values
    }
}

public struct PromptError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// All prompt templates, loaded once from the module's resources.
public enum PromptLibrary {
    public static let all: [PromptName: PromptTemplate] = {
        var templates: [PromptName: PromptTemplate] = [:]
        for name in PromptName.allCases {
            guard
                let url = Bundle.module.url(
                    forResource: name.rawValue, withExtension: "txt", subdirectory: "Resources/prompts"),
                let text = try? String(contentsOf: url, encoding: .utf8),
                let template = try? PromptTemplate(name: name, text: text)
            else { preconditionFailure("prompt resource \(name.rawValue).txt is missing or malformed") }
            templates[name] = template
        }
        return templates
    }()

    public static func template(_ name: PromptName) -> PromptTemplate { all[name]! }

    /// The template a rendered prompt came from, by its `Task:` marker and shape.
    public static func identify(_ text: String) -> (PromptTemplate, [String: String])? {
        for template in all.values where template.task.map({ text.contains("Task: \($0)") }) ?? false {
            if let values = template.extract(from: text) { return (template, values) }
        }
        return nil
    }
}
