import Foundation
import GRDB

/// Where a sweep stands, read from its store: calls, spend, scenarios, judgments and current rankings.
public struct SweepStatus: Sendable, JSONRepresentable {
    public struct CallGroup: Sendable, Equatable {
        public var role: String
        public var model: String
        public var ok = 0
        public var failed = 0
        public var inputTokens = 0
        public var outputTokens = 0
        public var costUSD = 0.0
    }

    public struct JudgmentGroup: Sendable, Equatable {
        public var model: String
        public var valueSet: String
        public var format: EvaluationFormat
        public var condition: String
        public var a = 0
        public var b = 0
        public var invalid = 0
        public var missing = 0
        public var total: Int { a + b + invalid + missing }
    }

    /// Nil until the sweep has started.
    public var sweepID: String?
    public var name: String
    public var storePath: String
    /// By role, then model.
    public var calls: [CallGroup]
    public var outlinesGenerated: Int
    public var outlinesKept: Int
    public var scenarios: ResultStore.ScenarioCounts
    /// Scenarios imported from released data (any status).
    public var importedScenarios: Int
    /// In group order.
    public var judgments: [JudgmentGroup]
    /// Judgments a finished sweep has: kept scenarios of the configured value sets x targets x conditions x
    /// formats.
    public var expectedJudgments: Int
    /// Tasks by stage and state (empty for a store no run has used since tasks were recorded).
    public var tasks: [String: [TaskState: Int]]
    /// Where the sweep last ran: a cluster sweep's status adds its queues and shared state.
    public var mode: SweepMode?
    /// Current rankings (no bootstrap), or why they cannot be fitted yet.
    public var rankings: [GroupRanking]
    public var rankingError: String?

    public var callsOK: Int { calls.reduce(0) { $0 + $1.ok } }
    public var callsFailed: Int { calls.reduce(0) { $0 + $1.failed } }
    public var costUSD: Double { calls.reduce(0) { $0 + $1.costUSD } }

    /// Reads the store of `config`; rankings use the config's analysis options without bootstrap.
    public static func read(config: SweepConfig, store: ResultStore) throws -> SweepStatus {
        let snapshot = try store.statusSnapshot()
        var options = config.analysis
        options.resamples = 0
        var rankings: [GroupRanking] = []
        var rankingError: String? = nil
        do {
            rankings = try RankingReport(judgments: try store.judgments(), options: options).rankings
        } catch {
            rankingError = "\(error)"
        }
        let configured = Set(config.valueSets.map(\.name))
        let keptInSets = snapshot.keptByValueSet.filter { configured.contains($0.key) }.values.reduce(0, +)
        return SweepStatus(
            sweepID: snapshot.sweepID, name: config.name, storePath: config.storePath, calls: snapshot.calls,
            outlinesGenerated: snapshot.outlinesGenerated, outlinesKept: snapshot.outlinesKept,
            scenarios: try store.scenarioCounts(), importedScenarios: snapshot.imported, judgments: snapshot.judgments,
            expectedJudgments: keptInSets * config.targets.count * config.conditions.count * config.formats.count,
            tasks: try store.taskCounts(), mode: try store.mode(), rankings: rankings, rankingError: rankingError)
    }

    public var json: JSONValue {
        .object([
            ("sweep", .object([("id", .string(sweepID)), ("name", .string(name)), ("store", .string(storePath))])),
            (
                "calls",
                .object([
                    ("ok", .int(callsOK)), ("failed", .int(callsFailed)),
                    ("input_tokens", .int(calls.reduce(0) { $0 + $1.inputTokens })),
                    ("output_tokens", .int(calls.reduce(0) { $0 + $1.outputTokens })), ("cost_usd", .number(costUSD)),
                    (
                        "by_role",
                        .array(
                            calls.map { group in
                                .object([
                                    ("role", .string(group.role)), ("model", .string(group.model)),
                                    ("ok", .int(group.ok)), ("failed", .int(group.failed)),
                                    ("input_tokens", .int(group.inputTokens)),
                                    ("output_tokens", .int(group.outputTokens)), ("cost_usd", .number(group.costUSD)),
                                ])
                            })
                    ),
                ])
            ),
            ("outlines", .object([("generated", .int(outlinesGenerated)), ("kept", .int(outlinesKept))])),
            (
                "scenarios",
                .object([
                    ("kept", .int(scenarios.kept)), ("rejected", .int(scenarios.rejected)),
                    ("undecided", .int(scenarios.undecided)), ("imported", .int(importedScenarios)),
                ])
            ),
            (
                "judgments",
                .object([
                    ("total", .int(judgments.reduce(0) { $0 + $1.total })), ("expected", .int(expectedJudgments)),
                    (
                        "groups",
                        .array(
                            judgments.map { group in
                                .object([
                                    ("model", .string(group.model)), ("value_set", .string(group.valueSet)),
                                    ("format", .string(group.format.rawValue)), ("condition", .string(group.condition)),
                                    ("A", .int(group.a)), ("B", .int(group.b)), ("invalid", .int(group.invalid)),
                                    ("missing", .int(group.missing)),
                                ])
                            })
                    ),
                ])
            ),
            (
                "tasks",
                .object(
                    tasks.keys.sorted().map { stage in
                        (stage, .object(TaskState.allCases.map { ($0.rawValue, .int(tasks[stage]?[$0] ?? 0)) }))
                    })
            ),
            ("rankings", .array(rankings.map(\.json))),
            ("rankings_error", .string(rankingError)),
        ])
    }

