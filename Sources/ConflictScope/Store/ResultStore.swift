import Foundation
import GRDB

/// The SQLite store of a sweep: calls (which double as the response cache), outlines, scenarios with
/// their filter checks, user prompts and judgments. Every row has a deterministic id and is upserted,
/// so a replayed or redelivered result never counts twice.
public final class ResultStore: Sendable {
    let database: DatabaseQueue

    public init(path: String) throws {
        try FileManager.default.createDirectory(
            at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        // WAL with NORMAL sync: a crash loses at most the last few results, which a re-run replays from
        // the cache, instead of paying an fsync for every call record.
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        database = try DatabaseQueue(path: path, configuration: configuration)
        do {
            try Self.migrator.migrate(database)
        } catch {
            // Cluster roles may open a new store at the same moment; the one that lost the race to
            // create the tables waits for the other to finish.
            let migrated = { [database] in try database.read { try Self.migrator.hasCompletedMigrations($0) } }
            for _ in 0..<100 where !(try migrated()) { Thread.sleep(forTimeInterval: 0.1) }
            guard try migrated() else { throw error }
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE sweep (
                        id TEXT PRIMARY KEY, name TEXT NOT NULL, seed INTEGER NOT NULL, created_at TEXT NOT NULL);
                    CREATE TABLE call (
                        key TEXT PRIMARY KEY, task_id TEXT NOT NULL, role TEXT NOT NULL, model TEXT NOT NULL,
                        prompt TEXT NOT NULL, sample_index INTEGER NOT NULL, status TEXT NOT NULL,
                        response TEXT, error TEXT, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
                        latency_ms INTEGER NOT NULL, cost_usd REAL NOT NULL, attempts INTEGER NOT NULL);
                    CREATE TABLE outline (
                        id TEXT PRIMARY KEY, value_set TEXT NOT NULL, value1 TEXT NOT NULL, value2 TEXT NOT NULL,
                        round INTEGER NOT NULL, context TEXT NOT NULL, action_opportunity TEXT NOT NULL,
                        kept INTEGER NOT NULL);
                    CREATE TABLE scenario (
                        id TEXT PRIMARY KEY, outline_id TEXT NOT NULL, value_set TEXT NOT NULL, value1 TEXT NOT NULL,
                        value2 TEXT NOT NULL, description TEXT NOT NULL, persona TEXT NOT NULL,
                        background TEXT NOT NULL, goal TEXT NOT NULL, action1 TEXT NOT NULL, action2 TEXT NOT NULL,
                        consequence1 TEXT NOT NULL, consequence2 TEXT NOT NULL, generating_model TEXT NOT NULL,
                        status TEXT NOT NULL, checks TEXT);
                    CREATE TABLE user_prompt (scenario_id TEXT PRIMARY KEY, text TEXT NOT NULL);
                    CREATE TABLE judgment (
                        id TEXT PRIMARY KEY, scenario_id TEXT NOT NULL, model TEXT NOT NULL, value_set TEXT NOT NULL,
                        format TEXT NOT NULL, condition TEXT NOT NULL, value1 TEXT NOT NULL, value2 TEXT NOT NULL,
                        action1_is_a INTEGER NOT NULL, choice TEXT NOT NULL, likert INTEGER, likert_a INTEGER,
                        likert_b INTEGER, raw TEXT, reasoning TEXT, target_ranking TEXT);
                    """)
        }
        migrator.registerMigration("v2: task table") { db in
            // Cluster runs: every published task and its state (see ResultStore+Tasks).
            try db.execute(
                sql: """
                    CREATE TABLE task (id TEXT PRIMARY KEY, stage TEXT NOT NULL, state TEXT NOT NULL, body TEXT NOT NULL);
                    CREATE INDEX task_state ON task (state);
                    CREATE TABLE registration (id TEXT PRIMARY KEY, tasks INTEGER NOT NULL);
                    """)
        }
        migrator.registerMigration("v3: the paper's protocol") { db in
            // Templates and act sides, outlines' good and harm, domains, invalid stage-2 answers, per-check
            // verdicts with raw answers (in `checks`), and each judgment's act side and conversation.
            try db.execute(
                sql: """
                    ALTER TABLE outline ADD COLUMN template TEXT NOT NULL DEFAULT 'side_effect_mild';
                    ALTER TABLE outline ADD COLUMN good TEXT NOT NULL DEFAULT '';
                    ALTER TABLE outline ADD COLUMN harm TEXT NOT NULL DEFAULT '';
                    ALTER TABLE scenario ADD COLUMN template TEXT;
                    ALTER TABLE scenario ADD COLUMN act_side TEXT;
                    ALTER TABLE scenario ADD COLUMN domain TEXT;
                    ALTER TABLE scenario ADD COLUMN raw TEXT;
                    ALTER TABLE judgment ADD COLUMN act_side TEXT;
                    ALTER TABLE judgment ADD COLUMN transcript TEXT;
                    """)
        }
        migrator.registerMigration("v4: truncated answers and the sweep's identity") { db in
            // An answer cut off at the token limit is cached like any other but never used. The sweep's
            // identity (ResultStore+Identity) keeps one sweep per store.
            try db.execute(
                sql: """
                    ALTER TABLE call ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE sweep ADD COLUMN identity TEXT;
                    """)
        }
        migrator.registerMigration("v5: where the sweep runs") { db in
            // `SweepMode`: status reads the cluster's queues and shared state only for a cluster sweep.
            try db.execute(sql: "ALTER TABLE sweep ADD COLUMN mode TEXT")
        }
        return migrator
    }

    // MARK: Calls and the response cache

    public struct CallRecord: Sendable, Equatable, Codable {
        public var key: String
        public var taskID: String
        public var role: String
        public var model: String
        public var prompt: String
        public var sampleIndex: Int
        public var status: String
        public var response: String?
        public var error: String?
        public var inputTokens: Int
        public var outputTokens: Int
        public var latencyMilliseconds: Int
        public var costUSD: Double
        public var attempts: Int
        /// The answer came back cut off at the token limit (status stays `ok`: the call was paid for).
        public var truncated = false
    }

    public func successfulResponse(key: String) throws -> ModelAnswer? {
        try database.read { db in
            try Row.fetchOne(
                db, sql: "SELECT response, truncated FROM call WHERE key = ? AND status = 'ok'", arguments: [key]
            ).map { ModelAnswer(text: $0["response"] ?? "", truncated: $0["truncated"]) }
        }
    }

    @discardableResult
    public func record(_ call: CallRecord) throws -> ModelAnswer? {
        try database.write { db in
            try Self.insert(call, in: db)
            guard call.status == "ok" else { return nil }
            return try Row.fetchOne(
                db, sql: "SELECT response, truncated FROM call WHERE key = ? AND status = 'ok'", arguments: [call.key]
            ).map { ModelAnswer(text: $0["response"] ?? "", truncated: $0["truncated"]) }
        }
    }

    static func insert(_ call: CallRecord, in db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO call (key, task_id, role, model, prompt, sample_index, status, response, error,
                    input_tokens, output_tokens, latency_ms, cost_usd, attempts, truncated)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(key) DO UPDATE SET status = excluded.status, response = excluded.response,
                    error = excluded.error, truncated = excluded.truncated, input_tokens = excluded.input_tokens,
                    output_tokens = excluded.output_tokens, latency_ms = excluded.latency_ms,
                    cost_usd = excluded.cost_usd, attempts = call.attempts + excluded.attempts
                WHERE call.status != 'ok'
                """,
            arguments: [
                call.key, call.taskID, call.role, call.model, call.prompt, call.sampleIndex, call.status,
                call.response, call.error, call.inputTokens, call.outputTokens, call.latencyMilliseconds,
                call.costUSD, call.attempts, call.truncated,
            ])
    }

    /// Estimated spend of every successful call so far.
    public func spentUSD() throws -> Double {
        try database.read { db in try Double.fetchOne(db, sql: "SELECT COALESCE(SUM(cost_usd), 0) FROM call") ?? 0 }
    }

    public struct CallCounts: Sendable, Equatable {
        public var ok = 0
        public var failed = 0
    }

    public func callCounts() throws -> CallCounts {
        try database.read { db in
            CallCounts(
                ok: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM call WHERE status = 'ok'") ?? 0,
                failed: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM call WHERE status != 'ok'") ?? 0)
        }
    }

    /// Calls stored per stage: `made` answered, `failed` not (cached and invalid are not counted here).
    public func callCountsByStage() throws -> [Stage: CallCounters.Counts] {
        try database.read { db in
            var counts: [Stage: CallCounters.Counts] = [:]
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT substr(task_id, 1, instr(task_id || '/', '/') - 1) AS stage, status = 'ok' AS ok,
                        COUNT(*) AS n FROM call GROUP BY 1, 2
                    """)
            for row in rows {
                guard let stage = Stage(rawValue: row["stage"]) else { continue }
                if row["ok"] {
                    counts[stage, default: .init()].made += row["n"] as Int
                } else {
                    counts[stage, default: .init()].failed += row["n"] as Int
                }
            }
            return counts
        }
    }

    // MARK: Pipeline results

    public func upsertOutline(_ outline: Outline) throws { try database.write { try Self.upsert(outline, in: $0) } }

    static func upsert(_ outline: Outline, in db: Database) throws {
        try db.execute(
            sql: """
                INSERT OR REPLACE INTO outline (id, value_set, value1, value2, round, context, action_opportunity, kept,
                    template, good, harm)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                outline.id, outline.valueSet, outline.value1, outline.value2, outline.round, outline.context,
                outline.actionOpportunity, outline.kept, outline.template.rawValue, outline.good, outline.harm,
            ])
    }

    /// Kept scenarios imported from released data, in id order.
    public func importedKeptScenarios() throws -> [Scenario] {
        try database.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM scenario WHERE outline_id = ? AND status = 'kept' ORDER BY id",
                arguments: [Scenario.importedOutlineID]
            ).map(Self.scenario)
        }
    }

    /// Every scenario, in id order.
    public func scenarios() throws -> [Scenario] {
        try database.read { db in try Row.fetchAll(db, sql: "SELECT * FROM scenario ORDER BY id").map(Self.scenario) }
    }

    /// Every outline, in id order.
    public func outlines() throws -> [Outline] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM outline ORDER BY id").map { row in
                Outline(
                    id: row["id"], valueSet: row["value_set"], value1: row["value1"], value2: row["value2"],
                    round: row["round"], template: ScenarioTemplate(rawValue: row["template"]) ?? .sideEffectMild,
                    context: row["context"], actionOpportunity: row["action_opportunity"], good: row["good"],
                    harm: row["harm"], kept: row["kept"])
            }
        }
    }

    static func scenario(_ row: Row) -> Scenario {
        Scenario(
            id: row["id"], outlineID: row["outline_id"], valueSet: row["value_set"], value1: row["value1"],
            value2: row["value2"], template: (row["template"] as String?).flatMap(ScenarioTemplate.init(rawValue:)),
            actSide: (row["act_side"] as String?).flatMap(ActSide.init(rawValue:)),
            domain: (row["domain"] as String?).flatMap(ScenarioDomain.init(rawValue:)), description: row["description"],
            persona: row["persona"], background: row["background"], goal: row["goal"], action1: row["action1"],
            action2: row["action2"], consequence1: row["consequence1"], consequence2: row["consequence2"],
            generatingModel: row["generating_model"],
            status: ScenarioStatus(rawValue: row["status"]) ?? .undecided,
            checks: (row["checks"] as String?).flatMap(decodeChecks), raw: row["raw"])
    }

    /// Checks as stored: `{"realism": {"pass": true, "raw": "true"}, ...}`.
    static func encodeChecks(_ checks: [FilterCheckName: FilterCheck]) -> String {
        let object = Dictionary(
            uniqueKeysWithValues: checks.map { name, check in
                (
                    name.rawValue,
                    ["pass": check.pass.map { $0 as Any } ?? NSNull(), "raw": check.raw ?? NSNull()] as [String: Any]
                )
            })
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func decodeChecks(_ text: String) -> [FilterCheckName: FilterCheck]? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            return nil
        }
        var checks: [FilterCheckName: FilterCheck] = [:]
        for (key, value) in object {
            guard let name = FilterCheckName(rawValue: key) ?? FilterCheckName(paperName: key) else { continue }
            let entry = value as? [String: Any]
            let pass = (entry?["pass"] ?? value) as? Bool
            checks[name] = FilterCheck(pass: pass, raw: entry?["raw"] as? String)
        }
        return checks.isEmpty ? nil : checks
    }

    public func upsertScenario(_ scenario: Scenario) throws { try database.write { try Self.upsert(scenario, in: $0) } }

    static func upsert(_ scenario: Scenario, in db: Database) throws {
        let checks = scenario.checks.map(encodeChecks)
        try db.execute(
            sql: """
                INSERT INTO scenario (id, outline_id, value_set, value1, value2, description, persona,
                    background, goal, action1, action2, consequence1, consequence2, generating_model, status, checks,
                    template, act_side, domain, raw)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET outline_id = excluded.outline_id, value_set = excluded.value_set,
                    value1 = excluded.value1, value2 = excluded.value2, description = excluded.description,
                    persona = excluded.persona, background = excluded.background, goal = excluded.goal,
                    action1 = excluded.action1, action2 = excluded.action2, consequence1 = excluded.consequence1,
                    consequence2 = excluded.consequence2, generating_model = excluded.generating_model,
                    status = excluded.status, checks = excluded.checks, template = excluded.template,
                    act_side = excluded.act_side, domain = excluded.domain, raw = excluded.raw
                -- A filter's verdict is never undone by a replayed (or late) detail row.
                WHERE excluded.status != 'undecided' OR scenario.status = 'undecided'
                """,
            arguments: [
                scenario.id, scenario.outlineID, scenario.valueSet, scenario.value1, scenario.value2,
                scenario.description, scenario.persona, scenario.background, scenario.goal, scenario.action1,
                scenario.action2, scenario.consequence1, scenario.consequence2, scenario.generatingModel,
                scenario.status.rawValue, checks, scenario.template?.rawValue, scenario.actSide?.rawValue,
                scenario.domain?.rawValue, scenario.raw,
            ])
    }

    public func upsertUserPrompt(scenarioID: String, text: String) throws {
        try database.write { try Self.upsertUserPrompt(scenarioID: scenarioID, text: text, in: $0) }
    }

    static func upsertUserPrompt(scenarioID: String, text: String, in db: Database) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO user_prompt (scenario_id, text) VALUES (?, ?)", arguments: [scenarioID, text])
    }

    public func userPrompt(scenarioID: String) throws -> String? {
        try database.read { db in
            try String.fetchOne(db, sql: "SELECT text FROM user_prompt WHERE scenario_id = ?", arguments: [scenarioID])
        }
    }

    public func upsertJudgment(_ record: StoredJudgment) throws {
        try database.write { try Self.upsert(record, in: $0) }
    }

    static func upsert(_ record: StoredJudgment, in db: Database) throws {
        try db.execute(
            sql: """
                INSERT OR REPLACE INTO judgment (id, scenario_id, model, value_set, format, condition, value1, value2,
                    action1_is_a, choice, likert, likert_a, likert_b, raw, reasoning, target_ranking, act_side,
                    transcript)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                record.id, record.judgment.scenarioID, record.judgment.model, record.judgment.valueSet,
                record.judgment.format.rawValue, record.judgment.condition, record.judgment.value1,
                record.judgment.value2, record.action1IsA, record.judgment.choice.rawValue, record.likert,
                record.judgment.likertA, record.judgment.likertB, record.raw, record.reasoning,
                record.judgment.targetRanking?.joined(separator: ","), record.judgment.actSide?.rawValue,
                record.transcript.flatMap { try? JSONEncoder().encode($0) }.map { String(decoding: $0, as: UTF8.self) },
            ])
    }

    /// Every judgment, in id order.
    public func judgments() throws -> [Judgment] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM judgment ORDER BY id").map(Self.judgment)
        }
    }

    static func judgment(_ row: Row) -> Judgment {
        Judgment(
            model: row["model"], valueSet: row["value_set"], format: EvaluationFormat(rawValue: row["format"]) ?? .mcq,
            condition: row["condition"], scenarioID: row["scenario_id"], value1: row["value1"], value2: row["value2"],
            choice: Choice(rawValue: row["choice"]) ?? .missing, likertA: row["likert_a"], likertB: row["likert_b"],
            targetRanking: (row["target_ranking"] as String?).map { $0.split(separator: ",").map(String.init) },
            actSide: (row["act_side"] as String?).flatMap(ActSide.init(rawValue:)))
    }

    public struct ScenarioCounts: Sendable, Equatable {
        public var outlines = 0
        public var kept = 0
        public var rejected = 0
        public var undecided = 0
        public var invalid = 0
    }

    public func scenarioCounts() throws -> ScenarioCounts {
        try database.read { db in
            var counts = ScenarioCounts()
            counts.outlines = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outline WHERE kept = 1") ?? 0
            for row in try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS n FROM scenario GROUP BY status") {
                switch row["status"] as String {
                case ScenarioStatus.kept.rawValue: counts.kept = row["n"]
                case ScenarioStatus.rejected.rawValue: counts.rejected = row["n"]
                case ScenarioStatus.invalid.rawValue: counts.invalid = row["n"]
                default: counts.undecided += row["n"] as Int
                }
            }
            return counts
        }
    }
}
