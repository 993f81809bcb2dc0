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

/// The paper's released data: scenario CSV files (one row per scenario) and a JSON file of generated
/// user prompts, validated as a whole and then written to the store in one transaction.
public enum PaperImport {
    /// Columns every scenario file must have.
    public static let requiredColumns = [
        "scenario_id", "description", "value1", "value2", "action1", "action2", "keep_scenario",
    ]
    /// Columns read when present.
    public static let optionalColumns = ["user_prompt", "check_results", "generating_model"]

    /// One scenario ready to store.
    public struct ImportedScenario: Sendable, Equatable {
        public var scenario: Scenario
        /// `check_results` exactly as the file has it (free text or JSON), nil when absent or empty.
        public var checks: String?
        /// The user prompt to store (prompts.json wins over the CSV's column), nil when there is none.
        public var userPrompt: String?
    }

    public struct Summary: Sendable, Equatable {
        public var files = 0
        public var scenarios = 0
        public var kept = 0
        public var rejected = 0
        public var prompts = 0
        /// Entries of prompts.json naming no imported scenario.
        public var unmatchedPrompts = 0

        public init(
            files: Int = 0, scenarios: Int = 0, kept: Int = 0, rejected: Int = 0, prompts: Int = 0,
            unmatchedPrompts: Int = 0
        ) {
            self.files = files
            self.scenarios = scenarios
            self.kept = kept
            self.rejected = rejected
            self.prompts = prompts
            self.unmatchedPrompts = unmatchedPrompts
        }

        public var line: String {
            var text =
                "Imported \(scenarios) scenarios (\(kept) kept, \(rejected) rejected) and \(prompts) user prompt"
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
                func field(_ name: String) -> String? { columns[name].map { record.fields[$0] } }
                func required(_ name: String) throws(ImportError) -> String {
                    let text = field(name)!.trimmingCharacters(in: .whitespacesAndNewlines)
                    guard !text.isEmpty else {
                        throw ImportError(file: file, line: record.line, message: "empty \(name)")
                    }
                    return text
                }
                let id = try required("scenario_id")
                if let first = firstSeen[id] {
                    throw ImportError(
                        file: file, line: record.line, message: "scenario_id \(id) appears twice (first at \(first))")
                }
                firstSeen[id] = "\(file):\(record.line)"
                let keepText = try required("keep_scenario")
                let keep: Bool
                switch keepText.lowercased() {
                case "true", "1": keep = true
                case "false", "0": keep = false
                default:
                    throw ImportError(
                        file: file, line: record.line,
                        message: "keep_scenario must be True, False, true, false, 1 or 0, not \"\(keepText)\"")
                }
                let (valueSet, value1, value2) = try resolveValues(
                    try required("value1"), try required("value2"), config: config, file: file, line: record.line)
                let checks = field("check_results").flatMap { $0.isEmpty ? nil : $0 }
                let csvPrompt = field("user_prompt").flatMap(nonEmpty)
                let prompt = prompts[id].flatMap(nonEmpty) ?? csvPrompt
                let scenario = Scenario(
                    id: storeID(id), outlineID: Scenario.importedOutlineID, valueSet: valueSet, value1: value1,
                    value2: value2, description: try required("description"), persona: "", background: "", goal: "",
                    action1: try required("action1"), action2: try required("action2"), consequence1: "",
                    consequence2: "",
                    generatingModel: field("generating_model")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "",
                    status: keep ? .kept : .rejected, checks: nil)
                scenarios.append(ImportedScenario(scenario: scenario, checks: checks, userPrompt: prompt))
            }
        }
        let unmatched = prompts.keys.filter { firstSeen[$0] == nil }.count
        return Loaded(files: scenarioFiles.count, scenarios: scenarios, unmatchedPrompts: unmatched)
    }

    /// Writes validated data in one transaction (upserts, so a repeated import changes nothing).
    @discardableResult
    public static func write(_ loaded: Loaded, to store: ResultStore) throws -> Summary {
        try store.storeImported(loaded.scenarios)
        var summary = Summary(files: loaded.files, unmatchedPrompts: loaded.unmatchedPrompts)
        summary.scenarios = loaded.scenarios.count
        summary.kept = loaded.scenarios.filter { $0.scenario.status == .kept }.count
        summary.rejected = summary.scenarios - summary.kept
        summary.prompts = loaded.scenarios.filter { $0.userPrompt != nil }.count
        return summary
    }

    /// Validates everything, then writes it all in one transaction: an error leaves the store untouched.
    @discardableResult
    public static func run(scenarioFiles: [String], promptsFile: String?, config: SweepConfig, store: ResultStore)
        throws -> Summary
    {
        try write(try load(scenarioFiles: scenarioFiles, promptsFile: promptsFile, config: config), to: store)
    }

    private static func nonEmpty(_ text: String) -> String? {
        text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : text
    }

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

    /// The first configured value set holding both values (exact names first, then ignoring case).
    static func resolveValues(_ value1: String, _ value2: String, config: SweepConfig, file: String, line: Int)
        throws(ImportError) -> (String, String, String)
    {
        guard value1.lowercased() != value2.lowercased() else {
            throw ImportError(file: file, line: line, message: "value1 and value2 are both \"\(value1)\"")
        }
        for set in config.valueSets where set.valueNames.contains(value1) && set.valueNames.contains(value2) {
            return (set.name, value1, value2)
        }
        for set in config.valueSets {
            let canonical = { (name: String) in set.valueNames.first { $0.lowercased() == name.lowercased() } }
            if let first = canonical(value1), let second = canonical(value2) { return (set.name, first, second) }
        }
        throw ImportError(
            file: file, line: line,
            message:
                "no configured value set has both \"\(value1)\" and \"\(value2)\" (sweep.value_sets: "
                + "\(config.valueSets.map(\.name).joined(separator: ", ")))")
    }
}

extension ResultStore {
    /// Writes imported scenarios (with `check_results` as-is in the checks column) and their user prompts in
    /// one transaction.
    func storeImported(_ scenarios: [PaperImport.ImportedScenario]) throws {
        try database.write { db in
            for item in scenarios {
                let scenario = item.scenario
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO scenario (id, outline_id, value_set, value1, value2, description, persona,
                            background, goal, action1, action2, consequence1, consequence2, generating_model, status,
                            checks)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        scenario.id, scenario.outlineID, scenario.valueSet, scenario.value1, scenario.value2,
                        scenario.description, scenario.persona, scenario.background, scenario.goal, scenario.action1,
                        scenario.action2, scenario.consequence1, scenario.consequence2, scenario.generatingModel,
                        scenario.status.rawValue, item.checks,
                    ])
                if let prompt = item.userPrompt {
                    // The same statement as `upsertUserPrompt`, inside this transaction.
                    try db.execute(
                        sql: "INSERT OR REPLACE INTO user_prompt (scenario_id, text) VALUES (?, ?)",
                        arguments: [scenario.id, prompt])
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
