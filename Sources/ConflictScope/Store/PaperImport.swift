import Foundation
import GRDB

/// A problem in an imported file, located by file and (when known) line.
public struct ImportError: Error, Equatable, CustomStringConvertible {
    public let file: String
    public let line: Int?
    public let message: String

    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    /// One line, whatever the message quotes from the file.
    public var description: String {
        (line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)").escapingLineBreaks
    }
}

/// RFC 4180 CSV: fields separated by commas, records by CRLF or LF; a field in double quotes may hold
/// commas, line breaks and doubled quotes (`""`). Blank lines are skipped; a UTF-8 byte-order mark is
/// ignored.
public enum CSVReader {
    public struct Record: Sendable, Equatable {
        /// The line the record starts on (1-based).
        public var line: Int
        public var fields: [String]
    }

    public static func parse(_ data: Data, file: String) throws(ImportError) -> [Record] {
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw ImportError(file: file, line: nil, message: "not UTF-8 text")
        }
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
        var records: [Record] = []
        var fields: [String] = []
        var field: [UInt8] = []
        var line = 1
        var recordLine = 1
        var index = 0
        let count = bytes.count
        // Whether the current record has anything in it (a blank line has not).
        var recordStarted = false

        func endRecord() {
            if recordStarted { records.append(Record(line: recordLine, fields: fields)) }
            fields = []
            recordStarted = false
        }

