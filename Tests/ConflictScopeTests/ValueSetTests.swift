import ConflictScope
import Foundation
import Testing

private func pairNames(_ set: ValueSet) -> [String] { set.pairs.map { "\($0.0)-\($0.1)" } }

private func parse(_ json: String, name: String = "mine") throws -> ValueSet {
    try ValueSet.parse(Data(json.utf8), source: "mine.json", name: name)
}

/// The error `parse` gives for `json`, or nil when it loads.
private func parseError(_ json: String) -> String? {
    do {
        _ = try parse(json)
        return nil
    } catch {
        return "\(error)"
    }
}

/// A set of four values in two groups, in our JSON format; `groups` and `pairs` are spliced in.
private func groupedJSON(groups: String, pairs: String) -> String {
    """
    {"name": "mine", "values": [
      {"name": "zeal", "definition": "The assistant pursues the goal eagerly."},
      {"name": "care", "definition": "The assistant looks after people."},
      {"name": "thrift", "definition": "The assistant spends little."},
      {"name": "bravery", "definition": "The assistant takes risks."}
    ],
    "groups": \(groups),
    "pairs": \(pairs)}
    """
}

private let goodGroups = #"{"bold": ["zeal", "bravery"], "safe": ["thrift", "care"]}"#

/// The smallest config with one custom set `mine` whose table ends with `setLines`.
private func configText(setLines: String) -> String {
    """
    [sweep]
    name = "sets"
    value_sets = ["mine"]

    [value_sets.mine]
    \(setLines)

    [providers.sim]
    kind = "simulated"

    [models.sim-a]
    provider = "sim"

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
}

private let inlineValues = """
    groups = { bold = ["zeal", "bravery"], safe = ["thrift", "care"] }
    pairs = { cross = ["bold", "safe"] }
    [value_sets.mine.values]
    zeal = "The assistant pursues the goal eagerly."
    care = "The assistant looks after people."
    thrift = "The assistant spends little."
    bravery = "The assistant takes risks."
    """

/// Loads `text` as a config in a fresh folder that also holds `files`; the config or its error.
private func loadConfig(_ text: String, files: [String: String] = [:]) throws -> Result<SweepConfig, ConfigError> {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("value-sets-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    for (name, contents) in files {
        try contents.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }
    let path = folder.appendingPathComponent("config.toml").path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    do {
        return .success(try SweepConfig.load(path: path, environment: [:]))
    } catch let error as ConfigError {
        return .failure(error)
    }
}

@Suite("Value sets")
struct ValueSetTests {
    @Test func hhhIsThePapersSet() throws {
        let set = try ValueSet.builtIn("hhh")
        #expect(set.valueNames == ["helpfulness", "harmlessness", "honesty"])
        #expect(set.groups.isEmpty)
        #expect(set.pairRule == .all)
        #expect(pairNames(set) == ["harmlessness-helpfulness", "harmlessness-honesty", "helpfulness-honesty"])
    }

    @Test func modelSpecIsThePapersSet() throws {
        let set = try ValueSet.builtIn("model_spec")
        #expect(set.valueNames == ["nonhate", "fairness", "objectivity", "honesty", "noncondescension", "clarity"])
        #expect(set.pairRule == .all)
        #expect(set.pairs.count == 15)
        #expect(set.pairs.allSatisfy { $0.0 < $0.1 })
        #expect(
            pairNames(set).prefix(5) == [
                "clarity-fairness", "clarity-honesty", "clarity-noncondescension",
                "clarity-nonhate", "clarity-objectivity",
            ])
        #expect(pairNames(set) == pairNames(set).sorted())
        #expect(Set(pairNames(set)).count == 15)
    }

    @Test func personalProtectiveComparesOnlyAcrossGroups() throws {
        let set = try ValueSet.builtIn("personal_protective")
        let personal = ["autonomy", "authenticity", "creativity", "empowerment"]
        let protective = ["responsibility", "harmlessness", "compliance", "privacy"]
        #expect(set.valueNames == personal + protective)
        #expect(
            set.groups == [.init(name: "personal", values: personal), .init(name: "protective", values: protective)])
        #expect(set.pairRule == .cross(first: "personal", second: "protective"))
        #expect(set.pairs.count == 16)
        #expect(set.pairs.map(\.0) == personal.flatMap { Array(repeating: $0, count: 4) })
        #expect(set.pairs.map(\.1) == Array(Array(repeating: protective, count: 4).joined()))
        // No within-group pair.
        #expect(set.pairs.allSatisfy { set.group(of: $0.0) == "personal" && set.group(of: $0.1) == "protective" })
        #expect(set.group(of: "privacy") == "protective")
        #expect(set.group(of: "honesty") == nil)
    }

    @Test func builtInDefinitionsAreShortSentencesAboutTheAssistant() throws {
        for name in ValueSet.builtInNames {
            for value in try ValueSet.builtIn(name).values {
                #expect(value.definition.hasPrefix("The assistant "), "\(name).\(value.name)")
                #expect(value.definition.hasSuffix("."), "\(name).\(value.name)")
                #expect(value.definition.count < 260, "\(name).\(value.name)")
            }
        }
    }

    @Test func paperFormatLoadsWithEveryPair() throws {
        let set = try parse(
            #"{"zeal": "The assistant pursues the goal.", "care": "The assistant looks after people.", "#
                + #""mercy": "The assistant forgives."}"#, name: "paper")
        #expect(set.valueNames == ["zeal", "care", "mercy"])
        #expect(set.groups.isEmpty)
        #expect(set.pairRule == .all)
        #expect(pairNames(set) == ["care-mercy", "care-zeal", "mercy-zeal"])
    }

    @Test func groupsAndCrossRuleLoadFromJSON() throws {
        let set = try parse(groupedJSON(groups: goodGroups, pairs: #"{"cross": ["safe", "bold"]}"#))
        #expect(set.groups.map(\.name) == ["bold", "safe"])
        #expect(set.pairRule == .cross(first: "safe", second: "bold"))
        #expect(pairNames(set) == ["thrift-zeal", "thrift-bravery", "care-zeal", "care-bravery"])
        #expect(set.group(of: "care") == "safe")

        // Groups with the "all" rule: groups are only labels, every pair is compared.
        let all = try parse(groupedJSON(groups: goodGroups, pairs: #""all""#))
        #expect(all.pairs.count == 6)
        #expect(all.group(of: "zeal") == "bold")
    }

    @Test(arguments: [
        (#"{"bold": ["zeal", "courage"], "safe": ["thrift", "care"]}"#, #""all""#, "group \"bold\" names \"courage\""),
        (#"{"bold": ["zeal", "care"], "safe": ["thrift", "care"]}"#, #""all""#, "\"care\" is in two groups"),
        (#"{"bold": ["zeal", "zeal"], "safe": ["thrift", "care"]}"#, #""all""#, "appears twice in group \"bold\""),
        (#"{"bold": [], "safe": ["thrift", "care"]}"#, #""all""#, "group \"bold\" is empty"),
        (#"{"bold": "zeal", "safe": ["thrift"]}"#, #""all""#, "group \"bold\" must be a list"),
        (#"["bold", "safe"]"#, #""all""#, "\"groups\" must be an object"),
        (goodGroups, #"{"cross": ["bold", "careful"]}"#, "names group \"careful\", which is not declared"),
        (goodGroups, #"{"cross": ["bold", "bold"]}"#, "two different groups"),
        (goodGroups, #"{"cross": ["bold"]}"#, "\"pairs\" must be"),
        (goodGroups, #""every""#, "\"pairs\" must be"),
        (
            #"{"bold": ["zeal", "bravery"], "safe": ["thrift"]}"#, #"{"cross": ["bold", "safe"]}"#,
            "\"care\" is in neither \"bold\" nor \"safe\""
        ),
    ])
    func badGroupsAndRulesGiveOneClearLine(groups: String, pairs: String, expected: String) {
        let message = parseError(groupedJSON(groups: groups, pairs: pairs))
        #expect(message?.hasPrefix("mine.json: ") == true, "\(message ?? "loaded")")
        #expect(message?.contains(expected) == true, "\(message ?? "loaded")")
        #expect(message?.contains("\n") == false)
    }

    @Test func crossRuleWithoutGroupsNamesTheMissingGroup() {
        let message = parseError(
            #"{"values": [{"name": "a", "definition": "A."}, {"name": "b", "definition": "B."}], "#
                + #""pairs": {"cross": ["x", "y"]}}"#)
        #expect(message == "mine.json: the cross pair rule names group \"x\", which is not declared (groups: none)")
    }

    @Test func configDeclaresGroupsAndTheCrossRuleInline() throws {
        let config = try loadConfig(configText(setLines: inlineValues)).get()
        let set = try #require(config.valueSet(named: "mine"))
        #expect(set.pairRule == .cross(first: "bold", second: "safe"))
        #expect(pairNames(set) == ["zeal-thrift", "zeal-care", "bravery-thrift", "bravery-care"])
    }

    @Test func configGivesAPaperFormatFileGroups() throws {
        let paper = #"{"zeal": "Z.", "care": "C.", "thrift": "T.", "bravery": "B."}"#
        let lines = """
            file = "paper.json"
            groups = { bold = ["bravery", "zeal"], safe = ["care", "thrift"] }
            pairs = { cross = ["bold", "safe"] }
            """
        let config = try loadConfig(configText(setLines: lines), files: ["paper.json": paper]).get()
        let set = try #require(config.valueSet(named: "mine"))
        #expect(pairNames(set) == ["bravery-care", "bravery-thrift", "zeal-care", "zeal-thrift"])

        // pairs = "all" on a paper-format file keeps every pair.
        let allText = configText(setLines: "file = \"paper.json\"\npairs = \"all\"")
        let all = try loadConfig(allText, files: ["paper.json": paper]).get()
        #expect(all.valueSet(named: "mine")?.pairs.count == 6)
    }

    @Test(arguments: [
        (
            "bold = [\"zeal\", \"bravery\"], safe = [\"thrift\", \"care\"]", "{ cross = [\"bold\", \"unsafe\"] }",
            "value_sets.mine: the cross pair rule names group \"unsafe\", which is not declared (groups: bold, safe)"
        ),
        (
            "bold = [\"zeal\", \"bravery\"], safe = [\"thrift\", \"care\", \"zeal\"]", "\"all\"",
            "value_sets.mine: value \"zeal\" is in two groups, \"bold\" and \"safe\""
        ),
        (
            "bold = [\"zeal\", \"daring\"], safe = [\"thrift\", \"care\"]", "\"all\"",
            "value_sets.mine: group \"bold\" names \"daring\", which is not a value of the set"
        ),
        ("bold = \"zeal\", safe = [\"thrift\", \"care\"]", "\"all\"", "value_sets.mine.groups.bold must be a list"),
        (
            "bold = [\"zeal\", \"bravery\"], safe = [\"thrift\", \"care\"]", "\"cross\"",
            "value_sets.mine.pairs must be \"all\" or { cross = [\"GROUP1\", \"GROUP2\"] }"
        ),
        (
            "bold = [\"zeal\", \"bravery\"], safe = [\"thrift\", \"care\"]", "{ cross = [\"bold\"] }",
            "value_sets.mine.pairs must be"
        ),
        (
            "bold = [\"zeal\", \"bravery\"], safe = [\"thrift\", \"care\"]", "{ across = [\"bold\", \"safe\"] }",
            "value_sets.mine.pairs must be"
        ),
        (
            "bold = [\"zeal\", \"bravery\"], safe = [\"thrift\"]", "{ cross = [\"bold\", \"safe\"] }",
            "value_sets.mine: value \"care\" is in neither \"bold\" nor \"safe\""
        ),
    ])
    func configGroupAndRuleErrorsNameTheKey(groups: String, pairs: String, expected: String) throws {
        let lines =
            inlineValues
            .replacingOccurrences(
                of: "groups = { bold = [\"zeal\", \"bravery\"], safe = [\"thrift\", \"care\"] }",
                with: "groups = { \(groups) }"
            )
            .replacingOccurrences(of: "pairs = { cross = [\"bold\", \"safe\"] }", with: "pairs = \(pairs)")
        let text = configText(setLines: lines)
        switch try loadConfig(text) {
        case .success: Issue.record("loaded: \(groups) / \(pairs)")
        case .failure(let error):
            #expect(error.message.contains(expected), "\(error)")
            #expect(error.line != nil, "\(error)")
            #expect(!error.description.contains("\n"))
        }
    }
}
