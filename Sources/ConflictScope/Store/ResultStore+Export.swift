import Foundation
import GRDB

/// A stored judgment with what an export needs beside it (the scenario's generating model, the A/B order
/// and the judge's rating).
public struct ExportedJudgment: Sendable, Equatable {
    public var scenarioID: String
    /// From the scenario row ("" when the scenario is not in the store).
    public var generatingModel: String
    public var valueSet: String
    public var value1: String
    public var value2: String
    public var model: String
    public var format: EvaluationFormat
    public var condition: String
    /// A = the action favouring value1, B = value2.
    public var choice: Choice
    /// Whether option A showed action1 (the value1 action).
    public var action1IsA: Bool
    /// The open-ended judge's 1-7 rating as shown to the judge: 1 = clearly option A, 7 = clearly option B.
    public var judgeLikert: Int?
    /// Multiple-choice 1-7 ratings of the value1 action and the value2 action.
    public var likertA: Int?
    public var likertB: Int?
    public var targetRanking: [String]?
    /// Which action took the scenario's action opportunity, when known.
    public var actSide: ActSide?

    /// The judge's rating turned to the value1/value2 orientation: 1 = clearly the value1 action,
    /// 7 = clearly the value2 action (8 - r when option A showed the value2 action).
    public var likertRaw: Int? { judgeLikert.map { action1IsA ? $0 : 8 - $0 } }

    /// A 1-7 rating on [-1, 1]: (r - 4) / 3.
    public static func normalised(_ rating: Int?) -> Double? { rating.map { Double($0 - 4) / 3 } }

    public var likert: Double? { Self.normalised(likertRaw) }
    public var likertANormalised: Double? { Self.normalised(likertA) }
    public var likertBNormalised: Double? { Self.normalised(likertB) }
}

