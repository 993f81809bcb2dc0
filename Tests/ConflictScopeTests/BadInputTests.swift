import ConflictScope
import Foundation
import GRDB
import Testing

// Bad inputs on the boundaries we own: config files (with their value-set files), imported scenario and
// prompt files, and provider responses. Each family runs a fixed list of targeted mutations plus seeded
// random ones; every bad input must give one clear line (or a failed call), never a crash (which would
// end the test process) and never a half-written store. Each family also has a positive control.

// MARK: - Helpers

/// A seeded source of mutations (the same cases on every run).
struct Mutator {
    var random: StableRandom

    init(seed: UInt64, key: String) { random = StableRandom(seed: seed, key: key) }

    mutating func below(_ bound: Int) -> Int { bound <= 1 ? 0 : Int(random.next() % UInt64(bound)) }

    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

    /// One random edit of `bytes`: a cut, a replaced or inserted byte, a deleted range or a repeated range.
    mutating func mutate(_ bytes: [UInt8]) -> [UInt8] {
        var bytes = bytes
        let noise: [UInt8] = Array("\"'[]{}=,.#\\\n\r\t 0x-".utf8) + [0x00, 0xFF, 0xC3, 0xE2, 0x80]
        switch below(5) {
        case 0:
            bytes = Array(bytes.prefix(below(bytes.count + 1)))
        case 1:
            if !bytes.isEmpty { bytes[below(bytes.count)] = pick(noise) }
        case 2:
            bytes.insert(pick(noise), at: below(bytes.count + 1))
        case 3:
            let start = below(bytes.count + 1)
            bytes.removeSubrange(start..<min(bytes.count, start + 1 + below(40)))
        default:
            let start = below(bytes.count + 1)
            let range = start..<min(bytes.count, start + 1 + below(80))
            bytes.insert(contentsOf: bytes[range], at: range.upperBound)
        }
        return bytes
    }
}

/// Checks that `text` is one line of our own words; returns whether it is.
@discardableResult
func expectOneLine(
    _ text: String, _ context: @autoclosure () -> String, sourceLocation: SourceLocation = #_sourceLocation
)
    -> Bool
{
    let oneLine = !text.isEmpty && !text.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\u{2028}" })
    #expect(oneLine, "not one line (\(context())): \(text.debugDescription)", sourceLocation: sourceLocation)
    return oneLine
}

func temporaryDirectory(_ label: String) throws -> URL {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return folder
}

// MARK: - Config files

/// A config that uses every table and most keys: two custom value sets (a JSON file and an inline
/// table), a steered condition, a simulated and an OpenAI-compatible provider, an embedder.
let fuzzBaseConfig = """
    [sweep]
    name = "fuzz"
    seed = 7
    store = "fuzz.sqlite"
    value_sets = ["hhh", "custom", "inline"]
    scenarios_per_pair = 3
    formats = ["mcq", "open"]
    max_cost_usd = 5.0

    [generation]
    outlines_per_call = 2
    max_rounds = 2
    dedup_threshold = 0.8
    max_reasks = 1

    [analysis]
    alpha = 0.01
    bootstrap = 10

    [conditions.default]

    [conditions.steered]
    target_ranking.hhh = ["honesty", "harmlessness", "helpfulness"]
    target_ranking.custom = ["care", "candour"]
    target_ranking.inline = ["thrift", "comfort"]

    [value_sets.custom]
    file = "custom.json"

    [value_sets.inline.values]
    thrift = "Spending as little as possible."
    comfort = "Being at ease."

    [providers.sim]
    kind = "simulated"
    concurrency = 4
    latency_ms = 0
    fault_5xx = 0.1
    max_faults_per_request = 1
    max_retries = 3

    [providers.remote]
    kind = "openai"
    base_url = "http://127.0.0.1:9/v1"
    api_key_env = "FUZZ_KEY"
    rpm = 100
    tpm = 10000
    timeout_s = 5.0

    [models.writer]
    provider = "sim"
    input_usd_per_mtok = 1.0

    [models.target]
    provider = "sim"
    steerability = 1.5
    invalid_rate = 0.1
    utilities.mcq = { honesty = 1.0, care = 0.5 }

    [models.remote-target]
    provider = "remote"
    model = "gpt-x"

    [roles.generator]
    model = "writer"
    temperature = 1.0
    max_tokens = 500
    [roles.filter_judge]
    model = "writer"
    [roles.user]
    model = "writer"
    [roles.judge]
    model = "writer"
    [roles.embedder]
    model = "remote-target"

    [targets]
    models = ["target", "remote-target"]
    """

