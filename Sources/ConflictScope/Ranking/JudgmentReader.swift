import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A problem in a judgments file, located by line.
public struct JudgmentInputError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let line: Int
    public let message: String
    public var description: String { "\(path):\(line): \(message)" }
}

/// Reads judgments from JSON Lines: one object per line with `model`, `value_set`, `format`,
/// `condition`, `scenario_id`, `value1`, `value2`, `choice` and optionally `likert_a`, `likert_b`
/// (1-7), `target_ranking` (an array of values, highest first) and `act_side` ("action1" or "action2":
/// which action takes the scenario's action opportunity). Unknown fields are ignored so
/// exports with extra columns read back; blank lines are skipped. A scenario may be judged once per
/// (model, value set, format, condition), and a steered condition has one target ranking.
public enum JudgmentReader {
    public static func read(path: String) throws -> [Judgment] {
        var checks = CrossLineChecks(path: path)
        var judgments: [Judgment] = []
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8))
        try LineReader.forEachBatch(path: path) { batch in
            // Decode slices of the batch in parallel; the checks across lines then run in file order.
            let slices = (0..<workers).map { worker in
                (batch.lines.count * worker / workers)..<(batch.lines.count * (worker + 1) / workers)
            }
            let decoded = try parallelMap(slices) { slice in
                var decoder = LineDecoder(path: path)
                return try decoder.decode(batch, slice)
            }
            for row in decoded.joined() {
                try checks.check(row.judgment, line: row.line)
                judgments.append(row.judgment)
            }
        }
        return judgments
    }
}

/// The fields a judgment line may carry.
private enum Field: Int, CaseIterable {
    case model, valueSet, format, condition, scenarioID, value1, value2, choice, likertA, likertB, targetRanking
    case actSide

    var name: String {
        switch self {
        case .model: "model"
        case .valueSet: "value_set"
        case .format: "format"
        case .condition: "condition"
        case .scenarioID: "scenario_id"
        case .value1: "value1"
        case .value2: "value2"
        case .choice: "choice"
        case .likertA: "likert_a"
        case .likertB: "likert_b"
        case .targetRanking: "target_ranking"
        case .actSide: "act_side"
        }
    }

    /// Fields by the length of their name, so a key is compared with one or two names, not all.
    private static let byLength: [[(field: Field, bytes: [UInt8])]] = {
        var table = Array(repeating: [(field: Field, bytes: [UInt8])](), count: 16)
        for field in allCases { table[field.name.utf8.count].append((field, Array(field.name.utf8))) }
        return table
    }()

    init?(key: UnsafeBufferPointer<UInt8>) {
        guard key.count < Self.byLength.count,
            let match = Self.byLength[key.count].first(where: { sameBytes(key, $0.bytes) })
        else { return nil }
        self = match.field
    }
}

private func sameBytes(_ raw: UnsafeBufferPointer<UInt8>, _ known: [UInt8]) -> Bool {
    guard raw.count == known.count else { return false }
    if raw.isEmpty { return true }
    return known.withUnsafeBufferPointer { memcmp(raw.baseAddress!, $0.baseAddress!, raw.count) == 0 }
}

private struct FieldError: Error {
    let message: String
}

/// One line's field values, without a per-line dictionary or array.
private struct LineFields {
    private var model, valueSet, format, condition, scenarioID, value1, value2, choice: FlatJSONValue?
    private var likertA, likertB, targetRanking, actSide: FlatJSONValue?

    subscript(field: Field) -> FlatJSONValue? {
        get {
            switch field {
            case .model: model
            case .valueSet: valueSet
            case .format: format
            case .condition: condition
            case .scenarioID: scenarioID
            case .value1: value1
            case .value2: value2
            case .choice: choice
            case .likertA: likertA
            case .likertB: likertB
            case .targetRanking: targetRanking
            case .actSide: actSide
            }
        }
        set {
            switch field {
            case .model: model = newValue
            case .valueSet: valueSet = newValue
            case .format: format = newValue
            case .condition: condition = newValue
            case .scenarioID: scenarioID = newValue
            case .value1: value1 = newValue
            case .value2: value2 = newValue
            case .choice: choice = newValue
            case .likertA: likertA = newValue
            case .likertB: likertB = newValue
            case .targetRanking: targetRanking = newValue
            case .actSide: actSide = newValue
            }
        }
    }

    func text(_ field: Field) throws(FieldError) -> String {
        guard let value = self[field] else { throw FieldError(message: "missing field \"\(field.name)\"") }
        guard case .string(let text) = value, !text.isEmpty else {
            throw FieldError(message: "field \"\(field.name)\" must be a non-empty string")
        }
        return text
    }

    func likert(_ field: Field) throws(FieldError) -> Int? {
        switch self[field] {
        case nil, .null?: return nil
        case .number(let value)? where value == value.rounded() && (1...7).contains(value): return Int(value)
        default: throw FieldError(message: "field \"\(field.name)\" must be an integer from 1 to 7 or null")
        }
    }