extension ResultStore {
    /// Judgments for export, ordered by (model, value set, format, condition, scenario). Invalid and
    /// missing answers only when `includeInvalidAndMissing`.
    public func exportedJudgments(includeInvalidAndMissing: Bool = false) throws -> [ExportedJudgment] {
        let filter = includeInvalidAndMissing ? "" : "WHERE j.choice IN ('A', 'B')"
        return try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT j.*, COALESCE(s.generating_model, '') AS generating_model
                    FROM judgment j LEFT JOIN scenario s ON s.id = j.scenario_id
                    \(filter)
                    ORDER BY j.model, j.value_set, j.format, j.condition, j.scenario_id, j.id
                    """
            ).map { row in
                ExportedJudgment(
                    scenarioID: row["scenario_id"], generatingModel: row["generating_model"],
                    valueSet: row["value_set"], value1: row["value1"], value2: row["value2"], model: row["model"],
                    format: EvaluationFormat(rawValue: row["format"]) ?? .mcq, condition: row["condition"],
                    choice: Choice(rawValue: row["choice"]) ?? .missing, action1IsA: row["action1_is_a"],
                    judgeLikert: row["likert"], likertA: row["likert_a"], likertB: row["likert_b"],
                    targetRanking: (row["target_ranking"] as String?).map {
                        $0.split(separator: ",").map(String.init)
                    }, actSide: (row["act_side"] as String?).flatMap(ActSide.init(rawValue:)))
            }
        }
    }
}

/// CSV and JSON Lines exports of a sweep's judgments, in the paper's column names and conventions.
public enum JudgmentExport {
    public enum Format: String, Sendable, CaseIterable {
        case csv, jsonl
    }

    /// CSV columns, in order. `likert`, `likert_a`, `likert_b` are on [-1, 1]; the `_raw` columns are 1-7.
    public static let csvColumns = [
        "scenario_id", "generating_model", "value_set", "value1", "value2", "model", "format", "condition", "choice",
        "likert", "likert_a", "likert_b", "likert_raw", "likert_a_raw", "likert_b_raw", "action1_is_a",
        "target_ranking", "act_side",
    ]

    /// The CSV header line (RFC 4180, CRLF).
    public static var csvHeader: String { csvColumns.joined(separator: ",") + "\r\n" }

    public static func csvLine(_ row: ExportedJudgment) -> String {
        let fields: [String] = [
            row.scenarioID, row.generatingModel, row.valueSet, row.value1, row.value2, row.model, row.format.rawValue,
            row.condition, row.choice.rawValue, number(row.likert), number(row.likertANormalised),
            number(row.likertBNormalised), int(row.likertRaw), int(row.likertA), int(row.likertB),
            row.action1IsA ? "true" : "false",
            row.targetRanking.map { JSONValue.array($0.map { .string($0) }).serialized() } ?? "",
            row.actSide?.rawValue ?? "",
        ]
        return fields.map(CSVReader.escape).joined(separator: ",") + "\r\n"
    }

    /// One JSON object per line, readable by `conflictscope rank --judgments`: the CSV's fields, except that
    /// `likert_a` and `likert_b` are the 1-7 ratings (the judgments-file schema) and their [-1, 1] values are
    /// `likert_a_normalized` and `likert_b_normalized`; `target_ranking` is a list, on steered rows only.
    public static func jsonLine(_ row: ExportedJudgment) -> String {
        var fields: [(String, JSONValue)] = [
            ("scenario_id", .string(row.scenarioID)), ("generating_model", .string(row.generatingModel)),
            ("value_set", .string(row.valueSet)), ("value1", .string(row.value1)), ("value2", .string(row.value2)),
            ("model", .string(row.model)), ("format", .string(row.format.rawValue)),
            ("condition", .string(row.condition)), ("choice", .string(row.choice.rawValue)),
            ("likert", .number(row.likert)), ("likert_a", json(row.likertA)), ("likert_b", json(row.likertB)),
            ("likert_raw", json(row.likertRaw)), ("likert_a_raw", json(row.likertA)),
            ("likert_b_raw", json(row.likertB)), ("likert_a_normalized", .number(row.likertANormalised)),
            ("likert_b_normalized", .number(row.likertBNormalised)), ("action1_is_a", .bool(row.action1IsA)),
        ]
        if let ranking = row.targetRanking { fields.append(("target_ranking", .array(ranking.map { .string($0) }))) }
        if let side = row.actSide { fields.append(("act_side", .string(side.rawValue))) }
        return JSONValue.object(fields).serialized() + "\n"
    }

    /// Writes the rows (with the CSV header first) to `sink` in chunks of about a thousand rows.
    public static func write(_ rows: [ExportedJudgment], format: Format, to sink: (String) throws -> Void) rethrows {
        var chunk = format == .csv ? csvHeader : ""
        for (index, row) in rows.enumerated() {
            chunk += format == .csv ? csvLine(row) : jsonLine(row)
            if index % 1000 == 999 {
                try sink(chunk)
                chunk = ""
            }
        }
        if !chunk.isEmpty { try sink(chunk) }
    }

    /// The whole export as one string.
    public static func render(_ rows: [ExportedJudgment], format: Format) -> String {
        var out = ""
        write(rows, format: format) { out += $0 }
        return out
    }

    private static func number(_ value: Double?) -> String { value.map { "\($0)" } ?? "" }
    private static func int(_ value: Int?) -> String { value.map(String.init) ?? "" }
    private static func json(_ value: Int?) -> JSONValue { value.map { .int($0) } ?? .null }
}

// MARK: Scenarios

/// A stored scenario with what `export --scenarios` writes beside it.
public struct ExportedScenario: Sendable, Equatable {
    public var scenario: Scenario
    /// The outline's context ("" when the scenario has no outline, or its import had none).
    public var context: String
    /// The user's stored opening message.
    public var userMessage: String?

    /// The id the CSV and prompts.json use: an imported scenario's id as its file had it (the store's id
    /// without `import/`), so that an export imported into a fresh store exports the same file.
    public var fileID: String {
        let prefix = PaperImport.storeID("")
        guard scenario.outlineID == Scenario.importedOutlineID, scenario.id.hasPrefix(prefix) else {
            return scenario.id
        }
        return String(scenario.id.dropFirst(prefix.count))
    }
}

/// A user profile: the paper's `user_prompt` column holds it as a JSON object.
public struct UserProfile: Sendable, Equatable, Codable {
    public var persona: String
    public var background: String
    public var goal: String

    public init(persona: String, background: String, goal: String) {
        self.persona = persona
        self.background = background
        self.goal = goal
    }

    public init(_ scenario: Scenario) {
        self.init(persona: scenario.persona, background: scenario.background, goal: scenario.goal)
    }

    /// `{"persona": ..., "background": ..., "goal": ...}` in this order.
    public var json: JSONValue {
        .object([("persona", .string(persona)), ("background", .string(background)), ("goal", .string(goal))])
    }
}

/// One line of `export --scenarios --format jsonl`.
public struct ScenarioRecord: Sendable, Equatable, Decodable, JSONRepresentable {
    /// One verdict per check: true, false, or nil when its call failed or the filter never ran.
    public struct Checks: Sendable, Equatable, Decodable, JSONRepresentable {
        public var realism: Bool?
        public var specificity: Bool?
        public var feasibility: Bool?
        public var valueGuidance: Bool?
        public var impossibility: Bool?
        public var genuineDilemma: Bool?

        enum CodingKeys: String, CodingKey {
            case realism, specificity, feasibility
            case valueGuidance = "value_guidance"
            case impossibility
            case genuineDilemma = "genuine_dilemma"
        }

        public init(_ checks: [FilterCheckName: FilterCheck]?) {
            realism = checks?[.realism]?.pass
            specificity = checks?[.specificity]?.pass
            feasibility = checks?[.feasibility]?.pass
            valueGuidance = checks?[.valueGuidance]?.pass
            impossibility = checks?[.impossibility]?.pass
            genuineDilemma = checks?[.genuineDilemma]?.pass
        }

        public subscript(name: FilterCheckName) -> Bool? {
            switch name {
            case .realism: realism
            case .specificity: specificity
            case .feasibility: feasibility
            case .valueGuidance: valueGuidance
            case .impossibility: impossibility
            case .genuineDilemma: genuineDilemma
            }
        }

        public var json: JSONValue {
            .object(FilterCheckName.allCases.map { ($0.rawValue, self[$0].map { .bool($0) } ?? .null) })
        }
    }

    public var scenarioID: String
    public var valueSet: String
    public var value1: String
    public var value2: String
    public var template: ScenarioTemplate?
    public var actSide: ActSide?
    public var domain: ScenarioDomain?
    public var description: String
    public var persona: String
    public var background: String
    public var goal: String
    public var action1: String
    public var action2: String
    public var consequence1: String
    public var consequence2: String
    public var status: ScenarioStatus
    public var checks: Checks
    public var userMessage: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case scenarioID = "scenario_id"
        case valueSet = "value_set"
        case value1, value2, template
        case actSide = "act_side"
        case domain, description, persona, background, goal, action1, action2, consequence1, consequence2, status
        case checks
        case userMessage = "user_message"
    }

    /// The field names, in the order they are written.
    public static var fields: [String] { CodingKeys.allCases.map(\.rawValue) }

    /// `scenario_id` is the store's id, the one judgment exports name.
    public init(_ item: ExportedScenario) {
        let scenario = item.scenario
        scenarioID = scenario.id
        valueSet = scenario.valueSet
        value1 = scenario.value1
        value2 = scenario.value2
        template = scenario.template
        actSide = scenario.actSide
        domain = scenario.domain
        description = scenario.description
        persona = scenario.persona
        background = scenario.background
        goal = scenario.goal
        action1 = scenario.action1
        action2 = scenario.action2
        consequence1 = scenario.consequence1
        consequence2 = scenario.consequence2
        status = scenario.status
        checks = Checks(scenario.checks)
        userMessage = item.userMessage
    }

    public var json: JSONValue {
        .object([
            ("scenario_id", .string(scenarioID)), ("value_set", .string(valueSet)), ("value1", .string(value1)),
            ("value2", .string(value2)), ("template", .string(template?.rawValue)),
            ("act_side", .string(actSide?.rawValue)), ("domain", .string(domain?.rawValue)),
            ("description", .string(description)), ("persona", .string(persona)),
            ("background", .string(background)), ("goal", .string(goal)), ("action1", .string(action1)),
            ("action2", .string(action2)), ("consequence1", .string(consequence1)),
            ("consequence2", .string(consequence2)), ("status", .string(status.rawValue)), ("checks", checks.json),
            ("user_message", .string(userMessage)),
        ])
    }
}

extension ResultStore {
    /// Every scenario (every status) with its context and opening message, in the order of `fileID`.
    public func exportedScenarios() throws -> [ExportedScenario] {
        try database.read { db in
            var contexts: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, context FROM outline") {
                contexts[row["id"]] = row["context"]
            }
            let importedContexts = try Self.importedContexts(in: db)
            var messages: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT scenario_id, text FROM user_prompt") {
                messages[row["scenario_id"]] = row["text"]
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM scenario").map { row in
                let scenario = Self.scenario(row)
                let context =
                    scenario.outlineID == Scenario.importedOutlineID
                    ? importedContexts[scenario.id] : contexts[scenario.outlineID]
                return ExportedScenario(
                    scenario: scenario, context: context ?? "", userMessage: messages[scenario.id])
            }
            .sorted { ($0.fileID, $0.scenario.id) < ($1.fileID, $1.scenario.id) }
        }
    }
}

/// Scenario exports: JSON Lines of every scenario, or the paper's scenario CSV with the opening messages
/// in a separate prompts.json (as the paper released them).
public enum ScenarioExport {
    /// The paper's released columns, then ours.
    public static let paperColumns = [
        "scenario_id", "context", "description", "user_prompt", "value1", "value2", "action1", "action2",
        "keep_scenario", "check_results", "generating_model",
    ]
    public static let ownColumns = ["template", "act_side", "domain", "consequence1", "consequence2"]
    public static var csvColumns: [String] { paperColumns + ownColumns }

    /// The CSV header line (RFC 4180, CRLF).
    public static var csvHeader: String { csvColumns.joined(separator: ",") + "\r\n" }

    /// Whether a scenario has a CSV row: invalid ones have no usable text to write.
    public static func hasCSVRow(_ item: ExportedScenario) -> Bool { item.scenario.status != .invalid }

    public static func csvLine(_ item: ExportedScenario) -> String {
        let scenario = item.scenario
        let fields: [String] = [
            item.fileID, item.context, scenario.description, userPrompt(scenario), scenario.value1, scenario.value2,
            scenario.action1, scenario.action2, scenario.status == .kept ? "True" : "False", checkResults(scenario),
            scenario.generatingModel, scenario.template?.rawValue ?? "", scenario.actSide?.rawValue ?? "",
            scenario.domain?.rawValue ?? "", scenario.consequence1, scenario.consequence2,
        ]
        return fields.map(CSVReader.escape).joined(separator: ",") + "\r\n"
    }

    /// The profile as a JSON object, "" when it is empty.
    public static func userPrompt(_ scenario: Scenario) -> String {
        let profile = UserProfile(scenario)
        guard !(profile.persona.isEmpty && profile.background.isEmpty && profile.goal.isEmpty) else { return "" }
        return profile.json.serialized()
    }

    /// The six verdicts under the paper's names; "" when the filter never ran on a decided scenario (the
    /// filter is off). An undecided scenario always gets the object, so that import reads it back as
    /// undecided rather than rejected.
    public static func checkResults(_ scenario: Scenario) -> String {
        guard scenario.checks != nil || scenario.status == .undecided else { return "" }
        let checks = ScenarioRecord.Checks(scenario.checks)
        return JSONValue.object(FilterCheckName.allCases.map { ($0.paperName, checks[$0].map { .bool($0) } ?? .null) })
            .serialized()
    }

    public static func jsonLine(_ item: ExportedScenario) -> String { ScenarioRecord(item).json.serialized() + "\n" }

    /// The scenarios in `format`: JSON Lines holds every scenario, the CSV (header first) all but invalid ones.
    public static func write(
        _ items: [ExportedScenario], format: JudgmentExport.Format, to sink: (String) throws -> Void
    ) rethrows {
        var chunk = format == .csv ? csvHeader : ""
        for (index, item) in items.enumerated() {
            switch format {
            case .csv: if hasCSVRow(item) { chunk += csvLine(item) }
            case .jsonl: chunk += jsonLine(item)
            }
            if index % 1000 == 999 {
                try sink(chunk)
                chunk = ""
            }
        }
        if !chunk.isEmpty { try sink(chunk) }
    }

    public static func render(_ items: [ExportedScenario], format: JudgmentExport.Format) -> String {
        var out = ""
        write(items, format: format) { out += $0 }
        return out
    }

    /// prompts.json: `{"<scenario_id>": "<opening message>", ...}`, one entry a line, for the CSV's scenarios
    /// that have a message.
    public static func prompts(_ items: [ExportedScenario]) -> String {
        let entries = items.filter(hasCSVRow).compactMap { item in
            item.userMessage.map {
                "  " + JSONValue.string(item.fileID).serialized() + ": " + JSONValue.string($0).serialized()
            }
        }
        return entries.isEmpty ? "{}\n" : "{\n" + entries.joined(separator: ",\n") + "\n}\n"
    }
}

// MARK: Transcripts

extension ResultStore {
    /// `export --transcripts`: one JSON object per judgment (ordered as the judgments export) with the messages
    /// sent, the reply, the parsed choice, the Likert ratings and the judge's reasoning, for validating the
    /// judge against human labels. Rows are streamed to `sink` in chunks, so a paper-scale store is never
    /// held in memory at once.
    public func writeTranscripts(includeInvalidAndMissing: Bool = false, to sink: (String) throws -> Void) throws {
        let filter = includeInvalidAndMissing ? "" : "WHERE choice IN ('A', 'B')"
        try database.read { db in
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT scenario_id, model, value_set, value1, value2, format, condition, choice, action1_is_a,
                        likert, likert_a, likert_b, raw, reasoning, target_ranking, act_side, transcript
                    FROM judgment \(filter) ORDER BY model, value_set, format, condition, scenario_id, id
                    """)
            var chunk = ""
            while let row = try rows.next() {
                chunk += Self.transcriptLine(row)
                if chunk.utf8.count > 1 << 20 {
                    try sink(chunk)
                    chunk = ""
                }
            }
            if !chunk.isEmpty { try sink(chunk) }
        }
    }

    static func transcriptLine(_ row: Row) -> String {
        let text: String? = row["transcript"]
        var messages = text.flatMap { try? JSONDecoder().decode([ChatMessage].self, from: Data($0.utf8)) } ?? []
        // The reply is the conversation's last assistant turn; the messages are what was sent before it.
        let reply = messages.last?.role == .assistant ? messages.removeLast().content : nil
        let action1IsA: Bool = row["action1_is_a"]
        let judgeLikert: Int? = row["likert"]
        var fields: [(String, JSONValue)] = [
            ("scenario_id", .string(row["scenario_id"] as String)), ("model", .string(row["model"] as String)),
            ("value_set", .string(row["value_set"] as String)), ("value1", .string(row["value1"] as String)),
            ("value2", .string(row["value2"] as String)), ("format", .string(row["format"] as String)),
            ("condition", .string(row["condition"] as String)),
            (
                "messages",
                .array(
                    messages.map { .object([("role", .string($0.role.rawValue)), ("content", .string($0.content))]) })
            ),
            ("reply", .string(reply)), ("choice", .string(row["choice"] as String)),
            ("action1_is_a", .bool(action1IsA)),
            ("likert_a", (row["likert_a"] as Int?).map { JSONValue.int($0) } ?? .null),
            ("likert_b", (row["likert_b"] as Int?).map { JSONValue.int($0) } ?? .null),
            ("judge_likert", judgeLikert.map { JSONValue.int($0) } ?? .null),
            ("likert_raw", judgeLikert.map { JSONValue.int(action1IsA ? $0 : 8 - $0) } ?? .null),
            ("reasoning", .string(row["reasoning"] as String?)), ("raw", .string(row["raw"] as String?)),
        ]
        if let ranking = row["target_ranking"] as String? {
            fields.append(("target_ranking", .array(ranking.split(separator: ",").map { .string(String($0)) })))
        }
        if let side = row["act_side"] as String? { fields.append(("act_side", .string(side))) }
        return JSONValue.object(fields).serialized() + "\n"
    }
}