        while index < count {
            // At the start of a field.
            if !recordStarted { recordLine = line }
            field.removeAll(keepingCapacity: true)
            if bytes[index] == quote {
                let openedOn = line
                recordStarted = true
                index += 1
                var closed = false
                while index < count {
                    let byte = bytes[index]
                    if byte == quote {
                        if index + 1 < count && bytes[index + 1] == quote {
                            field.append(quote)
                            index += 2
                            continue
                        }
                        index += 1
                        closed = true
                        break
                    }
                    if byte == lf { line += 1 }
                    if byte == cr && !(index + 1 < count && bytes[index + 1] == lf) { line += 1 }
                    field.append(byte)
                    index += 1
                }
                guard closed else {
                    throw ImportError(
                        file: file, line: openedOn, message: "a quoted field opened here is never closed")
                }
                fields.append(String(decoding: field, as: UTF8.self))
                if index == count {
                    endRecord()
                } else if bytes[index] == comma {
                    index += 1
                    if index == count {
                        fields.append("")
                        endRecord()
                    }
                } else if bytes[index] == lf || bytes[index] == cr {
                    index += (bytes[index] == cr && index + 1 < count && bytes[index + 1] == lf) ? 2 : 1
                    line += 1
                    endRecord()
                } else {
                    throw ImportError(
                        file: file, line: line,
                        message: "unexpected text after a closing quote (quotes must be doubled)")
                }
            } else {
                let start = index
                while index < count, bytes[index] != comma, bytes[index] != lf, bytes[index] != cr {
                    if bytes[index] == quote {
                        throw ImportError(
                            file: file, line: line,
                            message: "a double quote inside an unquoted field (quote the field and double the quote)")
                    }
                    index += 1
                }
                if index > start || (index < count && bytes[index] == comma) || !fields.isEmpty {
                    recordStarted = true
                }
                fields.append(String(decoding: bytes[start..<index], as: UTF8.self))
                if index == count {
                    endRecord()
                } else if bytes[index] == comma {
                    index += 1
                    if index == count {
                        fields.append("")
                        endRecord()
                    }
                } else {
                    index += (bytes[index] == cr && index + 1 < count && bytes[index + 1] == lf) ? 2 : 1
                    line += 1
                    endRecord()
                }
            }
        }
        return records
    }

    /// One field as RFC 4180 writes it: quoted (with quotes doubled) when it holds a comma, quote or line break.
    public static func escape(_ field: String) -> String {
        guard field.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else {
            return field
        }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// Scenario CSV files (one row per scenario) and a prompts.json of opening user messages: the paper's
/// released data, or our own `export --scenarios` (whose extra columns are read too), validated as a whole
/// and then written to the store in one transaction.
public enum PaperImport {
    /// Columns every scenario file must have.
    public static let requiredColumns = [
        "scenario_id", "description", "value1", "value2", "action1", "action2", "keep_scenario",
    ]
    /// Columns read when present: the paper's, then ours.
    public static let optionalColumns = [
        "context", "user_prompt", "check_results", "generating_model", "template", "act_side", "domain",
        "consequence1", "consequence2",
    ]

    /// One scenario ready to store.
    public struct ImportedScenario: Sendable, Equatable {
        public var scenario: Scenario
        /// `check_results` exactly as the file has it (free text or JSON), nil when absent or empty.
        public var checks: String?
        /// The outline's context, nil when absent or empty.
        public var context: String?
        /// The opening message from prompts.json, nil when there is none.
        public var userPrompt: String?
    }

    public struct Summary: Sendable, Equatable {
        public var files = 0
        public var scenarios = 0
        public var kept = 0
        public var rejected = 0
        /// Not kept, with no failed check and at least one undecided one (as our export writes them).
        public var undecided = 0
        public var prompts = 0
        /// Entries of prompts.json naming no imported scenario.
        public var unmatchedPrompts = 0

        public init(
            files: Int = 0, scenarios: Int = 0, kept: Int = 0, rejected: Int = 0, undecided: Int = 0,
            prompts: Int = 0, unmatchedPrompts: Int = 0
        ) {
            self.files = files
            self.scenarios = scenarios
            self.kept = kept
            self.rejected = rejected
            self.undecided = undecided
            self.prompts = prompts
            self.unmatchedPrompts = unmatchedPrompts
        }

        public var line: String {
            var text =
                "Imported \(scenarios) scenarios (\(kept) kept, \(rejected) rejected"
                + (undecided > 0 ? ", \(undecided) undecided" : "") + ") and \(prompts) user prompt"
                + "\(prompts == 1 ? "" : "s") "
                + "from \(files) file\(files == 1 ? "" : "s")"
            if unmatchedPrompts > 0 {
                text +=
                    "; \(unmatchedPrompts) prompt\(unmatchedPrompts == 1 ? "" : "s") named no imported scenario and "
                    + "\(unmatchedPrompts == 1 ? "was" : "were") skipped"
            }
            return text + "."
        }
    }

    /// The store id of an imported scenario.
    public static func storeID(_ scenarioID: String) -> String { "\(Scenario.importedOutlineID)/\(scenarioID)" }

    /// Validated contents of the files, ready to write.
    public struct Loaded: Sendable, Equatable {
        public var files: Int
        public var scenarios: [ImportedScenario]
        /// Entries of prompts.json naming no scenario of the files.
        public var unmatchedPrompts: Int
    }

    /// Reads and validates every file; nothing is written.
    public static func load(scenarioFiles: [String], promptsFile: String?, config: SweepConfig) throws -> Loaded {
        let prompts = try promptsFile.map(readPrompts) ?? [:]
        var scenarios: [ImportedScenario] = []
        var firstSeen: [String: String] = [:]
        for file in scenarioFiles {
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: file))
            } catch {
                throw ImportError(file: file, line: nil, message: "cannot read the file")
            }
            let records = try CSVReader.parse(data, file: file)
            guard let header = records.first else {
                throw ImportError(file: file, line: nil, message: "the file is empty (expected a header row)")
            }
            var columns: [String: Int] = [:]
            for (index, name) in header.fields.enumerated() {
                let name = name.trimmingCharacters(in: .whitespaces)
                if columns[name] != nil && (requiredColumns + optionalColumns).contains(name) {
                    throw ImportError(file: file, line: header.line, message: "column \"\(name)\" appears twice")
                }
                columns[name] = columns[name] ?? index
            }
            let missing = requiredColumns.filter { columns[$0] == nil }
            guard missing.isEmpty else {
                throw ImportError(
                    file: file, line: header.line,
                    message: "missing column\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", "))")
            }
            for record in records.dropFirst() {
                guard record.fields.count == header.fields.count else {
                    throw ImportError(
                        file: file, line: record.line,
                        message: "expected \(header.fields.count) fields, found \(record.fields.count)")
                }
                let row = CSVRow(file: file, line: record.line, fields: record.fields, columns: columns)
                let id = try row.required("scenario_id").trimmed
                if let first = firstSeen[id] {
                    throw row.error("scenario_id \(id) appears twice (first at \(first))")
                }
                firstSeen[id] = "\(file):\(record.line)"
                scenarios.append(try scenario(row, id: id, prompt: prompts[id].flatMap(nonEmpty), config: config))
            }
        }
        let unmatched = prompts.keys.filter { firstSeen[$0] == nil }.count
        return Loaded(files: scenarioFiles.count, scenarios: scenarios, unmatchedPrompts: unmatched)
    }

    /// One CSV record with its columns by name.
    struct CSVRow {
        let file: String
        let line: Int
        let fields: [String]
        let columns: [String: Int]

        func error(_ message: String) -> ImportError { ImportError(file: file, line: line, message: message) }

        /// The field as the file has it, nil when the column is absent.
        func field(_ name: String) -> String? { columns[name].map { fields[$0] } }

        /// The field, or nil when the column is absent or the field blank.
        func optional(_ name: String) -> String? { field(name).flatMap(PaperImport.nonEmpty) }

        /// The field as the file has it (not trimmed: the text round-trips), which must not be blank.
        func required(_ name: String) throws(ImportError) -> String {
            guard let text = optional(name) else { throw error("empty \(name)") }
            return text
        }

        /// A field naming a case of `type`, nil when blank or absent.
        func parsed<T: RawRepresentable & CaseIterable>(_ name: String, as type: T.Type) throws(ImportError) -> T?
        where T.RawValue == String {
            guard let text = optional(name)?.trimmed else { return nil }
            guard let value = T(rawValue: text) else {
                throw error(
                    "\(name) must be one of \(T.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(text)\"")
            }
            return value
        }
    }

    /// A row's scenario: values by name or definition text, the template from our column or the paper's id,
    /// the status from keep_scenario (and, when not kept, from check_results).
    static func scenario(_ row: CSVRow, id: String, prompt: String?, config: SweepConfig) throws(ImportError)
        -> ImportedScenario
    {
        let keepText = try row.required("keep_scenario").trimmed
        let keep: Bool
        switch keepText.lowercased() {
        case "true", "1": keep = true
        case "false", "0": keep = false
        default: throw row.error("keep_scenario must be True, False, true, false, 1 or 0, not \"\(keepText)\"")
        }
        let (valueSet, value1, value2) = try resolveValues(
            try row.required("value1").trimmed, try row.required("value2").trimmed, scenarioID: id, config: config,
            file: row.file, line: row.line)
        var template: ScenarioTemplate?
        if let text = row.optional("template")?.trimmed {
            // Our names, or the paper's codes.
            guard let named = ScenarioTemplate(rawValue: text) ?? ScenarioTemplate(paperCode: text) else {
                let names = ScenarioTemplate.allCases.map(\.rawValue).joined(separator: ", ")
                throw row.error("template must be one of \(names), not \"\(text)\"")
            }
            template = named
        } else {
            template = paperTemplate(scenarioID: id)
        }
        let checks = row.optional("check_results")
        let status: ScenarioStatus
        if keep {
            status = .kept
        } else if let decoded = checks.flatMap(ResultStore.decodeChecks),
            !decoded.values.contains(where: { $0.pass == false }), decoded.values.contains(where: { $0.pass == nil })
        {
            status = .undecided
        } else {
            status = .rejected
        }
        let profile = userProfile(row.optional("user_prompt"))
        let scenario = Scenario(
            id: storeID(id), outlineID: Scenario.importedOutlineID, valueSet: valueSet, value1: value1,
            value2: value2, template: template, actSide: try row.parsed("act_side", as: ActSide.self),
            domain: try row.parsed("domain", as: ScenarioDomain.self), description: try row.required("description"),
            persona: profile.persona, background: profile.background, goal: profile.goal,
            action1: try row.required("action1"), action2: try row.required("action2"),
            consequence1: row.field("consequence1") ?? "", consequence2: row.field("consequence2") ?? "",
            generatingModel: row.field("generating_model")?.trimmed ?? "", status: status)
        return ImportedScenario(
            scenario: scenario, checks: checks, context: row.optional("context"), userPrompt: prompt)
    }

    /// The template coded in a paper id, `<generator>_<v1>_<v2>_<v1>-<v2>-<template>-<n>`.
    static func paperTemplate(scenarioID: String) -> ScenarioTemplate? {
        guard let match = scenarioID.range(of: #"-(coc_mild|coc|cc_mild|cc)-[0-9]+$"#, options: .regularExpression)
        else { return nil }
        let code = scenarioID[match].dropFirst().prefix { $0 != "-" }
        return ScenarioTemplate(paperCode: String(code))
    }

    /// The paper's `user_prompt`: a JSON object with persona, background and goal; any other text is kept
    /// whole as the persona, so the user model still plays it.
    static func userProfile(_ text: String?) -> UserProfile {
        guard let text else { return UserProfile(persona: "", background: "", goal: "") }
        struct Partial: Decodable {
            var persona: String?
            var background: String?
            var goal: String?
        }
        if let partial = try? JSONDecoder().decode(Partial.self, from: Data(text.utf8)),
            partial.persona != nil || partial.background != nil || partial.goal != nil
        {
            return UserProfile(
                persona: partial.persona ?? "", background: partial.background ?? "", goal: partial.goal ?? "")
        }
        return UserProfile(persona: text, background: "", goal: "")
    }

    /// Writes validated data in one transaction (upserts, so a repeated import changes nothing).
    @discardableResult
    public static func write(_ loaded: Loaded, to store: ResultStore) throws -> Summary {
        try store.storeImported(loaded.scenarios)
        let statuses = loaded.scenarios.map(\.scenario.status)
        return Summary(
            files: loaded.files, scenarios: statuses.count, kept: statuses.filter { $0 == .kept }.count,
            rejected: statuses.filter { $0 == .rejected }.count, undecided: statuses.filter { $0 == .undecided }.count,
            prompts: loaded.scenarios.filter { $0.userPrompt != nil }.count, unmatchedPrompts: loaded.unmatchedPrompts)
    }

    /// Validates everything, then writes it all in one transaction: an error leaves the store untouched.
    @discardableResult
    public static func run(scenarioFiles: [String], promptsFile: String?, config: SweepConfig, store: ResultStore)
        throws -> Summary
    {
        try write(try load(scenarioFiles: scenarioFiles, promptsFile: promptsFile, config: config), to: store)
    }

    fileprivate static func nonEmpty(_ text: String) -> String? { text.trimmed.isEmpty ? nil : text }

    /// `{"<scenario_id>": "<prompt>", ...}`.
    static func readPrompts(_ file: String) throws -> [String: String] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            throw ImportError(file: file, line: nil, message: "cannot read the file")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw ImportError(
                file: file, line: nil,
                message: "not valid JSON" + (detail.map { " (\($0.replacingOccurrences(of: "\n", with: " ")))" } ?? ""))
        }
        guard let dictionary = object as? [String: Any] else {
            throw ImportError(
                file: file, line: nil, message: "expected a JSON object {\"<scenario_id>\": \"<prompt>\"}")
        }
        var prompts: [String: String] = [:]
        for (key, value) in dictionary {
            guard let text = value as? String else {
                throw ImportError(file: file, line: nil, message: "the prompt of scenario \"\(key)\" is not a string")
            }
            prompts[key] = text
        }
        return prompts
    }

    /// The first configured value set holding both values. A value column may hold the value's name (exact,
    /// then ignoring case) or its definition text (ignoring case and runs of white space); when neither
    /// resolves, a paper id (`<generator>_<v1>_<v2>_<v1>-<v2>-...`) names the pair.
    static func resolveValues(
        _ value1: String, _ value2: String, scenarioID: String, config: SweepConfig, file: String, line: Int
    ) throws(ImportError) -> (String, String, String) {
        guard value1.lowercased() != value2.lowercased() else {
            throw ImportError(file: file, line: line, message: "value1 and value2 are both \"\(value1)\"")
        }
        for set in config.valueSets where set.valueNames.contains(value1) && set.valueNames.contains(value2) {
            return (set.name, value1, value2)
        }
        // A name (ignoring case) or a definition text (ignoring case and runs of white space).
        func resolve(_ text: String, in set: ValueSet) -> String? {
            set.valueNames.first { $0.lowercased() == text.lowercased() }
                ?? set.values.first { normalised($0.definition) == normalised(text) }?.name
        }
        for set in config.valueSets {
            if let first = resolve(value1, in: set), let second = resolve(value2, in: set), first != second {
                return (set.name, first, second)
            }
        }
        let id = scenarioID.lowercased()
        for set in config.valueSets {
            for first in set.valueNames {
                for second in set.valueNames where second != first {
                    let (a, b) = (first.lowercased(), second.lowercased())
                    if id.contains("_\(a)_\(b)_\(a)-\(b)-") { return (set.name, first, second) }
                }
            }
        }
        throw ImportError(
            file: file, line: line,
            message:
                "no configured value set has both \"\(abbreviated(value1))\" and \"\(abbreviated(value2))\" as value "
                + "names or definitions (sweep.value_sets: \(config.valueSets.map(\.name).joined(separator: ", ")))")
    }

    private static func normalised(_ text: String) -> String {
        text.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    /// A definition text shortened for an error line.
    private static func abbreviated(_ text: String) -> String {
        text.count > 60 ? String(text.prefix(57)) + "..." : text
    }
}

