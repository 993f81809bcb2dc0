import Foundation
import GRDB

/// What makes a sweep the sweep it is: its name and seed, the protocol's prompt versions, which model does
/// each role, and for every model its provider kind, endpoint and model id. One store holds one sweep: a
/// config may add targets, conditions, formats or value sets to it, and change anything outside the identity
/// (budget, analysis, limits, prices, timeouts), but nothing else.
public struct SweepIdentity: Codable, Sendable, Equatable {
    public var name: String
    public var seed: UInt64
    /// `name@version` of every prompt of the protocol.
    public var prompts: [String]
    /// Role name -> the config's model name.
    public var roles: [String: String]
    /// Model name (of every role and target) -> "kind endpoint model-id".
    public var models: [String: String]

    public init(config: SweepConfig) {
        name = config.name
        seed = config.seed
        prompts = PromptName.allCases.map { PromptLibrary.template($0).id }.sorted()
        let roles = config.roles
        var assigned = [
            "generator": roles.generator.model, "filter_judge": roles.filterJudge.model, "user": roles.user.model,
            "judge": roles.judge.model,
        ]
        assigned["embedder"] = roles.embedder?.model
        self.roles = assigned
        var models: [String: String] = [:]
        for name in Set(assigned.values).union(config.targets) {
            guard let model = config.models[name], let provider = config.providers[model.provider] else { continue }
            models[name] = "\(provider.kind.rawValue) \(provider.baseURL ?? "-") \(model.modelID)"
        }
        self.models = models
    }

    /// Why `config` is another sweep than this one, or nil when it is this sweep, possibly extended.
    public func difference(to config: SweepIdentity) -> String? {
        if name != config.name { return "the sweep's name is \"\(name)\", the config's \"\(config.name)\"" }
        if seed != config.seed { return "the sweep's seed is \(seed), the config's \(config.seed)" }
        if prompts != config.prompts {
            let changed = Set(prompts).symmetricDifference(config.prompts).sorted().joined(separator: ", ")
            return "the protocol's prompts differ (\(changed))"
        }
        for role in Set(roles.keys).union(config.roles.keys).sorted() where roles[role] != config.roles[role] {
            return "role \(role) is done by \(roles[role] ?? "no model") in the store, "
                + "by \(config.roles[role] ?? "no model") in the config"
        }
        for (model, recorded) in models.sorted(by: { $0.key < $1.key }) {
            guard let now = config.models[model] else {
                return "model \(model) is in the store but not among the config's targets"
            }
            if now != recorded { return "model \(model) is \"\(recorded)\" in the store, \"\(now)\" in the config" }
        }
        return nil
    }
}

/// A config that describes another sweep than the one its store holds.
public struct SweepMismatch: Error, CustomStringConvertible {
    public var store: String
    public var difference: String
    public var description: String {
        "the store \(store) holds another sweep: \(difference) (use another store, or the sweep's own config)"
    }
}

extension ResultStore {
    /// Binds the store to `config`'s sweep and returns the sweep's id: on first use the identity is
    /// recorded; later it must match, and a config that extends the sweep records the extension.
    public func bindSweep(_ config: SweepConfig) throws -> String {
        let identity = SweepIdentity(config: config)
        return try database.write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT id, name, seed, identity FROM sweep LIMIT 1") else {
                let id = UUID().uuidString.lowercased()
                try db.execute(
                    sql: "INSERT INTO sweep (id, name, seed, created_at, identity) VALUES (?, ?, ?, ?, ?)",
                    arguments: [
                        id, config.name, Int64(bitPattern: config.seed),
                        ISO8601DateFormatter().string(from: Date()), Self.encode(identity),
                    ])
                return id
            }
            let id: String = row["id"]
            if let text: String = row["identity"] {
                try Self.check(recorded: text, against: identity, at: config.storePath)
            } else {
                // A store from before identities: its name and seed still have to match.
                let name: String = row["name"]
                let seed: Int64 = row["seed"]
                if name != config.name || UInt64(bitPattern: seed) != config.seed {
                    throw SweepMismatch(
                        store: config.storePath,
                        difference: "the sweep is \"\(name)\" with seed \(UInt64(bitPattern: seed)), the config's "
                            + "\"\(config.name)\" with seed \(config.seed)")
                }
            }
            try db.execute(
                sql: "UPDATE sweep SET identity = ? WHERE id = ?", arguments: [Self.encode(identity), id])
            return id
        }
    }

    /// The id of the sweep the store holds, or nil before its first run.
    /// Records where the sweep's last run ran (its coordinator does, at its start).
    public func setMode(_ mode: SweepMode) throws {
        try database.write { db in try db.execute(sql: "UPDATE sweep SET mode = ?", arguments: [mode.rawValue]) }
    }

    /// Where the sweep's last run ran; nil before any run (or for a store of an older version).
    public func mode() throws -> SweepMode? {
        try database.read { db in
            try String.fetchOne(db, sql: "SELECT mode FROM sweep LIMIT 1").flatMap(SweepMode.init(rawValue:))
        }
    }

    public func sweepID() throws -> String? {
        try database.read { db in try String.fetchOne(db, sql: "SELECT id FROM sweep LIMIT 1") }
    }

    /// Checks, without writing, that `config` describes the sweep in the store (if there is one yet).
    public func checkSweep(_ config: SweepConfig) throws {
        let text = try database.read { db in try String.fetchOne(db, sql: "SELECT identity FROM sweep LIMIT 1") }
        guard let text else { return }
        try Self.check(recorded: text, against: SweepIdentity(config: config), at: config.storePath)
    }

    private static func check(recorded text: String, against identity: SweepIdentity, at path: String) throws {
        guard let recorded = try? JSONDecoder().decode(SweepIdentity.self, from: Data(text.utf8)) else {
            throw SweepMismatch(store: path, difference: "its recorded identity cannot be read")
        }
        if let difference = recorded.difference(to: identity) {
            throw SweepMismatch(store: path, difference: difference)
        }
    }

    private static func encode(_ identity: SweepIdentity) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(identity)) ?? Data(), as: UTF8.self)
    }
}

/// Where a sweep runs: the roles in this process (`run`), or the cluster's processes over RabbitMQ and Redis.
public enum SweepMode: String, Sendable {
    case embedded
    case cluster
}
