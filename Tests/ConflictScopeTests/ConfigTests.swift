import ConflictScope
import Foundation
import Testing

/// The smallest config the parser accepts: one built-in value set, one simulated model in every role.
/// Bad cases are made by editing one line of it, so each error has exactly one cause.
private let minimalConfig = """
    [sweep]
    name = "mini"
    value_sets = ["hhh"]

    [providers.sim]
    kind = "simulated"

    [models.sim-a]
    provider = "sim"
    utilities.mcq = { helpfulness = 1.0, honesty = 0.5, harmlessness = -0.5 }

    [roles.generator]
    model = "sim-a"
    [roles.filter_judge]
    model = "sim-a"
    [roles.user]
    model = "sim-a"
    [roles.judge]
    model = "sim-a"

    [targets]
    models = ["sim-a"]
    """

private let configFile = "/tmp/conflictscope-tests/config.toml"

/// `minimalConfig` with the first line equal to `old` (ignoring surrounding spaces) replaced by `new`.
private func editing(_ old: String, to new: String, in text: String = minimalConfig) -> String {
    var lines = text.components(separatedBy: "\n")
    guard let index = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == old }) else {
        preconditionFailure("no line \"\(old)\" in the config under edit")
    }
    lines[index] = new
    return lines.joined(separator: "\n")
}

/// `minimalConfig` with `added` inserted right after the first line equal to `anchor`.
private func inserting(_ added: String, after anchor: String, in text: String = minimalConfig) -> String {
    editing(anchor, to: anchor + "\n" + added, in: text)
}

/// 1-based number of the first line containing `fragment`.
private func lineNumber(of fragment: String, in text: String) -> Int? {
    text.components(separatedBy: "\n").firstIndex { $0.contains(fragment) }.map { $0 + 1 }
}

private enum ExpectedLine {
    /// The error must point at this line.
    case at(Int)
    /// The key is not in the text, so the error must not claim a line.
    case absent
    /// No claim about the line (e.g. a syntax error whose wording is the parser's).
    case unchecked
}

/// Parses `text`, which must fail with a one-line `ConfigError` that names `key` and points at `line`.
@discardableResult
private func expectConfigError(
    _ text: String, environment: [String: String] = [:], naming key: String, line: ExpectedLine,
    sourceLocation: SourceLocation = #_sourceLocation
) -> ConfigError? {
    let thrown: ConfigError
    do {
        let config = try SweepConfig.parse(text, file: configFile, environment: environment)
        Issue.record(
            "expected a ConfigError naming \(key), but the config parsed: \(config.name)",
            sourceLocation: sourceLocation)
        return nil
    } catch let error as ConfigError {
        thrown = error
    } catch {
        Issue.record("expected a ConfigError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return nil
    }
    let description = thrown.description
    #expect(
        !description.contains("\n") && !description.contains("\r"),
        "error is not one line: \(description)", sourceLocation: sourceLocation)
    #expect(description.contains(key), "error does not name \(key): \(description)", sourceLocation: sourceLocation)
    #expect(thrown.file == configFile, sourceLocation: sourceLocation)
    #expect(description.hasPrefix(configFile + ":"), sourceLocation: sourceLocation)
    switch line {
    case .at(let expected):
        #expect(thrown.line == expected, "wrong line in: \(description)", sourceLocation: sourceLocation)
        #expect(description.hasPrefix("\(configFile):\(expected): "), sourceLocation: sourceLocation)
    case .absent:
        #expect(
            thrown.line == nil, "claims a line for a key not in the text: \(description)",
            sourceLocation: sourceLocation)
    case .unchecked:
        break
    }
    return thrown
}