let fuzzValueSetJSON = #"""
    {"name": "custom", "values": [
      {"name": "care", "definition": "Looking after people."},
      {"name": "candour", "definition": "Saying what is true."}
    ]}
    """#

let fuzzEnvironment = ["FUZZ_KEY": "not-a-real-key"]

/// One line of the base config that sets a key, with the table it is in.
struct ConfigLine {
    var index: Int
    var table: String
    var key: String
    var value: String

    /// The dotted key an error about this line must name (a dotted key names its first part).
    var dotted: String {
        let first = key.split(separator: ".").first.map(String.init) ?? key
        return table.isEmpty ? first : "\(table).\(first)"
    }

    enum Kind { case string, integer, float, array, table }

    var kind: Kind {
        if value.hasPrefix("\"") { return .string }
        if value.hasPrefix("[") { return .array }
        if value.hasPrefix("{") { return .table }
        return value.contains(".") ? .float : .integer
    }
}

func configLines(_ text: String) -> (lines: [String], keys: [ConfigLine], headers: [(index: Int, table: String)]) {
    let lines = text.components(separatedBy: "\n")
    var keys: [ConfigLine] = []
    var headers: [(Int, String)] = []
    var table = ""
    for (index, line) in lines.enumerated() {
        if line.hasPrefix("[") {
            table = String(line.dropFirst().dropLast())
            headers.append((index, table))
        } else if let equals = line.range(of: " = ") {
            keys.append(
                ConfigLine(
                    index: index, table: table, key: String(line[..<equals.lowerBound]),
                    value: String(line[equals.upperBound...])))
        }
    }
    return (lines, keys, headers)
}

/// A config folder holding `custom.json`; configs are written into it as config.toml.
struct ConfigFolder {
    let folder: URL
    var path: String { folder.appendingPathComponent("config.toml").path }

    init(valueSet: [UInt8] = Array(fuzzValueSetJSON.utf8)) throws {
        folder = try temporaryDirectory("config-fuzz")
        try Data(valueSet).write(to: folder.appendingPathComponent("custom.json"))
    }

    func writeValueSet(_ bytes: [UInt8]) throws {
        try Data(bytes).write(to: folder.appendingPathComponent("custom.json"))
    }

    /// Loads `bytes` as config.toml: the config, or the error it gave.
    func load(_ bytes: [UInt8], environment: [String: String] = fuzzEnvironment) throws -> Result<
        SweepConfig, ConfigError
    > {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        do {
            return .success(try SweepConfig.load(path: path, environment: environment))
        } catch let error as ConfigError {
            return .failure(error)
        } catch {
            Issue.record("not a ConfigError: \(type(of: error)): \(error)")
            throw error
        }
    }
}

/// What a config case must give.
enum ConfigExpectation {
    /// Loads.
    case accepted
    /// Fails with one line that names the file and either one of `names` or the line `line` (1-based).
    case rejected(names: [String], line: Int?)
    /// Either, as long as a failure is one line naming the file.
    case either
    /// Fails with one line naming the file, whatever else it says.
    case rejectedAnyhow
}

struct ConfigCaseCounts {
    var cases = 0
    var rejected = 0
}

func checkConfig(
    _ folder: ConfigFolder, _ bytes: [UInt8], _ expectation: ConfigExpectation, _ label: String,
    environment: [String: String] = fuzzEnvironment, counts: inout ConfigCaseCounts,
    sourceLocation: SourceLocation = #_sourceLocation
) throws {
    counts.cases += 1
    let result = try folder.load(bytes, environment: environment)
    switch (result, expectation) {
    case (.success, .accepted), (.success, .either):
        return
    case (.success, .rejected), (.success, .rejectedAnyhow):
        Issue.record("\(label): the config loaded but should not have", sourceLocation: sourceLocation)
    case (.failure(let error), _):
        counts.rejected += 1
        let text = error.description
        expectOneLine(text, label, sourceLocation: sourceLocation)
        #expect(error.file == folder.path, "\(label): \(text)", sourceLocation: sourceLocation)
        #expect(text.hasPrefix(folder.path + ":"), "\(label): \(text)", sourceLocation: sourceLocation)
        #expect(text.count < 1000, "\(label): an error of \(text.count) characters", sourceLocation: sourceLocation)
        switch expectation {
        case .accepted:
            Issue.record("\(label): a valid config was rejected: \(text)", sourceLocation: sourceLocation)
        case .rejected(let names, let line):
            let named = names.contains { text.contains($0) }
            let located = line.map { error.line == $0 } ?? false
            #expect(
                named || located, "\(label): the error names none of \(names) nor line \(line ?? 0): \(text)",
                sourceLocation: sourceLocation)
        case .either, .rejectedAnyhow:
            break
        }
    }
}

@Suite("Bad inputs: config files")
struct BadConfigTests {
    @Test func theBaseConfigLoadsWithEveryPart() throws {
        let config = try ConfigFolder().load(Array(fuzzBaseConfig.utf8)).get()
        #expect(config.valueSets.map(\.name) == ["hhh", "custom", "inline"])
        #expect(config.conditions.map(\.name).sorted() == ["default", "steered"])
        #expect(config.providers["remote"]?.apiKeyEnv == "FUZZ_KEY")
        #expect(config.roles.embedder?.model == "remote-target")
        #expect(config.targets == ["target", "remote-target"])
    }

    /// Every key of the base config given a value of each wrong type, out-of-range numbers, NaN and
    /// infinities, empty and unknown names.
    @Test func wrongTypesAndImpossibleValuesNameTheKey() throws {
        let folder = try ConfigFolder()
        let (lines, keys, _) = configLines(fuzzBaseConfig)
        var counts = ConfigCaseCounts()
        try checkConfig(folder, Array(fuzzBaseConfig.utf8), .accepted, "base", counts: &counts)
        let wrongType: [ConfigLine.Kind: [String]] = [
            .string: ["42", "1.5", "true", "[1, 2]", "{ a = 1 }", "1979-05-27"],
            .integer: [
                "\"text\"", "[1]", "true", "-1", "-9223372036854775808", "1.5", "{ a = 1 }", "nan", "1979-05-27",
            ],
            .float: ["\"text\"", "[1.0]", "true", "nan", "inf", "-inf", "1e300", "-1e300", "-0.5e10", "{ a = 1 }"],
            .array: ["\"text\"", "42", "[1, 2]", "[]", "[\"nope\"]", "[[\"a\"]]", "{ a = 1 }"],
            .table: ["\"text\"", "42", "{ nope = 1.0 }", "{ honesty = \"x\" }", "{ honesty = nan }", "[1]"],
        ]
        // Values that may or may not be valid depending on the key: only a clear error is required.
        let anything = ["\"\"", "\"nope\"", "9223372036854775807", "0", "99999999999999999999", "\"\\u0000\""]
        for line in keys {
            for replacement in wrongType[line.kind] ?? [] {
                var edited = lines
                edited[line.index] = "\(line.key) = \(replacement)"
                try checkConfig(
                    folder, Array(edited.joined(separator: "\n").utf8),
                    .rejected(names: [line.dotted], line: line.index + 1),
                    "\(line.table).\(line.key) = \(replacement)", counts: &counts)
            }
            for replacement in anything {
                var edited = lines
                edited[line.index] = "\(line.key) = \(replacement)"
                try checkConfig(
                    folder, Array(edited.joined(separator: "\n").utf8), .either,
                    "\(line.table).\(line.key) = \(replacement)", counts: &counts)
            }
        }
        #expect(counts.cases > 300)
        #expect(counts.rejected > 250)
    }

    /// Unknown keys and tables, missing sections, repeated tables and keys.
    @Test func unknownMissingAndRepeatedPartsAreNamed() throws {
        let folder = try ConfigFolder()
        let (lines, keys, headers) = configLines(fuzzBaseConfig)
        var counts = ConfigCaseCounts()
        // An unknown key in every table, and at the top.
        for (index, table) in headers {
            var edited = lines
            edited.insert("zzz_unknown = 1", at: index + 1)
            try checkConfig(
                folder, Array(edited.joined(separator: "\n").utf8),
                .rejected(names: ["\(table).zzz_unknown"], line: index + 2), "unknown key in [\(table)]",
                counts: &counts)
        }
        try checkConfig(
            folder, Array(("zzz_unknown = 1\n" + fuzzBaseConfig).utf8), .rejected(names: ["zzz_unknown"], line: 1),
            "unknown top-level key", counts: &counts)
        try checkConfig(
            folder, Array((fuzzBaseConfig + "\n[zzz_table]\nx = 1").utf8), .rejected(names: ["zzz_table"], line: nil),
            "unknown table", counts: &counts)
        // Each section removed: only the optional ones may go.
        let optional: Set = ["generation", "analysis", "conditions.steered", "roles.embedder"]
        for (position, (index, table)) in headers.enumerated() {
            let end = position + 1 < headers.count ? headers[position + 1].index : lines.count
            var edited = lines
            edited.removeSubrange(index..<end)
            try checkConfig(
                folder, Array(edited.joined(separator: "\n").utf8),
                optional.contains(table) ? .accepted : .rejectedAnyhow,
                "without [\(table)]", counts: &counts)
        }
        // A table or a key given twice is a TOML error at its line.
        for (position, (index, table)) in headers.enumerated() {
            let end = position + 1 < headers.count ? headers[position + 1].index : lines.count
            let edited = lines + [""] + lines[index..<end]
            try checkConfig(
                folder, Array(edited.joined(separator: "\n").utf8), .rejected(names: [table], line: lines.count + 2),
                "[\(table)] twice", counts: &counts)
        }
        for line in keys {
            var edited = lines
            edited.insert(lines[line.index], at: line.index + 1)
            try checkConfig(
                folder, Array(edited.joined(separator: "\n").utf8),
                .rejected(names: [line.dotted], line: line.index + 2), "\(line.dotted) twice", counts: &counts)
        }
        #expect(counts.cases > 50)
    }

    /// References to things the config does not define, and the other cross-checks.
    @Test func undefinedReferencesAndCrossChecksAreNamed() throws {
        let folder = try ConfigFolder()
        var counts = ConfigCaseCounts()
        let cases: [(old: String, new: String, names: [String])] = [
            ("kind = \"simulated\"", "kind = \"bedrock\"", ["providers.sim.kind"]),
            ("kind = \"openai\"", "kind = \"\"", ["providers.remote.kind"]),
            ("provider = \"sim\"", "provider = \"nowhere\"", [".provider"]),
            ("model = \"writer\"", "model = \"ghost\"", ["roles.generator.model"]),
            ("model = \"remote-target\"", "model = \"ghost\"", ["roles.embedder.model"]),
            ("models = [\"target\", \"remote-target\"]", "models = [\"target\", \"ghost\"]", ["targets.models"]),
            ("models = [\"target\", \"remote-target\"]", "models = [\"target\", \"target\"]", ["targets.models"]),
            (
                "value_sets = [\"hhh\", \"custom\", \"inline\"]",
                "value_sets = [\"hhh\", \"custom\", \"inline\", \"nope\"]",
                ["sweep.value_sets"]
            ),
            ("value_sets = [\"hhh\", \"custom\", \"inline\"]", "value_sets = [\"hhh\", \"custom\"]", ["inline"]),
            ("formats = [\"mcq\", \"open\"]", "formats = [\"mcq\", \"essay\"]", ["sweep.formats"]),
            (
                "target_ranking.hhh = [\"honesty\", \"harmlessness\", \"helpfulness\"]",
                "target_ranking.hhh = [\"honesty\", \"honesty\", \"helpfulness\"]",
                ["conditions.steered.target_ranking"]
            ),
            (
                "target_ranking.custom = [\"care\", \"candour\"]", "target_ranking.nope = [\"care\", \"candour\"]",
                ["conditions.steered.target_ranking"]
            ),
            (
                "utilities.mcq = { honesty = 1.0, care = 0.5 }", "utilities.mcq = { honesty = 1.0, kindness = 0.5 }",
                ["models.target.utilities.mcq"]
            ),
            (
                "utilities.mcq = { honesty = 1.0, care = 0.5 }", "utilities.essay = { honesty = 1.0 }",
                ["models.target.utilities"]
            ),
            ("file = \"custom.json\"", "file = \"missing.json\"", ["value_sets.custom.file"]),
            ("file = \"custom.json\"", "file = \"/\"", ["value_sets.custom"]),
            ("max_faults_per_request = 1", "max_faults_per_request = 3", ["providers.sim.max_faults_per_request"]),
            ("thrift = \"Spending as little as possible.\"", "\"bad name\" = \"Spending.\"", ["value_sets.inline"]),
            ("thrift = \"Spending as little as possible.\"", "\"bad\\nname\" = \"Spending.\"", ["value_sets.inline"]),
            ("comfort = \"Being at ease.\"", "comfort = \"\"", ["value_sets.inline.values.comfort"]),
            ("[conditions.default]", "[conditions.calm]", ["conditions"]),
        ]
        for (old, new, names) in cases {
            let edited = fuzzBaseConfig.replacingOccurrences(of: old, with: new, options: [], range: nil)
            #expect(edited != fuzzBaseConfig, "no line \(old)")
            try checkConfig(folder, Array(edited.utf8), .rejected(names: names, line: nil), new, counts: &counts)
        }
        // The key variable unset, and set but empty.
        for environment in [[:], ["FUZZ_KEY": ""]] {
            try checkConfig(
                folder, Array(fuzzBaseConfig.utf8), .rejected(names: ["providers.remote.api_key_env"], line: nil),
                "key variable \(environment)", environment: environment, counts: &counts)
        }
        #expect(counts.rejected == counts.cases)
    }

    /// Not TOML at all: empty, bad UTF-8, binary, a folder, a missing file.
    @Test func unreadableFilesNameTheFile() throws {
        let folder = try ConfigFolder()
        var counts = ConfigCaseCounts()
        let base = Array(fuzzBaseConfig.utf8)
        let bad: [(String, [UInt8])] = [
            ("empty", []), ("one newline", [0x0A]), ("a lone 0xFF", base.prefix(40) + [0xFF] + base.dropFirst(40)),
            ("a cut UTF-8 sequence", base.prefix(8) + [0xC3] + base.dropFirst(8)),
            ("a NUL", base.prefix(20) + [0] + base.dropFirst(20)),
            ("UTF-16", Array(fuzzBaseConfig.data(using: .utf16)!)),
            ("binary", (0..<512).map { UInt8(($0 * 37) & 0xFF) }),
            ("JSON", Array("{\"sweep\": {\"name\": \"x\"}}".utf8)),
        ]
        for (label, bytes) in bad {
            try checkConfig(folder, bytes, .rejectedAnyhow, label, counts: &counts)
        }
        for path in [folder.folder.path, folder.folder.appendingPathComponent("absent.toml").path] {
            #expect(throws: ConfigError.self) { try SweepConfig.load(path: path, environment: fuzzEnvironment) }
            do {
                _ = try SweepConfig.load(path: path, environment: fuzzEnvironment)
            } catch {
                expectOneLine("\(error)", path)
                #expect("\(error)".hasPrefix(path))
            }
        }
        #expect(counts.rejected == counts.cases)
    }

    /// A `[` that opens no key where a statement starts made TOMLKit's parser (toml++) assert and end the
    /// process; it is a syntax error at its line. The same bytes inside values, strings and comments are not.
    @Test func tableHeadersWithoutAKeyAreSyntaxErrorsAtTheirLine() throws {
        let folder = try ConfigFolder()
        var counts = ConfigCaseCounts()
        let lineCount = fuzzBaseConfig.components(separatedBy: "\n").count
        let headers = ["[= \"gpt-x\"", "[#x]", "[", "[ .a]", "[[=]]", "[{}]", "[\t,a]", "[é]", "[\r", "[ [x]]", "[+1]"]
        for header in headers {
            try checkConfig(
                folder, Array((fuzzBaseConfig + "\n" + header + "\nx = 1").utf8),
                .rejected(names: ["TOML syntax"], line: lineCount + 1), "header \(header.debugDescription)",
                counts: &counts)
        }
        #expect(counts.rejected == headers.count)
        // Positive control: the same bytes in comments, a multi-line array and a multi-line string.
        let valid = fuzzBaseConfig.replacingOccurrences(
            of: "value_sets = [\"hhh\", \"custom\", \"inline\"]",
            with: "# [= a comment\nvalue_sets = [\n    \"hhh\", # [= comment\n\"custom\",\n\"inline\",\n]"
        )
        .replacingOccurrences(of: "comfort = \"Being at ease.\"", with: "comfort = '''\n[= Being\n[#at ease.'''")
        .replacingOccurrences(of: "thrift = \"Spending as little as possible.\"", with: "thrift = \"\"\"\n[=\n[\"\"\"")
        #expect(valid.components(separatedBy: "\n").count == lineCount + 9)
        try checkConfig(folder, Array(valid.utf8), .accepted, "brackets in comments and strings", counts: &counts)
    }

    /// Seeded random cuts, byte edits and repeats of the whole text.
    @Test func randomEditsNeverCrashAndFailInOneLine() throws {
        let folder = try ConfigFolder()
        var mutator = Mutator(seed: 20_251_129, key: "config")
        var counts = ConfigCaseCounts()
        for round in 0..<400 {
            var bytes = Array(fuzzBaseConfig.utf8)
            for _ in 0...mutator.below(3) { bytes = mutator.mutate(bytes) }
            try checkConfig(folder, bytes, .either, "random edit \(round)", counts: &counts)
        }
        #expect(counts.rejected > 200, "the edits should break most configs: \(counts.rejected)")
    }

    /// The JSON value-set file the config names, mutated: the error names the JSON file.
    @Test func badValueSetFilesNameTheFile() throws {
        let folder = try ConfigFolder()
        let config = Array(fuzzBaseConfig.utf8)
        let jsonPath = folder.folder.appendingPathComponent("custom.json").path
        var counts = ConfigCaseCounts()
        let rejected: [String] = [
            "", "null", "[]", "42", "\"custom\"", "{", #"{"values": 3}"#, #"{"values": [1, 2]}"#,
            #"{"values": [{"name": "care"}, {"name": "candour", "definition": "x"}]}"#,
            #"{"values": [{"name": "care", "definition": null}, {"name": "candour", "definition": "x"}]}"#,
            #"{"values": [{"name": 5, "definition": "x"}, {"name": "candour", "definition": "x"}]}"#,
            #"{"values": [{"name": "care", "definition": "x"}]}"#,
            #"{"values": [{"name": "care", "definition": "x"}, {"name": "care", "definition": "y"}]}"#,
            #"{"values": [{"name": "ca re", "definition": "x"}, {"name": "candour", "definition": "y"}]}"#,
            #"{"values": [{"name": "ca\nre", "definition": "x"}, {"name": "candour", "definition": "y"}]}"#,
            #"{"care": "x", "candour": 5}"#, #"{"care": "x"}"#, #"{"care": "", "candour": "y"}"#,
            #"{"1care": "x", "candour": "y"}"#, #"{"care\r\nx": "x", "candour": "y"}"#,
            String(repeating: "[", count: 100_000),
        ]
        for text in rejected {
            try folder.writeValueSet(Array(text.utf8))
            try checkConfig(
                folder, config, .rejected(names: [jsonPath], line: nil), "value set \(text.prefix(60))", counts: &counts
            )
        }
        try folder.writeValueSet([0xFF, 0xFE, 0x7B])
        try checkConfig(folder, config, .rejected(names: [jsonPath], line: nil), "value set bad UTF-8", counts: &counts)
        // The paper's flat format and our own both load (positive controls).
        for text in [#"{"care": "Looking after people.", "candour": "Saying what is true."}"#, fuzzValueSetJSON] {
            try folder.writeValueSet(Array(text.utf8))
            try checkConfig(folder, config, .accepted, "value set \(text.prefix(40))", counts: &counts)
        }
        var mutator = Mutator(seed: 20_251_129, key: "value-set")
        for round in 0..<150 {
            try folder.writeValueSet(mutator.mutate(mutator.mutate(Array(fuzzValueSetJSON.utf8))))
            try checkConfig(folder, config, .either, "value set random \(round)", counts: &counts)
        }
        #expect(counts.rejected > rejected.count + 50)
    }
}

// MARK: - Imported scenario and prompt files

/// hhh and personal_protective on a simulated model, evaluating imported scenarios only.
let importFuzzConfig = """
    [sweep]
    name = "import-fuzz"
    store = "results.sqlite"
    value_sets = ["hhh", "personal_protective"]
    scenarios_per_pair = 0

    [providers.sim]
    kind = "simulated"

    [models.writer]
    provider = "sim"

    \(writerRoles)

    [targets]
    models = ["writer"]
    """

func paperFile(_ name: String, _ ext: String) throws -> [UInt8] {
    guard let url = Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures/paper") else {
        throw FixtureError(message: "fixture paper/\(name).\(ext) is missing from the test bundle")
    }
    return Array(try Data(contentsOf: url))
}

/// Every row of every table of a store, as text: equal dumps mean an unchanged store.
func storeDump(_ path: String) throws -> [String] {
    var configuration = Configuration()
    configuration.readonly = true
    return try DatabaseQueue(path: path, configuration: configuration).read { db in
        var rows: [String] = []
        for table in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") {
            for row in try Row.fetchAll(db, sql: "SELECT * FROM \"\(table)\" ORDER BY rowid") {
                rows.append("\(table): \(row.description)")
            }
        }
        return rows
    }
}

/// A store with the paper fixture imported, and a place for mutated files.
struct ImportBench {
    let config: SweepConfig
    let store: ResultStore
    let folder: URL
    let baseScenarios: [UInt8]
    let basePrompts: [UInt8]
    var cases = 0
    var rejected = 0

    init() throws {
        let (config, folder) = try writeTemporaryConfig(importFuzzConfig)
        self.config = config
        self.folder = folder
        store = try ResultStore(path: config.storePath)
        baseScenarios = try paperFile("scenarios_hhh", "csv")
        basePrompts = try paperFile("prompts", "json")
        // Positive control: the unmutated files import.
        let scenarios = folder.appendingPathComponent("base.csv").path
        let prompts = folder.appendingPathComponent("base.json").path
        try Data(baseScenarios).write(to: URL(fileURLWithPath: scenarios))
        try Data(basePrompts).write(to: URL(fileURLWithPath: prompts))
        let summary = try PaperImport.run(
            scenarioFiles: [scenarios], promptsFile: prompts, config: config, store: store)
        #expect(summary.scenarios >= 5 && summary.prompts >= 3, "\(summary)")
    }

    /// Imports the given files; a failure must be one line naming the file (and `line` when given) and
    /// leave the store exactly as it was. Returns whether the import failed.
    @discardableResult
    mutating func check(
        scenarios: [UInt8]? = nil, prompts: [UInt8]? = nil, _ label: String, mustFail: Bool,
        naming: [String] = [], line: Int? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> Bool {
        cases += 1
        let scenarioPath = folder.appendingPathComponent("case-\(cases).csv").path
        let promptPath = folder.appendingPathComponent("case-\(cases).json").path
        try Data(scenarios ?? baseScenarios).write(to: URL(fileURLWithPath: scenarioPath))
        try Data(prompts ?? basePrompts).write(to: URL(fileURLWithPath: promptPath))
        let before = try storeDump(config.storePath)
        do {
            try PaperImport.run(
                scenarioFiles: [scenarioPath], promptsFile: promptPath, config: config, store: store)
            #expect(!mustFail, "\(label): imported, but should have failed", sourceLocation: sourceLocation)
            return false
        } catch let error as ImportError {
            rejected += 1
            let text = error.description
            expectOneLine(text, label, sourceLocation: sourceLocation)
            let file = prompts == nil ? scenarioPath : promptPath
            #expect(error.file == file, "\(label): \(text)", sourceLocation: sourceLocation)
            #expect(text.hasPrefix(file), "\(label): \(text)", sourceLocation: sourceLocation)
            for name in naming { #expect(text.contains(name), "\(label): \(text)", sourceLocation: sourceLocation) }
            if let line { #expect(error.line == line, "\(label): \(text)", sourceLocation: sourceLocation) }
            #expect(
                try storeDump(config.storePath) == before, "\(label): the store changed", sourceLocation: sourceLocation
            )
            return true
        }
    }
}

/// The fixture's records, and the file written back from edited records.
func csvRecords(_ bytes: [UInt8]) throws -> [CSVReader.Record] { try CSVReader.parse(Data(bytes), file: "base.csv") }

func csvBytes(_ records: [[String]]) -> [UInt8] {
    Array(records.map { $0.map(CSVReader.escape).joined(separator: ",") }.joined(separator: "\r\n").utf8)
}

@Suite("Bad inputs: imported files")
struct BadImportTests {
    /// Each field of each row made wrong in turn, each column removed or repeated, broken quoting.
    @Test func badRowsAndColumnsNameTheFileAndLineAndWriteNothing() throws {
        var bench = try ImportBench()
        let records = try csvRecords(bench.baseScenarios)
        let header = records[0].fields
        let rows = records.dropFirst().map(\.fields)
        func column(_ name: String) -> Int { header.firstIndex(of: name)! }
        /// The line a row starts on once `table` is written out.
        func lineOf(row: Int, in table: [[String]]) throws -> Int { try csvRecords(csvBytes(table))[row + 1].line }

        let fieldEdits: [(column: String, value: String, naming: String)] = [
            ("value1", "nonsense", "nonsense"), ("value2", "", "empty value2"), ("keep_scenario", "maybe", "maybe"),
            ("keep_scenario", "tr\nue", "keep_scenario"), ("scenario_id", "", "empty scenario_id"),
            ("scenario_id", "  ", "empty scenario_id"), ("description", "", "empty description"),
            ("action1", "\r\n", "empty action1"), ("value1", "help\nfulness", "no configured value set"),
            ("value1", "nonhate", "no configured value set"),
        ]
        for (index, row) in rows.enumerated() {
            for edit in fieldEdits {
                var table = [header] + rows
                table[index + 1][column(edit.column)] = edit.value
                try bench.check(
                    scenarios: csvBytes(table), "row \(index) \(edit.column) = \(edit.value.debugDescription)",
                    mustFail: true, naming: [edit.naming], line: try lineOf(row: index, in: table))
            }
            // value2 equal to value1, a field too many or too few, an id seen before.
            var same = [header] + rows
            same[index + 1][column("value2")] = row[column("value1")]
            try bench.check(
                scenarios: csvBytes(same), "row \(index) value2 = value1", mustFail: true,
                naming: ["value1 and value2"],
                line: try lineOf(row: index, in: same))
            var longer = [header] + rows
            longer[index + 1].append("extra")
            try bench.check(
                scenarios: csvBytes(longer), "row \(index) with an extra field", mustFail: true, naming: ["fields"],
                line: try lineOf(row: index, in: longer))
            var shorter = [header] + rows
            shorter[index + 1].removeLast()
            try bench.check(
                scenarios: csvBytes(shorter), "row \(index) missing a field", mustFail: true, naming: ["fields"],
                line: try lineOf(row: index, in: shorter))
            if index > 0 {
                var repeated = [header] + rows
                repeated[index + 1][column("scenario_id")] = rows[0][column("scenario_id")]
                try bench.check(
                    scenarios: csvBytes(repeated), "row \(index) repeats an id", mustFail: true,
                    naming: ["appears twice"], line: try lineOf(row: index, in: repeated))
            }
        }
        // Repeated ids that hold a line break.
        var broken = [header] + rows
        broken[1][column("scenario_id")] = "a\nb"
        broken[2][column("scenario_id")] = "a\nb"
        try bench.check(scenarios: csvBytes(broken), "repeated id with a line break", mustFail: true)
        // Columns.
        for name in PaperImport.requiredColumns {
            var renamed = [header] + rows
            renamed[0][column(name)] = "x_" + name
            try bench.check(
                scenarios: csvBytes(renamed), "no column \(name)", mustFail: true, naming: [name], line: 1)
            var twice = [header] + rows
            twice[0][0] = name
            try bench.check(
                scenarios: csvBytes(twice), "column \(name) twice", mustFail: true, naming: ["appears twice"], line: 1)
        }
        // Quoting and encoding.
        let text = bench.baseScenarios
        let cases: [(String, [UInt8])] = [
            ("empty", []), ("only a BOM", [0xEF, 0xBB, 0xBF]),
            ("unclosed quote at the end", text + Array("\n\"hhh_9999,oops".utf8)),
            ("stray quote", text + Array("\n9,hh\"h,x".utf8)),
            ("text after a closing quote", text + Array("\n9,\"hhh\"x,y".utf8)),
            ("bad UTF-8", text.prefix(300) + [0xFF, 0xFE] + text.dropFirst(300)),
            ("a cut UTF-8 sequence", text + [0xE2, 0x82]),
            ("UTF-16", Array(String(decoding: text, as: UTF8.self).data(using: .utf16)!)),
        ]
        for (label, bytes) in cases {
            try bench.check(scenarios: bytes, label, mustFail: true)
        }
        // Positive control: a header alone is a valid file with no scenarios.
        #expect(try !bench.check(scenarios: csvBytes([header]), "header only", mustFail: false))
        #expect(bench.cases > 100 && bench.rejected == bench.cases - 1)
    }

    @Test func badPromptFilesNameTheFileAndWriteNothing() throws {
        var bench = try ImportBench()
        let bad = [
            "", "not json", "null", "[]", "42", "\"hhh_0001\"", "{", #"{"hhh_0001": 5}"#, #"{"hhh_0001": null}"#,
            #"{"hhh_0001": ["a"]}"#, #"{"hhh_0001": {"text": "a"}}"#, #"{"hhh\n0001": 5}"#,
            String(repeating: "[", count: 100_000), String(repeating: "{\"a\":", count: 50_000),
        ]
        for text in bad {
            try bench.check(prompts: Array(text.utf8), "prompts \(text.prefix(40).debugDescription)", mustFail: true)
        }
        try bench.check(prompts: [0xFF, 0x7B, 0x7D], "prompts bad UTF-8", mustFail: true)
        try bench.check(prompts: Array(bench.basePrompts.prefix(100)), "prompts cut", mustFail: true)
        // Positive control: an empty object imports (with the CSV's own prompts).
        #expect(try !bench.check(prompts: Array("{}".utf8), "no prompts", mustFail: false))
        #expect(bench.rejected == bench.cases - 1)
    }

    /// Seeded random cuts and byte edits of both files.
    @Test func randomEditsNeverCrashAndNeverHalfWrite() throws {
        var bench = try ImportBench()
        var mutator = Mutator(seed: 20_251_129, key: "import")
        for round in 0..<150 {
            var bytes = bench.baseScenarios
            for _ in 0...mutator.below(2) { bytes = mutator.mutate(bytes) }
            try bench.check(scenarios: bytes, "random scenarios \(round)", mustFail: false)
        }
        for round in 0..<80 {
            try bench.check(prompts: mutator.mutate(bench.basePrompts), "random prompts \(round)", mustFail: false)
        }
        #expect(bench.rejected > 60, "the edits should break many files: \(bench.rejected)")
    }
}

// MARK: - Provider responses

/// A fake provider whose next answer the test sets, a caller over it, and the store it records in.
struct ProviderBench {
    let server: FakeProviderServer
    let next: Locked<FakeResponse>
    let caller: ModelCaller
    let config: SweepConfig
    let store: ResultStore
    private(set) var sample = 0

    static func start(kind: String) async throws -> ProviderBench {
        let next = Locked(FakeResponse())
        let server = try await FakeProviderServer.start { _ in next.current }
        let environment = ["FUZZ_PROVIDER_KEY": "sk-fuzz-provider"]
        let (config, _) = try fakeProviderConfig(
            baseURL: server.baseURL, kind: kind, keyEnv: "FUZZ_PROVIDER_KEY", environment: environment, timeout: 5,
            maxRetries: 0)
        let caller = ModelCaller(
            config: config, providers: EmbeddedSweep.providers(for: config, environment: environment),
            limiter: InProcessRateLimiter(limits: [:]), budget: nil)
        return ProviderBench(
            server: server, next: next, caller: caller, config: config, store: try ResultStore(path: config.storePath))
    }

    /// The stored call row of a task.
    func callRow(task: String) throws -> CallRow? { try callRows(config.storePath).first { $0.taskID == task } }

    /// One chat call answered with `response`: its text (nil if it failed) and its call row.
    mutating func chat(_ response: FakeResponse) async throws -> (text: String?, row: CallRow?) {
        sample += 1
        next.withLock { $0 = response }
        let task = "fuzz/\(sample)"
        let text = try await caller.chat(
            stage: .judge, modelName: "writer", prompt: nil, messages: [ChatMessage(.user, "Pick one, \(sample).")],
            temperature: 0, maxTokens: 64, sampleIndex: sample, taskID: task, records: store)
        return (text?.text, try callRow(task: task))
    }

    /// One embeddings call of two texts answered with `response`.
    mutating func embed(_ response: FakeResponse) async throws -> (vectors: [[Double]]?, row: CallRow?) {
        sample += 1
        next.withLock { $0 = response }
        let task = "fuzz/\(sample)"
        let vectors = try await caller.embed(
            modelName: "embed", texts: ["first \(sample)", "second \(sample)"], taskID: task, records: store)
        return (vectors, try callRow(task: task))
    }

    func stop() async throws { try await server.stop() }
}

/// A failed call: no text, a failed row with a one-line error, never a response.
func expectFailedCall(
    _ text: String?, _ row: CallRow?, _ label: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(text == nil, "\(label): gave \(text ?? "")", sourceLocation: sourceLocation)
    #expect(row?.status == "failed", "\(label): \(row?.status ?? "no row")", sourceLocation: sourceLocation)
    #expect(row?.response == nil, "\(label)", sourceLocation: sourceLocation)
    expectOneLine(row?.error ?? "", label, sourceLocation: sourceLocation)
    #expect((row?.error?.count ?? 0) < 400, "\(label): \(row?.error ?? "")", sourceLocation: sourceLocation)
}

func body(_ text: String, status: Int = 200, contentType: String? = nil) -> FakeResponse {
    FakeResponse(status: status, headers: contentType.map { [("Content-Type", $0)] } ?? [], body: text)
}

@Suite("Bad inputs: provider responses", .serialized)
struct BadProviderResponseTests {
    static let openAIBad: [String] = [
        "", "not json", "{", "[]", "null", "42", "\"text\"", "{}", #"{"choices": []}"#, #"{"choices": null}"#,
        #"{"choices": "text"}"#, #"{"choices": [{}]}"#, #"{"choices": [{"message": null}]}"#,
        #"{"choices": [{"message": "hi"}]}"#,
        #"{"choices": [{"message": {"content": 42}}]}"#, #"{"choices": [{"message": {"content": ["a"]}}]}"#,
        #"{"choices": [{"message": {"content": {"text": "a"}}}]}"#,
        #"{"choices": [{"text": "completion-style"}]}"#,
        #"{"error": {"message": "overloaded", "type": "server_error"}}"#,
        #"{"object": "error", "message": "model not loaded"}"#, "<html><body>502 Bad Gateway</body></html>",
        String(repeating: "[", count: 100_000), String(repeating: "x", count: 1 << 20),
        "{\"choices\": [{\"message\": {\"content\": \"cut", "\u{FEFF}not json",
    ]

    static let anthropicBad: [String] = [
        "", "not json", "{}", #"{"content": "text"}"#, #"{"content": null}"#,
        #"{"content": [{"type": "text", "text": 5}]}"#, #"{"content": [{"text": "no type"}]}"#,
        #"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#,
        #"{"choices": [{"message": {"content": "OpenAI shape"}}]}"#,
    ]

    @Test func malformedOpenAIRepliesAreFailedCalls() async throws {
        var bench = try await ProviderBench.start(kind: "openai")
        // Positive control: a good reply is an answer.
        let good = try await bench.chat(Wire.openAIChat("Option A."))
        #expect(good.text == "Option A." && good.row?.status == "ok")
        for text in Self.openAIBad {
            for contentType in [nil, "text/html"] {
                let (answer, row) = try await bench.chat(body(text, contentType: contentType))
                expectFailedCall(answer, row, "openai \(text.prefix(50).debugDescription) \(contentType ?? "")")
            }
        }
        // Truncations of a good reply.
        let full = Wire.openAIChat("Option B, because it is kinder.").body
        for cut in stride(from: 0, to: full.count - 1, by: 7) {
            let (answer, row) = try await bench.chat(body(String(full.prefix(cut))))
            expectFailedCall(answer, row, "openai cut at \(cut)")
        }
        // Errors with bodies of every shape (401, 403 and 404 stop the sweep: FailFastTests).
        for status in [400, 409, 418, 422, 500, 502, 503, 529, 599] {
            for text in ["", "not json", #"{"error": null}"#, String(repeating: "e\r\n", count: 5000)] {
                let (answer, row) = try await bench.chat(body(text, status: status))
                expectFailedCall(answer, row, "openai HTTP \(status) \(text.prefix(20).debugDescription)")
            }
        }
        try await bench.stop()
    }

    @Test func malformedAnthropicRepliesAreFailedCalls() async throws {
        var bench = try await ProviderBench.start(kind: "anthropic")
        let good = try await bench.chat(
            Wire.anthropicMessage([Wire.text("Option A.")], inputTokens: 10, outputTokens: 3))
        #expect(good.text == "Option A." && good.row?.status == "ok")
        for text in Self.anthropicBad + Self.openAIBad.prefix(8) {
            let (answer, row) = try await bench.chat(body(text))
            expectFailedCall(answer, row, "anthropic \(text.prefix(50).debugDescription)")
        }
        try await bench.stop()
    }

    /// Replies that parse but hold no answer: the call succeeded (status ok, paid for), and its empty text
    /// is what the stages re-ask and in the end store as invalid.
    @Test func repliesWithoutAnAnswerAreUnusableAnswersNotFailures() async throws {
        let empty: [(kind: String, body: String)] = [
            ("openai", #"{"choices": [{"message": {"content": null}}]}"#),
            ("openai", #"{"choices": [{"message": {"content": "  \n "}}]}"#),
            ("anthropic", #"{"content": []}"#), ("anthropic", #"{"content": [{"type": "image"}]}"#),
            ("anthropic", #"{"content": [{"type": "text"}]}"#),
        ]
        for kind in ["openai", "anthropic"] {
            var bench = try await ProviderBench.start(kind: kind)
            for reply in empty where reply.kind == kind {
                let (answer, row) = try await bench.chat(body(reply.body))
                #expect(answer?.trimmingCharacters(in: .whitespacesAndNewlines) == "", "\(reply.body)")
                #expect(row?.status == "ok", "\(reply.body)")
            }
            try await bench.stop()
        }
    }

    @Test func malformedEmbeddingsAreFailedCalls() async throws {
        var bench = try await ProviderBench.start(kind: "openai")
        let good = try await bench.embed(
            .json(["data": [["index": 1, "embedding": [0.0, 1.0]], ["index": 0, "embedding": [1.0, 0.0]]]]))
        #expect(good.vectors == [[1, 0], [0, 1]] && good.row?.status == "ok")
        let bad = [
            "", "not json", "{}", #"{"data": null}"#, #"{"data": "x"}"#, #"{"data": [1, 2]}"#,
            #"{"data": [{"embedding": [1.0]}]}"#, #"{"data": [{"embedding": "x"}, {"embedding": "y"}]}"#,
            #"{"data": [{"embedding": null}, {"embedding": [1]}]}"#,
            #"{"data": [{"embedding": [1, "a"]}, {"embedding": [1]}]}"#,
            #"{"data": [{"embedding": [1e400]}, {"embedding": [1]}]}"#,
            #"{"error": {"message": "no such model"}}"#,
        ]
        for text in bad {
            let (vectors, row) = try await bench.embed(body(text))
            #expect(vectors == nil, "embeddings \(text): \(String(describing: vectors))")
            #expect(row?.status == "failed", "embeddings \(text)")
            expectOneLine(row?.error ?? "", "embeddings \(text)")
        }
        try await bench.stop()
    }

    /// Usage figures that are not token counts: the answer stands, the tokens recorded stay sane (so
    /// no cost, budget or rate-limit arithmetic downstream can overflow).
    @Test func absurdUsageFiguresAreNotTakenAsTokens() async throws {
        var bench = try await ProviderBench.start(kind: "openai")
        let usages: [Any] = [
            -5, Int.max, Int.min, 1e30, -1e30, "12", NSNull(), [1], ["n": 1], 4_000_000_000_000, true,
        ]
        for usage in usages {
            let response = FakeResponse.json([
                "choices": [["message": ["role": "assistant", "content": "Option A."]]],
                "usage": ["prompt_tokens": usage, "completion_tokens": usage, "total_tokens": usage],
            ])
            let (answer, row) = try await bench.chat(response)
            #expect(answer == "Option A.", "usage \(usage)")
            #expect(row?.status == "ok", "usage \(usage)")
            let stored = try openStore(bench.config.storePath).read { db in
                try Row.fetchOne(
                    db, sql: "SELECT input_tokens, output_tokens, cost_usd FROM call WHERE task_id = ?",
                    arguments: [row?.taskID ?? ""])
            }
            let input: Int = stored?["input_tokens"] ?? -1
            let output: Int = stored?["output_tokens"] ?? -1
            let cost: Double = stored?["cost_usd"] ?? -1
            #expect((0...HTTPProvider.maximumReportedTokens).contains(input), "usage \(usage): input \(input)")
            #expect((0...HTTPProvider.maximumReportedTokens).contains(output), "usage \(usage): output \(output)")
            #expect(cost >= 0 && cost < 1e6, "usage \(usage): cost \(cost)")
        }
        try await bench.stop()
    }

    /// Retry-After values that are not a delay: a failed call, no crash (an infinite or huge value
    /// overflowed `Duration` in the caller's pause), no absurd pause.
    @Test func absurdRetryAfterValuesAreBounded() async throws {
        let values = [
            "1e308", "inf", "-inf", "nan", "-5", "9223372036854775808", "soon", "", "Fri, 31 Dec 9999 23:59:59 GMT",
        ]
        for value in values {
            // A fresh caller each time: a 429 pauses the model in the caller's limiter.
            var bench = try await ProviderBench.start(kind: "openai")
            let (answer, row) = try await bench.chat(Wire.error(429, "slow down", headers: [("Retry-After", value)]))
            expectFailedCall(answer, row, "Retry-After \(value)")
            try await bench.stop()
            if let seconds = HTTPProvider.retryAfterSeconds(value) {
                #expect(seconds.isFinite && (0...HTTPProvider.maximumRetryAfterSeconds).contains(seconds), "\(value)")
            }
        }
        #expect(HTTPProvider.retryAfterSeconds("1e308") == HTTPProvider.maximumRetryAfterSeconds)
        #expect(HTTPProvider.retryAfterSeconds("nan") == nil)
        #expect(HTTPProvider.retryAfterSeconds("2") == 2)
    }

    /// Seeded random edits of good replies: an answer or a failed call, never a crash.
    @Test func randomEditsOfGoodRepliesAreAnswersOrFailedCalls() async throws {
        var bench = try await ProviderBench.start(kind: "openai")
        var mutator = Mutator(seed: 20_251_129, key: "provider")
        let good = Array(Wire.openAIChat("Option A.").body.utf8)
        var failed = 0
        for round in 0..<60 {
            let bytes = mutator.mutate(mutator.mutate(good))
            let (answer, row) = try await bench.chat(body(String(decoding: bytes, as: UTF8.self)))
            if answer == nil {
                failed += 1
                expectFailedCall(answer, row, "random reply \(round)")
            } else {
                #expect(row?.status == "ok" && row?.response == answer, "random reply \(round)")
            }
        }
        #expect(failed > 20)
        try await bench.stop()
    }
}

// MARK: - Judgments files (`conflictscope rank --judgments`)

@Suite("Bad inputs: judgments files")
struct BadJudgmentsFileTests {
    static var validLines: [String] {
        var lines: [String] = []
        let values = ["honesty", "harmlessness", "helpfulness"]
        for index in 0..<18 {
            let first = values[index % 3]
            let second = values[(index + 1) % 3]
            lines.append(
                judgmentLine(
                    format: index % 2 == 0 ? "mcq" : "open", scenario: "s\(index)", value1: first, value2: second,
                    choice: index % 4 == 0 ? "B" : "A", extra: index % 3 == 0 ? #","likert_a":6,"likert_b":2"# : ""))
        }
        return lines
    }

    /// Reads `bytes` as a judgments file: nil when it reads, else the error, which must be one line
    /// starting with the path.
    func read(_ bytes: [UInt8], _ label: String, folder: URL, sourceLocation: SourceLocation = #_sourceLocation)
        throws -> String?
    {
        let path = folder.appendingPathComponent("judgments.jsonl").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        do {
            _ = try JudgmentReader.read(path: path)
            return nil
        } catch {
            let text = "\(error)"
            expectOneLine(text, label, sourceLocation: sourceLocation)
            #expect(text.hasPrefix(path), "\(label): \(text)", sourceLocation: sourceLocation)
            return text
        }
    }

    /// Few cases: in a debug build each read costs about a second (`LineReader` fills a 4 MiB buffer
    /// element by element).
    @Test func badLinesGiveOneLineErrorsAndRandomEditsNeverCrash() throws {
        let folder = try temporaryDirectory("judgments-fuzz")
        let valid = Array((Self.validLines.joined(separator: "\n") + "\n").utf8)
        #expect(try read(valid, "valid", folder: folder) == nil)
        let line = Self.validLines[0]
        let bad: [String] = [
            "{", "[]", line.replacingOccurrences(of: "\"choice\":\"B\"", with: "\"choice\":\"\\uD800\""),
            line.replacingOccurrences(of: "\"choice\":\"B\"", with: "\"choice\":\"\\u00\""),
            line.replacingOccurrences(of: "\"choice\":\"B\"", with: "\"choice\":5"),
            line.replacingOccurrences(of: "\"likert_a\":6", with: "\"likert_a\":99999999999999999999999"),
            String(repeating: "{\"a\":", count: 50_000), "{\"model\":\"" + String(repeating: "\\", count: 1001) + "\"}",
        ]
        #expect(bad.allSatisfy { $0 != line })
        var failures = 0
        for (index, text) in bad.enumerated() {
            let lines = Self.validLines + [text] + Self.validLines.suffix(1)
            if try read(Array(lines.joined(separator: "\n").utf8), "bad line \(index)", folder: folder) != nil {
                failures += 1
            }
        }
        #expect(failures >= bad.count - 1, "most of these lines are wrong: \(failures) of \(bad.count)")
        for (label, bytes) in [
            ("bad UTF-8", valid.prefix(50) + [0xFF, 0xC3] + valid.dropFirst(50)),
            ("NUL", valid.prefix(20) + [0] + valid.dropFirst(20)),
        ] {
            #expect(try read(Array(bytes), label, folder: folder) != nil, "\(label) was read")
        }
        var mutator = Mutator(seed: 20_251_129, key: "judgments")
        var rejected = 0
        for round in 0..<2 {
            var bytes = valid
            for _ in 0...mutator.below(3) { bytes = mutator.mutate(bytes) }
            if try read(bytes, "random \(round)", folder: folder) != nil { rejected += 1 }
        }
        #expect(rejected >= 1, "the edits should break a file: \(rejected)")
    }
}
