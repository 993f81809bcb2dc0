import ConflictScope
import Foundation
import Testing

/// A config written to a fresh temporary folder; `body` is everything after the [sweep] table's name.
/// hhh on simulated models, plus a target that cannot answer (invalid) and one whose server at `brokenURL`
/// answers every call with an error (missing).
private func faultySweepConfig(brokenURL: String) throws -> (config: SweepConfig, folder: URL) {
    try writeTemporaryConfig(
        """
        [sweep]
        name = "faulty"
        seed = 11
        store = "results.sqlite"
        value_sets = ["hhh"]
        scenarios_per_pair = 2

        [analysis]
        bootstrap = 50

        [providers.sim]
        kind = "simulated"
        concurrency = 16

        [providers.down]
        kind = "openai"
        base_url = "\(brokenURL)"
        max_retries = 0
        timeout_s = 1
        concurrency = 32

        [models.writer]
        provider = "sim"

        [models.steady]
        provider = "sim"
        utilities.mcq = { honesty = 1.0, harmlessness = 0.0, helpfulness = -1.0 }
        utilities.open = { honesty = 1.0, harmlessness = 0.0, helpfulness = -1.0 }

        [models.flaky]
        provider = "sim"
        invalid_rate = 0.9

        [models.offline]
        provider = "down"

        \(writerRoles)

        [targets]
        models = ["steady", "flaky", "offline"]
        """)
}

/// A config over hhh and personal_protective that only evaluates imported scenarios.
private func importConfig() throws -> (config: SweepConfig, folder: URL) {
    try writeTemporaryConfig(
        """
        [sweep]
        name = "imported"
        seed = 3
        store = "results.sqlite"
        value_sets = ["personal_protective", "hhh"]
        scenarios_per_pair = 0

        [analysis]
        bootstrap = 0

        [providers.sim]
        kind = "simulated"

        [models.writer]
        provider = "sim"

        [models.steady]
        provider = "sim"
        utilities.mcq = { honesty = 1.0, harmlessness = 0.0, helpfulness = -1.0 }
        utilities.open = { honesty = 1.0, harmlessness = 0.0, helpfulness = -1.0 }

        \(writerRoles)

        [targets]
        models = ["steady"]
        """)
}

private func paperFixture(_ name: String, _ ext: String) throws -> String {
    guard let url = Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Fixtures/paper") else {
        throw FixtureError(message: "fixture paper/\(name).\(ext) is missing from the test bundle")
    }
    return url.path
}

/// Whether the store holds no scenarios at all.
private func isEmpty(_ store: ResultStore) throws -> Bool {
    let counts = try store.scenarioCounts()
    return counts.outlines == 0 && counts.kept == 0 && counts.rejected == 0 && counts.undecided == 0
}

/// A stable order for comparing judgment lists.
private func sortedJudgments(_ judgments: [Judgment]) -> [Judgment] {
    judgments.sorted { ($0.group, $0.scenarioID) < ($1.group, $1.scenarioID) }
}

@Suite("Export, import, plan and status", .serialized)
struct ExportImportTests {
    // MARK: Export

    @Test func csvExportHasOneRowPerValidJudgmentWithNormalisedLikerts() async throws {
        let (config, _) = try smallSweepConfig(scenariosPerPair: 1)
        _ = try await EmbeddedSweep.run(config: config)
        let store = try ResultStore(path: config.storePath)
        let rows = try store.exportedJudgments()
        let csv = JudgmentExport.render(rows, format: .csv)
        #expect(csv.hasPrefix(JudgmentExport.csvHeader))
        #expect(
            JudgmentExport.csvHeader
                == "scenario_id,generating_model,value_set,value1,value2,model,format,condition,choice,likert,"
                + "likert_a,likert_b,likert_raw,likert_a_raw,likert_b_raw,action1_is_a,target_ranking,act_side\r\n")
        let records = try CSVReader.parse(Data(csv.utf8), file: "export.csv")
        let header = records[0].fields
        let valid = try store.judgments().filter { $0.choice.isValid }
        #expect(records.count - 1 == valid.count)
        #expect(!valid.isEmpty)

        func column(_ name: String, _ record: CSVReader.Record) -> String {
            record.fields[header.firstIndex(of: name)!]
        }
        var openRatings = 0
        for record in records.dropFirst() {
            #expect(["A", "B"].contains(column("choice", record)))
            #expect(column("generating_model", record) == "writer")
            for (normalised, raw) in [
                ("likert", "likert_raw"), ("likert_a", "likert_a_raw"), ("likert_b", "likert_b_raw"),
            ] {
                let value = column(normalised, record)
                let rating = column(raw, record)
                #expect(value.isEmpty == rating.isEmpty)
                guard let number = Double(value), let r = Int(rating) else { continue }
                #expect((1...7).contains(r))
                #expect((-1...1).contains(number))
                #expect(abs(number - Double(r - 4) / 3) < 1e-12)
            }
            if column("format", record) == "open", let likert = Double(column("likert", record)) {
                // The simulated judge rates 1-2 for the option it chose and 6-7 otherwise, as shown to it:
                // after orientation, negative means the value1 action, which is choice A.
                #expect((likert < 0) == (column("choice", record) == "A"))
                openRatings += 1
            }
            if column("format", record) == "mcq" {
                #expect(column("likert", record).isEmpty)
            }
        }
        #expect(openRatings > 0)
        // The oriented judge rating flips exactly when option A showed the value2 action.
        for row in rows {
            if let shown = row.judgeLikert { #expect(row.likertRaw == (row.action1IsA ? shown : 8 - shown)) }
        }
        #expect(rows.contains { $0.judgeLikert != nil && !$0.action1IsA })
    }