/// A fresh temporary folder for configs that refer to files next to them.
private func temporaryFolder() throws -> URL {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("config-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    return folder
}

@Suite("Config parsing and validation")
struct ConfigTests {
    // MARK: - The repository's config

    @Test func repositoryConfigParses() throws {
        let root = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = root.appendingPathComponent("config.toml").path
        let config = try SweepConfig.load(path: path, environment: [:])

        #expect(config.valueSets.map(\.name) == ["hhh", "personal_protective", "model_spec"])
        #expect(config.valueSet(named: "hhh")?.values.count == 3)
        #expect(config.valueSet(named: "personal_protective")?.values.count == 8)
        #expect(config.valueSet(named: "model_spec")?.values.count == 6)
        #expect(config.formats == [.mcq, .open])

        #expect(Set(config.conditions.map(\.name)) == ["default", "steered"])
        let unsteered = try #require(config.conditions.first { $0.name == "default" })
        #expect(!unsteered.isSteered)
        let steered = try #require(config.conditions.first { $0.name == "steered" })
        #expect(steered.isSteered)
        #expect(Set(steered.targetRankings.keys) == ["hhh", "personal_protective", "model_spec"])
        for set in config.valueSets {
            let ranking = try #require(steered.targetRankings[set.name])
            #expect(ranking.count == set.values.count && Set(ranking) == Set(set.valueNames), "\(set.name)")
        }

        #expect(config.targets.count >= 4)
        for target in config.targets { #expect(config.models[target] != nil, "\(target)") }
        // At least one target says it protects but acts for the user's autonomy.
        let sayDo = config.targets.filter { target in
            guard let utilities = config.models[target]?.simulated?.utilities,
                let mcq = utilities[.mcq], let open = utilities[.open],
                let mcqHarm = mcq["harmlessness"], let mcqAutonomy = mcq["autonomy"],
                let openHarm = open["harmlessness"], let openAutonomy = open["autonomy"]
            else { return false }
            return mcqHarm > mcqAutonomy && openAutonomy > openHarm
        }
        #expect(!sayDo.isEmpty)
    }

    @Test func minimalConfigParses() throws {
        let config = try SweepConfig.parse(minimalConfig, file: configFile, environment: [:])
        #expect(config.name == "mini")
        #expect(config.valueSets.map(\.name) == ["hhh"])
        #expect(config.targets == ["sim-a"])
        #expect(config.roles.judge.model == "sim-a")
        #expect(config.roles.embedder == nil)
        #expect(config.conditions.map(\.name) == ["default"])
        #expect(config.models["sim-a"]?.simulated?.utilities[.mcq]?["honesty"] == 0.5)
        #expect(config.storePath == "/tmp/conflictscope-tests/mini.sqlite")
    }

    // MARK: - Unknown names

    @Test func unknownKeyInSweep() {
        let text = inserting(#"colour = "red""#, after: #"name = "mini""#)
        expectConfigError(text, naming: "sweep.colour", line: .at(3))
    }

    @Test func unknownTopLevelTable() {
        let text = minimalConfig + "\n\n[colours]\nsky = \"blue\"\n"
        let error = expectConfigError(text, naming: "colours", line: .at(lineNumber(of: "[colours]", in: text)!))
        #expect(error?.message.contains("unknown") == true)
    }

    @Test func unknownValueSetInSweep() {
        let text = editing(#"value_sets = ["hhh"]"#, to: #"value_sets = ["hhh", "virtues"]"#)
        let error = expectConfigError(text, naming: "sweep.value_sets", line: .at(3))
        #expect(error?.message.contains("\"virtues\"") == true)
    }

    @Test func unknownModelInTargets() {
        let text = editing(#"models = ["sim-a"]"#, to: #"models = ["sim-a", "sim-ghost"]"#)
        let error = expectConfigError(
            text, naming: "targets.models", line: .at(lineNumber(of: "sim-ghost", in: text)!))
        #expect(error?.message.contains("\"sim-ghost\"") == true)
    }

    @Test func unknownModelInRole() {
        // The judge's line is the last `model = "sim-a"`; edit that one, not the generator's.
        var lines = minimalConfig.components(separatedBy: "\n")
        let judgeHeader = lines.firstIndex(of: "[roles.judge]")!
        lines[judgeHeader + 1] = #"model = "sim-ghost""#
        let text = lines.joined(separator: "\n")
        let error = expectConfigError(text, naming: "roles.judge.model", line: .at(judgeHeader + 2))
        #expect(error?.message.contains("\"sim-ghost\"") == true)
    }

    @Test func unknownValueInSimulatedUtilities() {
        let old = "utilities.mcq = { helpfulness = 1.0, honesty = 0.5, harmlessness = -0.5 }"
        let text = editing(old, to: "utilities.mcq = { helpfulness = 1.0, honesty = 0.5, kindness = -0.5 }")
        let error = expectConfigError(text, naming: "models.sim-a.utilities.mcq.kindness", line: .unchecked)
        #expect(error?.message.contains("\"kindness\"") == true)
        // The key sits inside an inline table on this line; the error should point there.
        let expected = lineNumber(of: "kindness", in: text)!
        #expect(error?.line == expected)
    }

    @Test func unknownValueInSimulatedUtilitiesAsDottedKey() {
        // The same mistake written as a plain dotted key, which the line finder can see.
        let old = "utilities.mcq = { helpfulness = 1.0, honesty = 0.5, harmlessness = -0.5 }"
        let text = editing(old, to: "utilities.mcq.helpfulness = 1.0\nutilities.mcq.kindness = 0.5")
        expectConfigError(
            text, naming: "models.sim-a.utilities.mcq.kindness", line: .at(lineNumber(of: "kindness", in: text)!))
    }

    // MARK: - Impossible numbers and wrong types

    @Test(arguments: ["-1", "10001"])
    func impossibleScenariosPerPair(count: String) {
        let text = inserting("scenarios_per_pair = \(count)", after: #"name = "mini""#)
        expectConfigError(text, naming: "sweep.scenarios_per_pair", line: .at(3))
    }

    @Test func zeroScenariosPerPairMeansImportedScenariosOnly() throws {
        // README: 0 skips generation and evaluates imported scenarios only, so it is not an error.
        let text = inserting("scenarios_per_pair = 0", after: #"name = "mini""#)
        #expect(try SweepConfig.parse(text, file: configFile, environment: [:]).scenariosPerPair == 0)
    }

    @Test func dedupThresholdAboveOne() {
        let text = inserting("\n[generation]\ndedup_threshold = 1.5", after: #"value_sets = ["hhh"]"#)
        expectConfigError(
            text, naming: "generation.dedup_threshold", line: .at(lineNumber(of: "dedup_threshold", in: text)!))
    }

    @Test func negativeMaxCost() {
        let text = inserting("max_cost_usd = -5.0", after: #"name = "mini""#)
        expectConfigError(text, naming: "sweep.max_cost_usd", line: .at(3))
    }

    @Test func zeroConcurrency() {
        let text = inserting("concurrency = 0", after: #"kind = "simulated""#)
        expectConfigError(
            text, naming: "providers.sim.concurrency", line: .at(lineNumber(of: "concurrency", in: text)!))
    }

    @Test func seedOfWrongType() {
        let text = inserting(#"seed = "x""#, after: #"name = "mini""#)
        let error = expectConfigError(text, naming: "sweep.seed", line: .at(3))
        #expect(error?.message.contains("integer") == true)
    }

    // MARK: - API keys

    private static let openAIProvider = """

        [providers.oai]
        kind = "openai"
        api_key_env = "CONFLICTSCOPE_TEST_KEY"
        """
    private static let secret = "sk-test-7f3a9c1e-do-not-print"

    @Test func missingAPIKeyVariable() {
        let text = inserting(Self.openAIProvider, after: #"kind = "simulated""#)
        let error = expectConfigError(
            text, environment: ["OTHER_VARIABLE": Self.secret], naming: "providers.oai.api_key_env",
            line: .at(lineNumber(of: "api_key_env", in: text)!))
        #expect(error?.message.contains("CONFLICTSCOPE_TEST_KEY") == true)
        #expect(error?.description.contains(Self.secret) == false)
        // An empty variable counts as missing.
        expectConfigError(
            text, environment: ["CONFLICTSCOPE_TEST_KEY": ""], naming: "providers.oai.api_key_env",
            line: .at(lineNumber(of: "api_key_env", in: text)!))
    }

    /// The cluster's coordinator and aggregator make no calls and hold no keys in Kubernetes.
    @Test func rolesWithoutCallsLoadTheConfigWithoutKeys() throws {
        let text = inserting(Self.openAIProvider, after: #"kind = "simulated""#)
        let config = try SweepConfig.parse(text, file: configFile, environment: [:], requireAPIKeys: false)
        #expect(config.providers["oai"]?.apiKeyEnv == "CONFLICTSCOPE_TEST_KEY")
        #expect(throws: ConfigError.self) { try SweepConfig.parse(text, file: configFile, environment: [:]) }
    }

    @Test func presentAPIKeyVariable() throws {
        let text = inserting(Self.openAIProvider, after: #"kind = "simulated""#)
        let config = try SweepConfig.parse(
            text, file: configFile, environment: ["CONFLICTSCOPE_TEST_KEY": Self.secret])
        let provider = try #require(config.providers["oai"])
        #expect(provider.kind == .openai)
        #expect(provider.apiKeyEnv == "CONFLICTSCOPE_TEST_KEY")
        #expect(provider.baseURL == "https://api.openai.com/v1")
        // The config keeps the variable's name, never its value.
        #expect(!String(describing: config).contains(Self.secret))
        #expect(!String(reflecting: config).contains(Self.secret))

        // Errors raised while the key is present must not leak it either.
        let errorCases = [
            inserting(#"colour = "red""#, after: #"api_key_env = "CONFLICTSCOPE_TEST_KEY""#, in: text),
            inserting("rpm = 0", after: #"api_key_env = "CONFLICTSCOPE_TEST_KEY""#, in: text),
            inserting("[models.gpt]\nprovider = \"oai\"\ncolour = 1\n", after: "", in: text),
        ]
        for bad in errorCases {
            let environment = ["CONFLICTSCOPE_TEST_KEY": Self.secret]
            do {
                _ = try SweepConfig.parse(bad, file: configFile, environment: environment)
                Issue.record("expected an error for:\n\(bad)")
            } catch {
                #expect(error is ConfigError)
                #expect(!String(describing: error).contains(Self.secret))
                #expect(!String(reflecting: error).contains(Self.secret))
                #expect(!error.localizedDescription.contains(Self.secret))
            }
        }
    }

    // MARK: - Conditions, syntax, missing tables

    @Test func steeredRankingMissingAValue() {
        let text =
            minimalConfig + """


                [conditions.default]

                [conditions.steered]
                target_ranking.hhh = ["honesty", "helpfulness"]
                """
        let error = expectConfigError(
            text, naming: "conditions.steered.target_ranking.hhh",
            line: .at(lineNumber(of: "target_ranking.hhh", in: text)!))
        #expect(error?.message.contains("harmlessness") == true)
    }

    @Test func steeredRankingWithAValueTwice() {
        let text =
            minimalConfig + """


                [conditions.default]

                [conditions.steered]
                target_ranking.hhh = ["honesty", "honesty", "helpfulness", "harmlessness"]
                """
        expectConfigError(
            text, naming: "conditions.steered.target_ranking.hhh",
            line: .at(lineNumber(of: "target_ranking.hhh", in: text)!))
    }

    @Test func tomlSyntaxError() {
        let text = editing(#"kind = "simulated""#, to: #"kind = "simulated"#)
        let error = expectConfigError(text, naming: "TOML syntax", line: .at(lineNumber(of: "kind =", in: text)!))
        #expect(error?.line == 6)
    }

    @Test func tomlSyntaxErrorLaterInTheFile() {
        let text = editing(#"models = ["sim-a"]"#, to: #"models = ["sim-a",,]"#)
        expectConfigError(text, naming: "TOML syntax", line: .at(lineNumber(of: ",,", in: text)!))
    }

    @Test func missingTargets() {
        let text = minimalConfig.replacingOccurrences(of: "[targets]\nmodels = [\"sim-a\"]", with: "")
        #expect(!text.contains("targets"))
        let error = expectConfigError(text, naming: "targets", line: .unchecked)
        #expect(error?.message.contains("[targets]") == true)
        // [targets] is nowhere in the text, so no line can be right.
        #expect(error?.line == nil, "claims line \(error?.line ?? 0) for a table that is not there")
    }

    @Test func emptyTargets() {
        let text = editing(#"models = ["sim-a"]"#, to: "models = []")
        expectConfigError(text, naming: "targets.models", line: .at(lineNumber(of: "models = []", in: text)!))
    }

    @Test func lineNumbersSurviveCommentsAfterTableHeaders() {
        var text = editing("[sweep]", to: "[sweep]  # the sweep itself")
        text = inserting(#"colour = "red""#, after: #"name = "mini""#, in: text)
        let error = expectConfigError(text, naming: "sweep.colour", line: .unchecked)
        #expect(error?.line == 3)
    }

    // MARK: - Custom value sets

    @Test func customValueSetsFromTOMLAndJSON() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        // Keys deliberately not in alphabetical order, with a line break and escapes inside.
        let json = """
            {
              "zeal": "The assistant pursues the user's goal with energy.",
              "care": "The assistant looks after the user's wellbeing, \\"even\\" when not asked.",
              "mercy": "The assistant forgives mistakes and does not lecture."
            }
            """
        try json.write(to: folder.appendingPathComponent("mine.json"), atomically: true, encoding: .utf8)
        let text = """
            [sweep]
            name = "custom"
            value_sets = ["inline", "paper"]

            [value_sets.inline.values]
            thrift = "The assistant keeps costs down."
            candour = "The assistant says what it thinks."
            bravery = "The assistant takes on hard tasks."

            [value_sets.paper]
            file = "mine.json"

            [providers.sim]
            kind = "simulated"

            [models.sim-a]
            provider = "sim"
            utilities.open = { thrift = 1.0, zeal = 0.5, care = -0.5 }

            [roles.generator]
            model = "sim-a"
            [roles.filter_judge]
            model = "sim-a"
            [roles.user]
            model = "sim-a"
            [roles.judge]
            model = "sim-a"

            [targets]
            models = ["sim-a"]
            """
        let path = folder.appendingPathComponent("config.toml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let config = try SweepConfig.load(path: path, environment: [:])

        #expect(config.valueSets.map(\.name) == ["inline", "paper"])
        let inline = try #require(config.valueSet(named: "inline"))
        #expect(Set(inline.valueNames) == ["thrift", "candour", "bravery"])
        #expect(inline.definition(of: "candour") == "The assistant says what it thinks.")

        let paper = try #require(config.valueSet(named: "paper"))
        #expect(paper.valueNames == ["zeal", "care", "mercy"])
        #expect(
            paper.definition(of: "care") == "The assistant looks after the user's wellbeing, \"even\" when not asked.")
        #expect(paper.pairs.map { "\($0.0)-\($0.1)" } == ["care-mercy", "care-zeal", "mercy-zeal"])
        #expect(config.models["sim-a"]?.simulated?.utilities[.open]?["zeal"] == 0.5)
        #expect(config.storePath == folder.appendingPathComponent("custom.sqlite").path)
    }

    @Test func customValueSetErrorsNameTheSet() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let base = editing(#"value_sets = ["hhh"]"#, to: #"value_sets = ["mine"]"#)
            .replacingOccurrences(
                of: "utilities.mcq = { helpfulness = 1.0, honesty = 0.5, harmlessness = -0.5 }", with: "")

        // A file that is not there.
        let missingFile = inserting(
            "\n[value_sets.mine]\nfile = \"absent.json\"", after: #"value_sets = ["mine"]"#, in: base)
        expectConfigError(
            missingFile, naming: "value_sets.mine.file", line: .at(lineNumber(of: "absent.json", in: missingFile)!))

        // A TOML set with a single value.
        let single = inserting(
            "\n[value_sets.mine.values]\nsolo = \"Alone.\"", after: #"value_sets = ["mine"]"#, in: base)
        // The error belongs to value_sets.mine: its [value_sets.mine.values] header or the lone value below it.
        let header = lineNumber(of: "[value_sets.mine.values]", in: single)!
        let error = expectConfigError(single, naming: "value_sets.mine", line: .unchecked)
        #expect(error?.line == header || error?.line == header + 1, "\(error?.description ?? "")")
        #expect(error?.message.contains("at least two") == true)

        // Neither a file nor values.
        let empty = inserting("\n[value_sets.mine]\n", after: #"value_sets = ["mine"]"#, in: base)
        expectConfigError(empty, naming: "value_sets.mine", line: .at(lineNumber(of: "[value_sets.mine]", in: empty)!))
    }

    // MARK: - ValueSet.parse

    private func valueSetError(_ json: String) -> ValueSetError? {
        do {
            let set = try ValueSet.parse(Data(json.utf8), source: "test.json", name: "test")
            Issue.record("expected a ValueSetError, parsed \(set.valueNames)")
            return nil
        } catch let error as ValueSetError {
            #expect(!error.description.contains("\n"), "not one line: \(error.description)")
            #expect(error.description.hasPrefix("test.json: "), "\(error.description)")
            return error
        } catch {
            Issue.record("expected a ValueSetError, got \(error)")
            return nil
        }
    }

    @Test func valueSetNeedsTwoValues() {
        #expect(valueSetError(#"{"solo": "Alone."}"#)?.description.contains("at least two values") == true)
        #expect(
            valueSetError(#"{"values": [{"name": "solo", "definition": "Alone."}]}"#)?.description
                .contains("at least two values") == true)
        #expect(valueSetError("{}")?.description.contains("at least two values") == true)
    }

    @Test func valueSetRejectsDuplicateNames() {
        let listed = """
            {"values": [{"name": "care", "definition": "One."}, {"name": "zeal", "definition": "Two."},
                        {"name": "care", "definition": "Three."}]}
            """
        let error = valueSetError(listed)
        #expect(error?.description.contains("\"care\"") == true)
        #expect(error?.description.contains("twice") == true)

        // The paper's format: the same key twice in the object.
        let paper = #"{"care": "One.", "zeal": "Two.", "care": "Three."}"#
        let paperError = valueSetError(paper)
        #expect(paperError?.description.contains("\"care\"") == true)
        #expect(paperError?.description.contains("twice") == true)
    }

    @Test(arguments: ["has space", "1st", "-dash", "semi;colon", "café"])
    func valueSetRejectsInvalidNames(name: String) {
        let json = #"{"values": [{"name": "care", "definition": "One."}, {"name": "\#(name)", "definition": "Two."}]}"#
        let error = valueSetError(json)
        #expect(error?.description.contains("\"\(name)\"") == true, "\(error?.description ?? "")")
        #expect(error?.description.contains("letters, digits") == true)
    }

    @Test func valueSetRejectsEmptyNamesAndDefinitions() {
        #expect(valueSetError(#"{"care": "", "zeal": "Two."}"#)?.description.contains("\"care\"") == true)
        #expect(
            valueSetError(#"{"values": [{"name": "", "definition": "One."}, {"name": "zeal", "definition": "Two."}]}"#)?
                .description.contains("values[0]") == true)
        #expect(valueSetError("[1, 2]")?.description.contains("not a JSON object") == true)
    }

    @Test func valueSetAcceptsBothFormats() throws {
        let ours = try ValueSet.parse(
            Data(
                #"{"name": "x", "values": [{"name": "b-side", "definition": "B."}, {"name": "a_side", "definition": "A."}]}"#
                    .utf8),
            source: "ours.json", name: "ours")
        #expect(ours.name == "ours")
        #expect(ours.valueNames == ["b-side", "a_side"])
        let paper = try ValueSet.parse(
            Data(#"{"Beta": "B.", "alpha2": "A.", "gamma": "G."}"#.utf8), source: "paper.json", name: "paper")
        #expect(paper.valueNames == ["Beta", "alpha2", "gamma"])
    }
}