extension String {
    fileprivate var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}

extension ResultStore {
    /// Imported scenarios have no outline; their context, when the file had one, is kept here.
    static let importedContextTable = "imported_context"

    static func importedContexts(in db: Database) throws -> [String: String] {
        guard try db.tableExists(importedContextTable) else { return [:] }
        var contexts: [String: String] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT scenario_id, context FROM \(importedContextTable)") {
            contexts[row["scenario_id"]] = row["context"]
        }
        return contexts
    }

    /// Writes imported scenarios (with `check_results` as-is in the checks column), their contexts and
    /// their user prompts in one transaction.
    func storeImported(_ scenarios: [PaperImport.ImportedScenario]) throws {
        try database.write { db in
            if scenarios.contains(where: { $0.context != nil }) {
                // Created on first need, so stores without imports keep the migrations' schema.
                try db.execute(
                    sql: """
                        CREATE TABLE IF NOT EXISTS \(Self.importedContextTable) (
                            scenario_id TEXT PRIMARY KEY, context TEXT NOT NULL)
                        """)
            }
            for item in scenarios {
                let scenario = item.scenario
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO scenario (id, outline_id, value_set, value1, value2, description, persona,
                            background, goal, action1, action2, consequence1, consequence2, generating_model, status,
                            checks, template, act_side, domain, raw)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)
                        """,
                    arguments: [
                        scenario.id, scenario.outlineID, scenario.valueSet, scenario.value1, scenario.value2,
                        scenario.description, scenario.persona, scenario.background, scenario.goal, scenario.action1,
                        scenario.action2, scenario.consequence1, scenario.consequence2, scenario.generatingModel,
                        scenario.status.rawValue, item.checks, scenario.template?.rawValue, scenario.actSide?.rawValue,
                        scenario.domain?.rawValue,
                    ])
                if let context = item.context {
                    try db.execute(
                        sql: "INSERT OR REPLACE INTO \(Self.importedContextTable) (scenario_id, context) VALUES (?, ?)",
                        arguments: [scenario.id, context])
                } else if try db.tableExists(Self.importedContextTable) {
                    try db.execute(
                        sql: "DELETE FROM \(Self.importedContextTable) WHERE scenario_id = ?", arguments: [scenario.id])
                }
                if let prompt = item.userPrompt {
                    try Self.upsertUserPrompt(scenarioID: scenario.id, text: prompt, in: db)
                }
            }
        }
    }

    /// A scenario's stored checks column, exactly as written (nil when the scenario or its checks are absent).
    public func scenarioChecks(id: String) throws -> String? {
        try database.read { db in
            try String.fetchOne(db, sql: "SELECT checks FROM scenario WHERE id = ?", arguments: [id])
        }
    }

    /// The status of a stored scenario, nil when there is no such scenario.
    public func scenarioStatus(id: String) throws -> ScenarioStatus? {
        try database.read { db in
            try String.fetchOne(db, sql: "SELECT status FROM scenario WHERE id = ?", arguments: [id])
                .flatMap(ScenarioStatus.init(rawValue:))
        }
    }
}
