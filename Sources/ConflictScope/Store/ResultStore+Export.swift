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
                    })
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
        "target_ranking",
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