    func judgment() throws(FieldError) -> Judgment {
        let formatText = try text(.format)
        guard let format = EvaluationFormat(rawValue: formatText) else {
            throw FieldError(message: "format must be \"mcq\" or \"open\", not \"\(formatText)\"")
        }
        let value1 = try text(.value1)
        let value2 = try text(.value2)
        guard value1 != value2 else { throw FieldError(message: "value1 and value2 are both \"\(value1)\"") }
        let choiceText = try text(.choice)
        guard let choice = Choice(rawValue: choiceText) else {
            throw FieldError(message: "choice must be \"A\", \"B\", \"invalid\" or \"missing\", not \"\(choiceText)\"")
        }
        var targetRanking: [String]? = nil
        switch self[.targetRanking] {
        case nil, .null?: break
        case .strings(let values)? where !values.isEmpty && Set(values).count == values.count:
            targetRanking = values
        default: throw FieldError(message: "target_ranking must be a list of distinct value names")
        }
        var actSide: ActSide? = nil
        switch self[.actSide] {
        case nil, .null?: break
        case .string(let text)?:
            guard let side = ActSide(rawValue: text) else {
                throw FieldError(message: "act_side must be \"action1\" or \"action2\", not \"\(text)\"")
            }
            actSide = side
        default: throw FieldError(message: "act_side must be \"action1\" or \"action2\"")
        }
        return Judgment(
            model: try text(.model), valueSet: try text(.valueSet), format: format, condition: try text(.condition),
            scenarioID: try text(.scenarioID), value1: value1, value2: value2, choice: choice,
            likertA: try likert(.likertA), likertB: try likert(.likertB), targetRanking: targetRanking,
            actSide: actSide)
    }
}

/// Turns lines into judgments, keeping the previous line's strings for reuse: files are usually
/// sorted, so model, value set, format, condition and values repeat line after line.
private struct LineDecoder {
    let path: String
    private var previousBytes = Array(repeating: [UInt8](), count: Field.allCases.count)
    private var previousStrings = Array(repeating: "", count: Field.allCases.count)

    init(path: String) { self.path = path }

    mutating func decode(_ batch: LineReader.Batch, _ range: Range<Int>) throws -> [(judgment: Judgment, line: Int)] {
        var rows: [(judgment: Judgment, line: Int)] = []
        rows.reserveCapacity(range.count)
        for index in range {
            let bytes = batch.lines[index]
            let line = batch.firstLineNumber + index
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            do {
                var fields = LineFields()
                try FlatJSON.parseFields(bytes) { key, value in
                    guard let field = Field(key: key) else { return }  // unknown fields are ignored
                    switch value {
                    case .text(let raw): fields[field] = .string(reuse(raw, field))
                    case .value(let decoded): fields[field] = decoded
                    }
                }
                rows.append((try fields.judgment(), line))
            } catch let error as FlatJSON.SyntaxError {
                throw JudgmentInputError(path: path, line: line, message: "malformed JSON: \(error)")
            } catch let error as FieldError {
                throw JudgmentInputError(path: path, line: line, message: error.message)
            }
        }
        return rows
    }

    private mutating func reuse(_ raw: UnsafeBufferPointer<UInt8>, _ field: Field) -> String {
        let slot = field.rawValue
        if field != .scenarioID && sameBytes(raw, previousBytes[slot]) { return previousStrings[slot] }
        let text = String(decoding: raw, as: UTF8.self)
        if field != .scenarioID {
            previousBytes[slot] = Array(raw)
            previousStrings[slot] = text
        }
        return text
    }
}

/// What must hold across lines: one judgment per scenario and group, one target ranking per steered
/// condition of a value set.
private struct CrossLineChecks {
    let path: String
    private var groupIndex: [GroupKey: Int] = [:]
    /// First line of each scenario, per group (indexed like `groupIndex`).
    private var scenarioLines: [[String: Int]] = []
    /// Consecutive lines usually share a group; comparing with the last one is cheaper than hashing.
    private var lastGroup: (key: GroupKey, index: Int)?
    private var targets: [String: (ranking: [String], line: Int)] = [:]

    init(path: String) { self.path = path }

    private mutating func index(of group: GroupKey) -> Int {
        if let lastGroup, lastGroup.key == group { return lastGroup.index }
        let index =
            groupIndex[group]
            ?? {
                scenarioLines.append([:])
                groupIndex[group] = scenarioLines.count - 1
                return scenarioLines.count - 1
            }()
        lastGroup = (group, index)
        return index
    }

    mutating func check(_ judgment: Judgment, line: Int) throws {
        let group = index(of: judgment.group)
        if let first = scenarioLines[group].updateValue(line, forKey: judgment.scenarioID) {
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
    }
}
