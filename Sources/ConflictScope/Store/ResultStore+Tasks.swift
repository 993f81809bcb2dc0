import Foundation
import GRDB

/// The task table of cluster runs: every published task with its state, so the coordinator can
/// decide completion from the store and a resumed sweep republishes exactly the unfinished tasks.
extension ResultStore {
    /// The coordinator's tasks of one run, registered under `registration` (a fresh id per run):
    /// every task not done becomes pending again (a resumed sweep republishes stopped and dead ones).
    /// A large run registers in several parts (no broker message may exceed its size limit); the registration
    /// counts as stored once its `last` part is.
    public func registerTasks(_ tasks: [PipelineTask], registration: String, last: Bool = true) throws {
        try database.write { db in
            for task in tasks { try Self.register(task, reopen: true, in: db) }
            guard last else { return }
            try db.execute(
                sql: "INSERT OR IGNORE INTO registration (id, tasks) VALUES (?, ?)",
                arguments: [registration, tasks.count])
        }
    }

    /// Whether the aggregator has stored the registration (the coordinator waits for it before it
    /// judges completion).
    public func hasRegistration(_ id: String) throws -> Bool {
        try database.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM registration WHERE id = ?)", arguments: [id])
                ?? false
        }
    }

    /// Inserts a task as pending. A known task keeps its state, unless `reopen` and it is not done;
    /// its body is filled in either way (its outcome may have arrived first, from a redelivery).
    static func register(_ task: PipelineTask, reopen: Bool, in db: Database) throws {
        let body = String(decoding: try JSONEncoder().encode(task), as: UTF8.self)
        try db.execute(
            sql: """
                INSERT INTO task (id, stage, state, body) VALUES (?, ?, 'pending', ?)
                ON CONFLICT(id) DO UPDATE SET body = excluded.body,
                    state = CASE WHEN ? AND task.state != 'done' THEN 'pending' ELSE task.state END
                """,
            arguments: [task.id, task.stage.rawValue, body, reopen])
    }

    /// Stores a finished task's rows, its outcome and its follow-ups (as pending) in one transaction.
    /// A result for a task already done changes nothing: its rows are not rewritten (a duplicate that ran on
    /// another worker may carry other answers than those its follow-ups were built from).
    public func apply(_ batch: ResultBatch, outcome: TaskOutcome) throws {
        try database.write { db in
            let state = try String.fetchOne(db, sql: "SELECT state FROM task WHERE id = ?", arguments: [outcome.taskID])
            guard state != TaskState.done.rawValue else { return }
            for call in batch.calls { try Self.insert(call, in: db) }
            for outline in batch.outlines { try Self.upsert(outline, in: db) }
            for scenario in batch.scenarios { try Self.upsert(scenario, in: db) }
            for prompt in batch.userPrompts {
                try Self.upsertUserPrompt(scenarioID: prompt.scenarioID, text: prompt.text, in: db)
            }
            for judgment in batch.judgments { try Self.upsert(judgment, in: db) }
            for task in outcome.followUps { try Self.register(task, reopen: false, in: db) }
            try db.execute(
                sql: """
                    INSERT INTO task (id, stage, state, body) VALUES (?, ?, ?, '')
                    ON CONFLICT(id) DO UPDATE SET state = excluded.state WHERE task.state != 'done'
                    """,
                arguments: [outcome.taskID, String(outcome.taskID.prefix { $0 != "/" }), outcome.state.rawValue])
        }
    }

    /// A task's state, or nil for a task the table does not have.
    public func taskState(_ id: String) throws -> TaskState? {
        try database.read { db in
            try String.fetchOne(db, sql: "SELECT state FROM task WHERE id = ?", arguments: [id]).flatMap(TaskState.init)
        }
    }

    /// Tasks not done (pending, stopped by the budget, or dead-lettered), in id order.
    public func unfinishedTasks() throws -> [PipelineTask] {
        try database.read { db in
            try String.fetchAll(db, sql: "SELECT body FROM task WHERE state != 'done' AND body != '' ORDER BY id")
        }.map { try JSONDecoder().decode(PipelineTask.self, from: Data($0.utf8)) }
    }

    /// The ids of every task ever registered.
    public func registeredTaskIDs() throws -> Set<String> {
        Set(try database.read { db in try String.fetchAll(db, sql: "SELECT id FROM task") })
    }

    /// Task counts by stage and state.
    public func taskCounts() throws -> [String: [TaskState: Int]] {
        try database.read { db in
            var counts: [String: [TaskState: Int]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT stage, state, COUNT(*) AS n FROM task GROUP BY stage, state") {
                guard let state = TaskState(rawValue: row["state"]) else { continue }
                counts[row["stage"], default: [:]][state] = row["n"]
            }
            return counts
        }
    }

    /// Every judgment by id (what the aggregator's live rankings start from on a resumed sweep).
    public func judgmentsByID() throws -> [(id: String, judgment: Judgment)] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM judgment ORDER BY id").map {
                (id: $0["id"], judgment: Self.judgment($0))
            }
        }
    }

    /// Successful responses by request key, in key order, from `after` (exclusive), at most `limit`
    /// (the coordinator copies them into the cluster's response cache).
    public func successfulResponses(after key: String, limit: Int) throws -> [(key: String, answer: ModelAnswer)] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT key, response, truncated FROM call WHERE status = 'ok' AND key > ? ORDER BY key LIMIT ?
                    """,
                arguments: [key, limit]
            ).map { (key: $0["key"], answer: ModelAnswer(text: $0["response"] ?? "", truncated: $0["truncated"])) }
        }
    }
}