    public func table() -> String {
        var out = "Sweep \(name) (\(sweepID ?? "not started")), store \(storePath)\n\n"
        out +=
            "Calls: \(callsOK) ok, \(callsFailed) failed, \(calls.reduce(0) { $0 + $1.inputTokens }) input and "
            + "\(calls.reduce(0) { $0 + $1.outputTokens }) output tokens, $\(String(format: "%.4f", costUSD))\n"
        for group in calls {
            out +=
                "  \(group.role) / \(group.model): \(group.ok) ok, \(group.failed) failed, "
                + "\(group.inputTokens) in, \(group.outputTokens) out, $\(String(format: "%.4f", group.costUSD))\n"
        }
        out += "\nOutlines: \(outlinesGenerated) generated, \(outlinesKept) kept\n"
        out +=
            "Scenarios: \(scenarios.kept) kept, \(scenarios.rejected) rejected, \(scenarios.undecided) undecided"
            + (importedScenarios > 0 ? " (\(importedScenarios) imported)" : "") + "\n"
        if !tasks.isEmpty {
            out += "\nTasks\n"
            for stage in tasks.keys.sorted() {
                let states = TaskState.allCases.map { "\($0.rawValue) \(tasks[stage]?[$0] ?? 0)" }
                out += "  \(stage): \(states.joined(separator: ", "))\n"
            }
        }
        out += "\nJudgments: \(judgments.reduce(0) { $0 + $1.total }) of \(expectedJudgments) expected\n"
        for group in judgments {
            out +=
                "  \(group.model) | \(group.valueSet) | \(group.format.rawValue) | \(group.condition): "
                + "A \(group.a), B \(group.b), invalid \(group.invalid), missing \(group.missing)\n"
        }
        out += "\n"
        if let rankingError {
            out += "Rankings: not available yet (\(rankingError))\n"
        } else if !rankings.isEmpty {
            out += "Current rankings (no bootstrap)\n"
            for ranking in rankings {
                let order = ranking.values.map { "\($0.value) \(RankingReport.format($0.score))" }
                out +=
                    "  \(ranking.model) | \(ranking.valueSet) | \(ranking.format.rawValue) | \(ranking.condition) "
                    + "(n = \(ranking.n)): \(order.joined(separator: " > "))\n"
            }
        }
        return out
    }
}

extension ResultStore {
    struct StatusSnapshot {
        var sweepID: String?
        var calls: [SweepStatus.CallGroup] = []
        var outlinesGenerated = 0
        var outlinesKept = 0
        var imported = 0
        var keptByValueSet: [String: Int] = [:]
        var judgments: [SweepStatus.JudgmentGroup] = []
    }

    /// Everything `SweepStatus` reads, in one read transaction.
    func statusSnapshot() throws -> StatusSnapshot {
        try database.read { db in
            var snapshot = StatusSnapshot()
            snapshot.sweepID = try String.fetchOne(db, sql: "SELECT id FROM sweep LIMIT 1")
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT role, model, SUM(status = 'ok') AS ok, SUM(status != 'ok') AS failed,
                        SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, SUM(cost_usd) AS cost
                    FROM call GROUP BY role, model ORDER BY role, model
                    """)
            {
                snapshot.calls.append(
                    SweepStatus.CallGroup(
                        role: row["role"], model: row["model"], ok: row["ok"], failed: row["failed"],
                        inputTokens: row["input_tokens"], outputTokens: row["output_tokens"], costUSD: row["cost"]))
            }
            snapshot.outlinesGenerated = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outline") ?? 0
            snapshot.outlinesKept = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outline WHERE kept = 1") ?? 0
            snapshot.imported =
                try Int.fetchOne(
                    db, sql: "SELECT COUNT(*) FROM scenario WHERE outline_id = ?",
                    arguments: [Scenario.importedOutlineID])
                ?? 0
            for row in try Row.fetchAll(
                db, sql: "SELECT value_set, COUNT(*) AS n FROM scenario WHERE status = 'kept' GROUP BY value_set")
            {
                snapshot.keptByValueSet[row["value_set"]] = row["n"]
            }
            var groups: [GroupKey: SweepStatus.JudgmentGroup] = [:]
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT model, value_set, format, condition, choice, COUNT(*) AS n FROM judgment
                    GROUP BY model, value_set, format, condition, choice
                    """)
            {
                let format = EvaluationFormat(rawValue: row["format"]) ?? .mcq
                let key = GroupKey(
                    model: row["model"], valueSet: row["value_set"], format: format, condition: row["condition"])
                var group =
                    groups[key]
                    ?? SweepStatus.JudgmentGroup(
                        model: key.model, valueSet: key.valueSet, format: format, condition: key.condition)
                let n: Int = row["n"]
                switch Choice(rawValue: row["choice"]) ?? .missing {
                case .a: group.a += n
                case .b: group.b += n
                case .invalid: group.invalid += n
                case .missing: group.missing += n
                }
                groups[key] = group
            }
            snapshot.judgments = groups.sorted { $0.key < $1.key }.map(\.value)
            return snapshot
        }
    }
}
