/// A problem in a judgments file, located by line.
public struct JudgmentInputError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let line: Int
    public let message: String
    public var description: String { "\(path):\(line): \(message)" }
}

/// Reads judgments from JSON Lines: one object per line with `model`, `value_set`, `format`,
/// `condition`, `scenario_id`, `value1`, `value2`, `choice` and optionally `likert_a`, `likert_b`
/// (1-7) and `target_ranking` (an array of values, highest first). Unknown fields are ignored so
/// exports with extra columns read back; blank lines are skipped.
public enum JudgmentReader {
    public static func read(path: String) throws -> [Judgment] {
        var judgments: [Judgment] = []
        var firstLine: [String: Int] = [:]
        var targets: [String: (ranking: [String], line: Int)] = [:]
        try LineReader.forEachLine(path: path) { bytes, line in
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return }
            let judgment: Judgment
            do {
                judgment = try decode(FlatJSON.parseObject(bytes))
            } catch let error as FlatJSON.SyntaxError {
                throw JudgmentInputError(path: path, line: line, message: "malformed JSON: \(error)")
            } catch let error as FieldError {
                throw JudgmentInputError(path: path, line: line, message: error.message)
            }
            let key = [judgment.group.description, judgment.scenarioID].joined(separator: "\u{1F}")
            if let first = firstLine.updateValue(line, forKey: key) {
                throw JudgmentInputError(
                    path: path, line: line,
                    message: "second judgment of scenario \"\(judgment.scenarioID)\" for \(judgment.group) "
                        + "(first on line \(first))")
            }
            if let ranking = judgment.targetRanking {
                let scope = "\(judgment.valueSet)/\(judgment.condition)"
                if let known = targets[scope], known.ranking != ranking {
                    throw JudgmentInputError(
                        path: path, line: line,
                        message: "target_ranking differs from the one on line \(known.line) for \(scope)")
                }
                targets[scope] = targets[scope] ?? (ranking, line)
            }
            judgments.append(judgment)
        }
        return judgments
    }

    struct FieldError: Error {
        let message: String
    }

    static func decode(_ fields: [String: FlatJSONValue]) throws(FieldError) -> Judgment {
        func text(_ key: String) throws(FieldError) -> String {
            guard let value = fields[key] else { throw FieldError(message: "missing field \"\(key)\"") }
            guard case .string(let text) = value, !text.isEmpty else {
                throw FieldError(message: "field \"\(key)\" must be a non-empty string")
            }
            return text
        }
        func likert(_ key: String) throws(FieldError) -> Int? {
            switch fields[key] {
            case nil, .null?: return nil
            case .number(let value)? where value == value.rounded() && (1...7).contains(value): return Int(value)
            default: throw FieldError(message: "field \"\(key)\" must be an integer from 1 to 7 or null")
            }
        }
        let model = try text("model")
        let valueSet = try text("value_set")
        let formatText = try text("format")
        guard let format = EvaluationFormat(rawValue: formatText) else {
            throw FieldError(message: "format must be \"mcq\" or \"open\", not \"\(formatText)\"")
        }
        let condition = try text("condition")
        let scenarioID = try text("scenario_id")
        let value1 = try text("value1")
        let value2 = try text("value2")
        guard value1 != value2 else { throw FieldError(message: "value1 and value2 are both \"\(value1)\"") }
        let choiceText = try text("choice")
        guard let choice = Choice(rawValue: choiceText) else {
            throw FieldError(message: "choice must be \"A\", \"B\", \"invalid\" or \"missing\", not \"\(choiceText)\"")
        }
        var targetRanking: [String]? = nil
        switch fields["target_ranking"] {
        case nil, .null?: break
        case .strings(let values)? where !values.isEmpty && Set(values).count == values.count:
            targetRanking = values
        default: throw FieldError(message: "target_ranking must be a list of distinct value names")
        }
        return Judgment(
            model: model, valueSet: valueSet, format: format, condition: condition, scenarioID: scenarioID,
            value1: value1, value2: value2, choice: choice, likertA: try likert("likert_a"),
            likertB: try likert("likert_b"), targetRanking: targetRanking)
    }
}