    @Test func jsonlExportReadsBackToTheSameRankings() async throws {
        let (config, folder) = try smallSweepConfig(scenariosPerPair: 1)
        _ = try await EmbeddedSweep.run(config: config)
        let store = try ResultStore(path: config.storePath)
        let path = folder.appendingPathComponent("judgments.jsonl").path
        try JudgmentExport.render(try store.exportedJudgments(), format: .jsonl).write(
            toFile: path, atomically: true, encoding: .utf8)
        let read = sortedJudgments(try JudgmentReader.read(path: path))
        let stored = sortedJudgments(try store.judgments().filter { $0.choice.isValid })
        #expect(read == stored)
        let fromFile = try RankingReport(judgments: read, options: config.analysis, includeMetrics: true)
        let fromStore = try RankingReport(judgments: stored, options: config.analysis, includeMetrics: true)
        #expect(fromFile == fromStore)
        #expect(!fromFile.rankings.isEmpty)
    }

    @Test func includeMissingAddsInvalidAndMissingRows() async throws {
        // A server that answers (so the model is not paused as unreachable) but always with an error.
        let server = try await FakeProviderServer.start { _ in Wire.error(500, "The server had an error") }
        defer { Task { try? await server.stop() } }
        let (config, _) = try faultySweepConfig(brokenURL: server.baseURL)
        _ = try await EmbeddedSweep.run(config: config)
        let store = try ResultStore(path: config.storePath)
        let all = try store.judgments()
        let validOnly = try store.exportedJudgments()
        let everything = try store.exportedJudgments(includeInvalidAndMissing: true)
        #expect(validOnly.count == all.filter { $0.choice.isValid }.count)
        #expect(everything.count == all.count)
        #expect(everything.contains { $0.choice == .invalid })
        #expect(everything.contains { $0.choice == .missing })
        #expect(everything.filter { $0.model == "offline" }.allSatisfy { $0.choice == .missing })
        let csv = try CSVReader.parse(Data(JudgmentExport.render(everything, format: .csv).utf8), file: "all.csv")
        let choice = csv[0].fields.firstIndex(of: "choice")!
        #expect(csv.count - 1 == all.count)
        #expect(Set(csv.dropFirst().map { $0.fields[choice] }) == ["A", "B", "invalid", "missing"])

        // Status sees the same store.
        let status = try SweepStatus.read(config: config, store: store)
        #expect(status.judgments.reduce(0) { $0 + $1.total } == all.count)
        #expect(status.judgments.reduce(0) { $0 + $1.missing } == all.filter { $0.choice == .missing }.count)
        #expect(status.judgments.reduce(0) { $0 + $1.invalid } == all.filter { $0.choice == .invalid }.count)
        #expect(status.expectedJudgments == status.scenarios.kept * 3 * 2)
        #expect(status.calls.contains { $0.model == "offline" && $0.failed > 0 && $0.ok == 0 })
        #expect(status.callsOK == (try store.callCounts()).ok)
        #expect(
            status.outlinesKept
                == status.scenarios.kept + status.scenarios.rejected + status.scenarios.undecided
                + status.scenarios.invalid)
        #expect(status.rankings.contains { $0.model == "steady" } || status.rankingError != nil)
        #expect(status.rankings.allSatisfy { $0.values.allSatisfy { $0.ciLow == nil } })
    }

    // MARK: Import

    @Test func importsThePaperFixture() throws {
        let (config, _) = try importConfig()
        let store = try ResultStore(path: config.storePath)
        let summary = try PaperImport.run(
            scenarioFiles: [try paperFixture("scenarios_hhh", "csv")], promptsFile: try paperFixture("prompts", "json"),
            config: config, store: store)
        #expect(
            summary
                == PaperImport.Summary(files: 1, scenarios: 8, kept: 6, rejected: 2, prompts: 4, unmatchedPrompts: 1))
        let kept = try store.importedKeptScenarios()
        #expect(
            kept.map(\.id) == [
                "import/hhh_0001", "import/hhh_0002", "import/hhh_0003", "import/hhh_0006",
                "import/hhh_0007", "import/hhh_0008",
            ])
        #expect(kept.allSatisfy { $0.valueSet == "hhh" && $0.outlineID == "import" && $0.template == nil })
        #expect(try store.scenarioStatus(id: "import/hhh_0004") == .rejected)
        #expect(try store.scenarioStatus(id: "import/hhh_0005") == .rejected)
        // The quoted field with a comma, quotes and a line break survives.
        let lotte = kept.first { $0.id == "import/hhh_0003" }!
        #expect(lotte.description.contains("Lotte, \"honestly, how many paracetamol"))
        #expect(lotte.description.contains("dangerous?\"\nShe says"))
        #expect(lotte.value1 == "harmlessness" && lotte.value2 == "honesty")
        #expect(lotte.generatingModel == "gpt-4.1")
        // user_prompt is the profile: text that is not a JSON object is kept whole as the persona.
        #expect(kept.first { $0.id == "import/hhh_0002" }?.persona.hasPrefix("Could you write 5") == true)
        #expect(lotte.persona.isEmpty && lotte.background.isEmpty && lotte.goal.isEmpty)
        // Opening messages come only from prompts.json; an empty one is not stored.
        #expect(try store.userPrompt(scenarioID: "import/hhh_0001")?.hasPrefix("Hi! Party on Saturday") == true)
        #expect(try store.userPrompt(scenarioID: "import/hhh_0002") == nil)
        #expect(try store.userPrompt(scenarioID: "import/hhh_0006") == nil)
        #expect(try store.userPrompt(scenarioID: "import/hhh_0004") == nil)
        #expect(try store.userPrompt(scenarioID: "import/hhh_9999") == nil)
        // check_results is stored as it is.
        #expect(try store.scenarioChecks(id: "import/hhh_0002") == "all checks passed")
        #expect(try store.scenarioChecks(id: "import/hhh_0001")?.contains("\"Plausible forum request.\"") == true)
        #expect(try store.scenarioChecks(id: "import/hhh_0003") == nil)

        let counts = try store.scenarioCounts()
        #expect(counts.kept == 6 && counts.rejected == 2)
        let imported = try store.importedScenarioCounts()
        #expect(imported.kept == ["hhh": 6] && imported.withUserPrompt == ["hhh": 3])
        let status = try SweepStatus.read(config: config, store: store)
        #expect(status.importedScenarios == 8)
        #expect(status.expectedJudgments == 6 * 1 * 1 * 2)
    }

    @Test func reimportChangesNothing() throws {
        let (config, _) = try importConfig()
        let store = try ResultStore(path: config.storePath)
        let files = [try paperFixture("scenarios_hhh", "csv")]
        let prompts = try paperFixture("prompts", "json")
        func snapshot() throws -> [String] {
            let rows = try store.exportedJudgments(includeInvalidAndMissing: true).map { "\($0)" }
            // Checks are a dictionary: its description's order is not stable, so it is written sorted.
            let scenarios = try store.importedKeptScenarios().map { scenario in
                var rest = scenario
                rest.checks = nil
                let checks = (scenario.checks ?? [:]).map { "\($0.key.rawValue)=\($0.value)" }.sorted()
                return "\(rest) \(checks)"
            }
            let ids = (1...8).map { "import/hhh_000\($0)" }
            let details = try ids.map {
                "\($0) \(String(describing: try store.scenarioStatus(id: $0))) "
                    + "\(String(describing: try store.scenarioChecks(id: $0))) "
                    + "\(String(describing: try store.userPrompt(scenarioID: $0)))"
            }
            return rows + scenarios + details + ["\(try store.scenarioCounts())"]
        }
        let first = try PaperImport.run(scenarioFiles: files, promptsFile: prompts, config: config, store: store)
        let before = try snapshot()
        let second = try PaperImport.run(scenarioFiles: files, promptsFile: prompts, config: config, store: store)
        #expect(first == second)
        #expect(try snapshot() == before)
    }

    @Test func missingColumnErrorsWithTheFileNameAndWritesNothing() throws {
        let (config, folder) = try importConfig()
        let store = try ResultStore(path: config.storePath)
        let good = try paperFixture("scenarios_hhh", "csv")
        let bad = folder.appendingPathComponent("no_action2.csv").path
        try
            "scenario_id,description,value1,value2,action1,keep_scenario\r\nx1,A scene,honesty,helpfulness,Do it,True\r\n"
            .write(toFile: bad, atomically: true, encoding: .utf8)
        // The good file comes first: it must not be written either.
        let error = #expect(throws: ImportError.self) {
            try PaperImport.run(scenarioFiles: [good, bad], promptsFile: nil, config: config, store: store)
        }
        #expect(error?.description == "\(bad):1: missing column action2")
        #expect(try isEmpty(store))
        #expect(try store.userPrompt(scenarioID: "import/hhh_0001") == nil)
    }

    @Test func badInputIsReportedWithFileAndLine() throws {
        let (config, folder) = try importConfig()
        let store = try ResultStore(path: config.storePath)
        let header = "scenario_id,description,value1,value2,action1,action2,keep_scenario\n"
        func failure(_ csv: String, prompts: String? = nil) throws -> String? {
            let path = folder.appendingPathComponent("case.csv").path
            try (header + csv).write(toFile: path, atomically: true, encoding: .utf8)
            var promptsPath: String? = nil
            if let prompts {
                promptsPath = folder.appendingPathComponent("prompts.json").path
                try prompts.write(toFile: promptsPath!, atomically: true, encoding: .utf8)
            }
            let error = #expect(throws: ImportError.self) {
                try PaperImport.run(scenarioFiles: [path], promptsFile: promptsPath, config: config, store: store)
            }
            return error.map { $0.description.replacingOccurrences(of: folder.path + "/", with: "") }
        }
        let row = "a1,Scene,honesty,helpfulness,Tell,Help,True\n"
        #expect(
            try failure(row + "a2,\"Scene, unclosed,honesty,helpfulness,Tell,Help,True\n")
                == "case.csv:3: a quoted field opened here is never closed")
        #expect(
            try failure(row + "a2,Scene,honesty,helpfulness,Tell,Help,maybe\n")
                == "case.csv:3: keep_scenario must be True, False, true, false, 1 or 0, not \"maybe\"")
        #expect(
            try failure(row + "a2,Scene,honesty,autonomy,Tell,Help,True\n")?.hasPrefix(
                "case.csv:3: no configured value set has both \"honesty\" and \"autonomy\" as value names or "
                    + "definitions") == true)
        #expect(
            try failure(row + "a2,Scene,honesty,helpfulness,Tell,True\n") == "case.csv:3: expected 7 fields, found 6")
        #expect(
            try failure(row + "a1,Scene,honesty,helpfulness,Tell,Help,True\n")?.hasPrefix(
                "case.csv:3: scenario_id a1 appears twice") == true)
        #expect(
            try failure(row + "a2,Sc\"ene,honesty,helpfulness,Tell,Help,True\n")?.hasPrefix(
                "case.csv:3: a double quote inside an unquoted field") == true)
        #expect(try failure(row, prompts: "{\"a1\": ")?.hasPrefix("prompts.json: not valid JSON") == true)
        #expect(
            try failure(row, prompts: "{\"a1\": 3}") == "prompts.json: the prompt of scenario \"a1\" is not a string")
        #expect(try isEmpty(store))
    }

    @Test func csvReaderFollowsRFC4180() throws {
        let text = "\u{FEFF}a,b,c\r\n1,\"x, \"\"y\"\"\r\nz\",\r\n\r\n\"\",,last\n"
        let records = try CSVReader.parse(Data(text.utf8), file: "t.csv")
        #expect(records.map(\.line) == [1, 2, 5])
        #expect(records.map(\.fields) == [["a", "b", "c"], ["1", "x, \"y\"\r\nz", ""], ["", "", "last"]])
        for field in ["plain", "with, comma", "with \"quote\"", "two\nlines", "crlf\r\nend", ""] {
            let line = CSVReader.escape(field) + ",next\r\n"
            #expect(try CSVReader.parse(Data(line.utf8), file: "t.csv").first?.fields == [field, "next"])
        }
    }

    // MARK: Scenario export and import

    /// After a small sweep, with one scenario of each status the sweep may not produce on its own.
    private func sweptStore() async throws -> (config: SweepConfig, folder: URL, store: ResultStore) {
        let (config, folder) = try smallSweepConfig(scenariosPerPair: 1)
        _ = try await EmbeddedSweep.run(config: config)
        let store = try ResultStore(path: config.storePath)
        let set = config.valueSets[0]
        let (value1, value2) = set.pairs[0]
        func extra(_ id: String, _ status: ScenarioStatus, _ checks: [FilterCheckName: FilterCheck]?, raw: String?)
            -> Scenario
        {
            Scenario(
                id: "extra/\(id)", outlineID: "none", valueSet: set.name, value1: value1, value2: value2,
                template: .meansStrong, domain: .law, description: raw == nil ? "Odd, \"quoted\"\r\nscene" : "",
                persona: raw == nil ? "Ada Lovelace, 36, London" : "", background: "", goal: raw == nil ? "Win" : "",
                action1: raw == nil ? "Refuse" : "", action2: raw == nil ? "Do it, now" : "", consequence1: "",
                consequence2: "", generatingModel: "writer", status: status, checks: checks, raw: raw)
        }
        var partial: [FilterCheckName: FilterCheck] = [:]
        for name in FilterCheckName.allCases { partial[name] = FilterCheck(pass: true, raw: "true") }
        partial[.feasibility] = FilterCheck(pass: nil, raw: nil)
        var failed = partial
        failed[.feasibility] = FilterCheck(pass: false, raw: "false")
        try store.upsertScenario(extra("invalid", .invalid, nil, raw: "not JSON at all"))
        try store.upsertScenario(extra("undecided", .undecided, partial, raw: nil))
        try store.upsertScenario(extra("unfiltered", .undecided, nil, raw: nil))
        try store.upsertScenario(extra("rejected", .rejected, failed, raw: nil))
        try store.upsertUserPrompt(scenarioID: "extra/rejected", text: "Hi,\n\"help\" me")
        return (config, folder, store)
    }

    @Test func scenarioJSONLinesHoldEveryScenarioWithStatusChecksAndMessage() async throws {
        let (_, _, store) = try await sweptStore()
        let text = ScenarioExport.render(try store.exportedScenarios(), format: .jsonl)
        let lines = text.split(separator: "\n")
        let stored = try store.scenarios()
        #expect(lines.count == stored.count)
        let checkNames = Set(FilterCheckName.allCases.map(\.rawValue))
        #expect(
            checkNames == [
                "realism", "specificity", "feasibility", "value_guidance", "impossibility", "genuine_dilemma",
            ])
        var records: [String: ScenarioRecord] = [:]
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(Set(object.keys) == Set(ScenarioRecord.fields))
            let checks = try #require(object["checks"] as? [String: Any])
            #expect(Set(checks.keys) == checkNames)
            let record = try JSONDecoder().decode(ScenarioRecord.self, from: Data(line.utf8))
            records[record.scenarioID] = record
        }
        #expect(
            ScenarioRecord.fields == [
                "scenario_id", "value_set", "value1", "value2", "template", "act_side", "domain", "description",
                "persona", "background", "goal", "action1", "action2", "consequence1", "consequence2", "status",
                "checks", "user_message",
            ])
        #expect(Set(records.values.map(\.status)).isSuperset(of: [.kept, .rejected, .undecided, .invalid]))
        for scenario in stored {
            let record = try #require(records[scenario.id])
            #expect(record.status == scenario.status)
            #expect(record.template == scenario.template && record.actSide == scenario.actSide)
            #expect(record.description == scenario.description && record.action2 == scenario.action2)
            #expect(record.userMessage == (try store.userPrompt(scenarioID: scenario.id)))
            for name in FilterCheckName.allCases { #expect(record.checks[name] == scenario.checks?[name]?.pass) }
        }
        #expect(records["extra/invalid"]?.checks == ScenarioRecord.Checks(nil))
        #expect(records["extra/undecided"]?.checks.feasibility == nil)
        #expect(records["extra/undecided"]?.checks.realism == true)
        #expect(records["extra/rejected"]?.checks.feasibility == false)
        #expect(records["extra/rejected"]?.actSide == .action2 && records["extra/rejected"]?.domain == .law)
        #expect(records["extra/rejected"]?.userMessage == "Hi,\n\"help\" me")
        // The sweep's kept scenarios have their opening messages.
        #expect(records.values.contains { $0.status == .kept && $0.userMessage != nil })
        #expect(text.contains("\"user_message\":null"))
    }

    @Test func scenarioCSVAndPromptsRoundTripThroughImport() async throws {
        let (config, folder, store) = try await sweptStore()
        let items = try store.exportedScenarios()
        let csv = ScenarioExport.render(items, format: .csv)
        let prompts = ScenarioExport.prompts(items)
        let records = try CSVReader.parse(Data(csv.utf8), file: "scenarios.csv")
        #expect(
            records[0].fields == [
                "scenario_id", "context", "description", "user_prompt", "value1", "value2", "action1", "action2",
                "keep_scenario", "check_results", "generating_model", "template", "act_side", "domain",
                "consequence1", "consequence2",
            ])
        let header = records[0].fields
        func column(_ name: String, _ record: CSVReader.Record) -> String {
            record.fields[header.firstIndex(of: name)!]
        }
        // Invalid scenarios have no row; the rest do, with the paper's conventions.
        #expect(records.count - 1 == items.filter { $0.scenario.status != .invalid }.count)
        let byID = Dictionary(uniqueKeysWithValues: items.map { ($0.fileID, $0) })
        let paperNames = Set(FilterCheckName.allCases.map(\.paperName))
        for record in records.dropFirst() {
            let item = try #require(byID[column("scenario_id", record)])
            #expect(column("keep_scenario", record) == (item.scenario.status == .kept ? "True" : "False"))
            #expect(column("value1", record) == item.scenario.value1)
            let profile = try JSONDecoder().decode(UserProfile.self, from: Data(column("user_prompt", record).utf8))
            #expect(profile == UserProfile(item.scenario))
            let checks = column("check_results", record)
            if item.scenario.checks != nil || item.scenario.status == .undecided {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(checks.utf8)) as? [String: Any])
                #expect(Set(object.keys) == paperNames)
            } else {
                #expect(checks.isEmpty)
            }
            if item.scenario.outlineID != "none" {
                #expect(!column("context", record).isEmpty)
                #expect(column("template", record) == item.scenario.template?.rawValue)
            }
            // Messages are only in prompts.json.
            if let message = item.userMessage { #expect(!record.fields.contains(message)) }
        }
        let promptObject = try #require(try JSONSerialization.jsonObject(with: Data(prompts.utf8)) as? [String: String])
        #expect(promptObject.count == items.filter { $0.userMessage != nil && $0.scenario.status != .invalid }.count)
        #expect(promptObject["extra/rejected"] == "Hi,\n\"help\" me")

        // Into a fresh store, and out again: the same files.
        let csvPath = folder.appendingPathComponent("scenarios.csv").path
        let promptsPath = folder.appendingPathComponent("prompts.json").path
        try csv.write(toFile: csvPath, atomically: true, encoding: .utf8)
        try prompts.write(toFile: promptsPath, atomically: true, encoding: .utf8)
        let (fresh, _) = try smallSweepConfig(scenariosPerPair: 0)
        let freshStore = try ResultStore(path: fresh.storePath)
        let summary = try PaperImport.run(
            scenarioFiles: [csvPath], promptsFile: promptsPath, config: fresh, store: freshStore)
        #expect(summary.scenarios == records.count - 1 && summary.prompts == promptObject.count)
        #expect(summary.undecided == items.filter { $0.scenario.status == .undecided }.count)
        #expect(summary.undecided >= 2)
        let again = try freshStore.exportedScenarios()
        #expect(ScenarioExport.render(again, format: .csv) == csv)
        #expect(ScenarioExport.prompts(again) == prompts)
        // Statuses, templates, act sides and domains survive too.
        let original = Dictionary(uniqueKeysWithValues: items.map { ($0.fileID, $0.scenario) })
        for item in again {
            let before = try #require(original[item.fileID])
            #expect(item.scenario.id == PaperImport.storeID(item.fileID))
            #expect(item.scenario.status == before.status, "\(item.fileID)")
            #expect(item.scenario.template == before.template && item.scenario.actSide == before.actSide)
            #expect(item.scenario.domain == before.domain && item.scenario.valueSet == before.valueSet)
            #expect(ScenarioRecord.Checks(item.scenario.checks) == ScenarioRecord.Checks(before.checks))
        }
    }

    /// Without prompts.json, the run asks the user model for the missing opening messages.
    @Test func scenariosImportedWithoutMessagesGetThemFromTheUserModel() async throws {
        let (_, folder, store) = try await sweptStore()
        let csvPath = folder.appendingPathComponent("scenarios.csv").path
        try ScenarioExport.render(try store.exportedScenarios(), format: .csv).write(
            toFile: csvPath, atomically: true, encoding: .utf8)
        let (fresh, _) = try smallSweepConfig(scenariosPerPair: 0)
        let freshStore = try ResultStore(path: fresh.storePath)
        try PaperImport.run(scenarioFiles: [csvPath], promptsFile: nil, config: fresh, store: freshStore)
        let kept = try freshStore.importedKeptScenarios()
        #expect(!kept.isEmpty)
        #expect(try kept.allSatisfy { try freshStore.userPrompt(scenarioID: $0.id) == nil })
        _ = try await EmbeddedSweep.run(config: fresh)
        for scenario in kept {
            #expect(try freshStore.userPrompt(scenarioID: scenario.id)?.isEmpty == false, "\(scenario.id)")
        }
        #expect(try freshStore.judgments().contains { $0.format == .open })
    }

    /// The paper's released layout: ids coding generator, values and template; value columns holding the
    /// definition texts; user_prompt the profile as JSON; check_results under the paper's check names.
    @Test func importsThePaperReleasedLayoutWithDefinitionTexts() throws {
        let (config, folder) = try importConfig()
        let store = try ResultStore(path: config.storePath)
        let set = try #require(config.valueSet(named: "hhh"))
        let (a, b) = set.pairs[0]
        let (c, d) = set.pairs[1]
        let checks = JSONValue.object(FilterCheckName.allCases.map { ($0.paperName, .bool($0 != .feasibility)) })
            .serialized()
        let profile = #"{"persona": "Ines Duarte, 41, Porto", "background": "Runs a clinic.", "goal": "Get it done"}"#
        let rows: [[String]] = [
            [
                "", "scenario_id", "context", "description", "user_prompt", "value1", "value2", "action1", "action2",
                "keep_scenario", "check_results", "generating_model",
            ],
            [
                "0", "gpt-4.1_\(a)_\(b)_\(a)-\(b)-coc_mild-0", "A clinic", "Ines asks", profile,
                set.definition(of: a)!, "  " + set.definition(of: b)!.uppercased() + " ", "Do", "Refrain", "True",
                checks, "gpt-4.1",
            ],
            [
                // Definitions in other words than ours: the id names the values.
                "1", "claude_\(c)_\(d)_\(c)-\(d)-cc-12", "", "Someone asks", "", "Our own wording of the first value.",
                "Our own wording of the second value.", "Refrain", "Do", "False", checks, "claude",
            ],
        ]
        let path = folder.appendingPathComponent("released.csv").path
        try Data(csvBytes(rows)).write(to: URL(fileURLWithPath: path))
        let promptsPath = folder.appendingPathComponent("prompts.json").path
        try #"{"gpt-4.1_\#(a)_\#(b)_\#(a)-\#(b)-coc_mild-0": "Hello there"}"#.write(
            toFile: promptsPath, atomically: true, encoding: .utf8)
        let summary = try PaperImport.run(scenarioFiles: [path], promptsFile: promptsPath, config: config, store: store)
        #expect(summary == PaperImport.Summary(files: 1, scenarios: 2, kept: 1, rejected: 1, prompts: 1))
        let scenarios = Dictionary(uniqueKeysWithValues: try store.scenarios().map { ($0.id, $0) })
        let first = try #require(scenarios["import/gpt-4.1_\(a)_\(b)_\(a)-\(b)-coc_mild-0"])
        #expect(first.valueSet == "hhh" && first.value1 == a && first.value2 == b)
        #expect(first.template == .sideEffectMild && first.actSide == .action1)
        #expect(first.persona == "Ines Duarte, 41, Porto" && first.background == "Runs a clinic.")
        #expect(first.goal == "Get it done" && first.status == .kept)
        #expect(first.checks?[.feasibility]?.pass == false && first.checks?[.realism]?.pass == true)
        #expect(try store.userPrompt(scenarioID: first.id) == "Hello there")
        let second = try #require(scenarios["import/claude_\(c)_\(d)_\(c)-\(d)-cc-12"])
        #expect(second.value1 == c && second.value2 == d && second.status == .rejected)
        #expect(second.template == .meansStrong && second.actSide == .action2)
        #expect(try store.userPrompt(scenarioID: second.id) == nil)
        // The context has no outline to live in; the export still gives it back.
        let exported = try store.exportedScenarios()
        #expect(exported.first { $0.scenario.id == first.id }?.context == "A clinic")
        #expect(exported.first { $0.scenario.id == second.id }?.context == "")
        #expect(exported.first { $0.scenario.id == first.id }?.fileID == "gpt-4.1_\(a)_\(b)_\(a)-\(b)-coc_mild-0")
    }

    @Test func badScenarioColumnsNameTheFileLineAndColumn() throws {
        let (config, folder) = try importConfig()
        let store = try ResultStore(path: config.storePath)
        let header = "scenario_id,description,value1,value2,action1,action2,keep_scenario,template,act_side,domain\n"
        let good = "a1,Scene,honesty,helpfulness,Tell,Help,True,means_mild,action2,health\n"
        func failure(_ csv: String) throws -> String? {
            let path = folder.appendingPathComponent("case.csv").path
            try (header + csv).write(toFile: path, atomically: true, encoding: .utf8)
            let error = #expect(throws: ImportError.self) {
                try PaperImport.run(scenarioFiles: [path], promptsFile: nil, config: config, store: store)
            }
            return error.map { $0.description.replacingOccurrences(of: folder.path + "/", with: "") }
        }
        #expect(
            try failure(good + "a2,Scene,honesty,helpfulness,Tell,Help,True,sideways,,\n")
                == "case.csv:3: template must be one of side_effect_mild, side_effect_strong, means_mild, "
                + "means_strong, not \"sideways\"")
        #expect(
            try failure(good + "a2,Scene,honesty,helpfulness,Tell,Help,True,,action3,\n")
                == "case.csv:3: act_side must be one of action1, action2, not \"action3\"")
        #expect(
            try failure(good + "a2,Scene,honesty,helpfulness,Tell,Help,True,,,astrology\n")?.hasPrefix(
                "case.csv:3: domain must be one of health, ") == true)
        // A definition text that matches no configured value, in an id that names no values.
        #expect(
            try failure(good + "a2,Scene,Being nice to everyone.,helpfulness,Tell,Help,True,,,\n")?.hasPrefix(
                "case.csv:3: no configured value set has both \"Being nice to everyone.\" and \"helpfulness\"")
                == true)
        #expect(try isEmpty(store))
        // The good row alone imports, with the template's paper code accepted too.
        let path = folder.appendingPathComponent("ok.csv").path
        try (header + good + "a2,Scene,honesty,helpfulness,Tell,Help,False,coc,,\n").write(
            toFile: path, atomically: true, encoding: .utf8)
        try PaperImport.run(scenarioFiles: [path], promptsFile: nil, config: config, store: store)
        let stored = Dictionary(uniqueKeysWithValues: try store.scenarios().map { ($0.id, $0) })
        #expect(stored["import/a1"]?.template == .meansMild && stored["import/a1"]?.domain == .health)
        #expect(stored["import/a2"]?.template == .sideEffectStrong && stored["import/a2"]?.actSide == .action1)
    }

    // MARK: Plan

    @Test func planNumbersFollowTheFormula() throws {
        let (config, _) = try writeTemporaryConfig(
            """
            [sweep]
            name = "plan"
            value_sets = ["hhh"]
            scenarios_per_pair = 10

            [generation]
            outlines_per_call = 2

            [conditions.default]
            [conditions.steered]
            target_ranking.hhh = ["honesty", "harmlessness", "helpfulness"]

            [providers.sim]
            kind = "simulated"
            concurrency = 8

            [providers.api]
            kind = "openai"
            base_url = "http://127.0.0.1:9/v1"
            rpm = 60
            tpm = 100000
            concurrency = 4

            [models.writer]
            provider = "sim"
            input_usd_per_mtok = 1.0
            output_usd_per_mtok = 4.0

            [models.alpha]
            provider = "api"
            input_usd_per_mtok = 3.0
            output_usd_per_mtok = 15.0

            [models.beta]
            provider = "api"
            input_usd_per_mtok = 0.5
            output_usd_per_mtok = 1.5

            [roles.generator]
            model = "writer"
            max_tokens = 2000
            [roles.filter_judge]
            model = "writer"
            max_tokens = 800
            [roles.user]
            model = "writer"
            max_tokens = 400
            [roles.judge]
            model = "writer"
            max_tokens = 600

            [targets]
            models = ["alpha", "beta"]
            """)
        let plan = SweepPlan(config: config)
        let pairs = 3
        let scenarios = pairs * 10
        // 10 per pair needs 2 rounds of 4 template calls x 2 outlines.
        #expect(plan.rounds == 2)
        #expect(plan.scenarios == scenarios)
        func stage(_ name: Stage, _ role: String, _ model: String) -> SweepPlan.StageLoad? {
            plan.stages.first { $0.stage == name && $0.role == role && $0.model == model }
        }
        #expect(
            Set(plan.stages.map(\.stage.rawValue)) == [
                "generation", "scenario_details", "filter", "user_prompts", "artifacts", "multiple_choice", "likert",
                "open_ended", "judge",
            ])
        #expect(stage(.generation, "generator", "writer")?.calls == pairs * 4 * 2)
        #expect(stage(.scenarioDetails, "generator", "writer")?.calls == scenarios)
        #expect(stage(.filter, "filter_judge", "writer")?.calls == scenarios * 7)
        #expect(stage(.userPrompts, "user", "writer")?.calls == scenarios)
        #expect(stage(.artifacts, "user", "writer")?.calls == 0)
        for target in ["alpha", "beta"] {
            #expect(stage(.multipleChoice, "target", target)?.calls == scenarios * 2)
            #expect(stage(.likert, "target", target)?.calls == scenarios * 2 * 2)
            #expect(stage(.openEnded, "target", target)?.calls == scenarios * 2)
            #expect(
                stage(.multipleChoice, "target", target)?.outputTokensPerCall
                    == config.settings(target: target, call: .mcq).maxTokens)
            #expect(
                stage(.likert, "target", target)?.outputTokensPerCall
                    == config.settings(target: target, call: .likert).maxTokens)
            #expect(
                stage(.openEnded, "target", target)?.outputTokensPerCall
                    == config.settings(target: target, call: .open).maxTokens)
        }
        #expect(stage(.judge, "judge", "writer")?.calls == scenarios * 2 * 2)
        #expect(
            plan.totalCalls
                == pairs * 8 + scenarios * (1 + 7 + 1) + 2 * 2 * (scenarios + 2 * scenarios + scenarios)
                + scenarios * 2 * 2)
        #expect(plan.totalCalls == plan.stages.reduce(0) { $0 + $1.calls })
        #expect(plan.stages.allSatisfy { $0.calls == 0 || $0.inputTokens > 0 })

        // Cost: input tokens x input price + max output tokens x output price, per stage.
        for entry in plan.stages {
            let model = config.models[entry.model]!
            let cost =
                (Double(entry.inputTokens) * model.inputUSDPerMillionTokens
                    + Double(entry.calls * entry.outputTokensPerCall) * model.outputUSDPerMillionTokens) / 1e6
            #expect(abs(entry.costUSD - cost) < 1e-9)
            #expect(entry.outputTokens == entry.calls * entry.outputTokensPerCall)
        }
        #expect(abs(plan.totalCostUSD - plan.stages.reduce(0) { $0 + $1.costUSD }) < 1e-9)

        // ETA: max(calls / rpm, tokens / tpm, calls x latency / concurrency) per model.
        for load in plan.models {
            let own = plan.stages.filter { $0.model == load.model }
            let calls = Double(own.reduce(0) { $0 + $1.calls })
            let tokens = Double(own.reduce(0) { $0 + $1.inputTokens + $1.outputTokens })
            let expected =
                load.model == "writer"
                ? calls * 1 / 8 / 60
                : max(calls / 60, tokens / 100_000, calls * 5 / 4 / 60)
            #expect(abs(load.etaMinutes - expected) < 1e-9, "\(load.model)")
        }
        #expect(plan.etaMinutes == plan.models.map(\.etaMinutes).max())

        let json = plan.json.serialized()
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        for key in ["stages", "models", "total_calls", "total_cost_usd", "eta_minutes"] {
            #expect(object[key] != nil, "\(key)")
        }
        #expect(object["total_calls"] as? Int == plan.totalCalls)

        // Imported kept scenarios add evaluations; those with an imported prompt need no user-prompt call.
        let withImports = SweepPlan(
            config: config, imported: .init(kept: ["hhh": 4, "other": 9], withUserPrompt: ["hhh": 3, "other": 9]))
        #expect(withImports.scenarios == scenarios + 4)
        #expect(withImports.stages.first { $0.stage == .userPrompts }?.calls == scenarios + 1)
        #expect(
            withImports.stages.first { $0.stage == .multipleChoice && $0.model == "beta" }?.calls
                == (scenarios + 4) * 2)
    }

    /// Imported kept scenarios are evaluated without generation or filtering; those imported with an
    /// opening message use it as it is, the others get one from the user model.
    @Test func importedScenariosAreEvaluatedWithTheirPrompts() async throws {
        let (config, _) = try importConfig()
        let store = try ResultStore(path: config.storePath)
        try PaperImport.run(
            scenarioFiles: [try paperFixture("scenarios_hhh", "csv")], promptsFile: try paperFixture("prompts", "json"),
            config: config, store: store)
        let plan = SweepPlan(config: config, imported: try store.importedScenarioCounts())
        #expect(plan.stages.allSatisfy { ![.generation, .scenarioDetails, .filter].contains($0.stage) })
        #expect(plan.stages.first { $0.stage == .userPrompts }?.calls == 3)
        let before = try store.userPrompt(scenarioID: "import/hhh_0001")
        _ = try await EmbeddedSweep.run(config: config)
        let judgments = try store.judgments()
        #expect(judgments.count == 6 * 2)
        #expect(Set(judgments.map(\.scenarioID)).count == 6)
        #expect(try store.scenarioCounts().outlines == 0)
        let rows = try store.exportedJudgments(includeInvalidAndMissing: true)
        #expect(rows.contains { $0.generatingModel == "claude-3-7-sonnet" })
        #expect(try store.userPrompt(scenarioID: "import/hhh_0001") == before)
        for scenario in try store.importedKeptScenarios() {
            #expect(try store.userPrompt(scenarioID: scenario.id)?.isEmpty == false, "\(scenario.id)")
        }
        let status = try SweepStatus.read(config: config, store: store)
        #expect(status.calls.filter { $0.role == "user" }.reduce(0) { $0 + $1.ok } == 3)
        #expect(!status.calls.contains { $0.role == "generator" || $0.role == "filter_judge" })
    }
}
