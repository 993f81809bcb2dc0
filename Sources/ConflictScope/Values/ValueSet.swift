import Foundation

/// A named set of values whose pairwise conflicts a sweep studies, with the rule that says which
/// pairs of its values are compared and which value of each pair is value1.
public struct ValueSet: Sendable, Equatable {
    public struct Value: Sendable, Equatable {
        public var name: String
        public var definition: String

        public init(name: String, definition: String) {
            self.name = name
            self.definition = definition
        }
    }

    /// A named subset of the set's values (such as the paper's personal and protective values).
    public struct Group: Sendable, Equatable {
        public var name: String
        public var values: [String]

        public init(name: String, values: [String]) {
            self.name = name
            self.values = values
        }
    }

    /// Which pairs of values a sweep compares.
    public enum PairRule: Sendable, Equatable {
        /// Every unordered pair; value1 is the alphabetically first name.
        case all
        /// Every value of group `first` against every value of group `second`, the `first` group's
        /// value as value1; no pair within a group.
        case cross(first: String, second: String)
    }

    public var name: String
    /// In the set's own order.
    public var values: [Value]
    /// May be empty; a value is in at most one group.
    public var groups: [Group]
    public var pairRule: PairRule

    public init(name: String, values: [Value], groups: [Group] = [], pairRule: PairRule = .all) {
        self.name = name
        self.values = values
        self.groups = groups
        self.pairRule = pairRule
    }

    public var valueNames: [String] { values.map(\.name) }

    public func definition(of value: String) -> String? { values.first { $0.name == value }?.definition }

    /// The group holding `value`, if any.
    public func group(of value: String) -> String? { groups.first { $0.values.contains(value) }?.name }

    /// The compared pairs as (value1, value2). `.all`: every unordered pair with the alphabetically
    /// first name as value1, sorted by (value1, value2). `.cross`: the first group's values in their
    /// order, each against the second group's values in their order.
    public var pairs: [(String, String)] {
        switch pairRule {
        case .all:
            let names = valueNames.sorted()
            var result: [(String, String)] = []
            for i in names.indices {
                for j in names.indices where j > i { result.append((names[i], names[j])) }
            }
            return result
        case .cross(let first, let second):
            guard let firstGroup = groups.first(where: { $0.name == first }),
                let secondGroup = groups.first(where: { $0.name == second })
            else { return [] }
            return firstGroup.values.flatMap { value1 in secondGroup.values.map { (value1, $0) } }
        }
    }

    /// The built-in sets: `hhh`, `personal_protective` and `model_spec`.
    public static let builtInNames = ["hhh", "personal_protective", "model_spec"]

    public static func builtIn(_ name: String) throws -> ValueSet {
        guard builtInNames.contains(name),
            let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Resources/value_sets")
        else {
            throw ValueSetError("no built-in value set \"\(name)\" (built in: \(builtInNames.joined(separator: ", ")))")
        }
        return try parse(Data(contentsOf: url), source: "built-in value set \(name)", name: name)
    }

    /// Reads either our format or the paper repository's `{"value": "definition", ...}` (whose keys
    /// keep their order in the file; every pair is compared). Ours:
    ///
    ///     {"name": "...", "description": "...",
    ///      "values": [{"name": "...", "definition": "..."}, ...],
    ///      "groups": {"GROUP": ["value", ...], ...},          // optional; kept in name order
    ///      "pairs": "all" | {"cross": ["GROUP1", "GROUP2"]}}  // optional; default "all"
    ///
    /// Other keys (`name`, `description`, per-value extras) are ignored.
    public static func parse(_ data: Data, source: String, name: String) throws -> ValueSet {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ValueSetError("\(source): not a JSON object")
        }
        var values: [Value] = []
        var groups: [Group] = []
        var rule = PairRule.all
        if let entry = object["values"] {
            guard let list = entry as? [[String: Any]] else {
                throw ValueSetError("\(source): \"values\" must be a list of {\"name\", \"definition\"} objects")
            }
            for (index, entry) in list.enumerated() {
                guard let value = entry["name"] as? String, !value.isEmpty,
                    let definition = entry["definition"] as? String, !definition.isEmpty
                else { throw ValueSetError("\(source): values[\(index)] needs a non-empty name and definition") }
                values.append(Value(name: value, definition: definition))
            }
            if let entry = object["groups"] {
                guard let table = entry as? [String: Any] else {
                    throw ValueSetError("\(source): \"groups\" must be an object {\"GROUP\": [\"value\", ...]}")
                }
                for groupName in table.keys.sorted() {
                    guard let members = table[groupName] as? [String] else {
                        throw ValueSetError("\(source): group \"\(groupName)\" must be a list of value names")
                    }
                    groups.append(Group(name: groupName, values: members))
                }
            }
            if let entry = object["pairs"] {
                rule = try pairRule(fromJSON: entry, source: source)
            }
        } else {
            // JSONSerialization loses key order; recover it from the text so the set keeps its order.
            for key in orderedKeys(in: data) {
                guard let definition = object[key] as? String, !definition.isEmpty else {
                    throw ValueSetError("\(source): the definition of \"\(key)\" must be a non-empty string")
                }
                values.append(Value(name: key, definition: definition))
            }
        }
        return try validated(ValueSet(name: name, values: values, groups: groups, pairRule: rule), source: source)
    }

    private static func pairRuleSpelling() -> String { #""all" or {"cross": ["GROUP1", "GROUP2"]}"# }

    private static func pairRule(fromJSON entry: Any, source: String) throws -> PairRule {
        if let text = entry as? String, text == "all" { return .all }
        if let table = entry as? [String: Any], table.count == 1, let names = table["cross"] as? [String],
            names.count == 2
        {
            return .cross(first: names[0], second: names[1])
        }
        throw ValueSetError("\(source): \"pairs\" must be \(pairRuleSpelling())")
    }

    /// Checks names, groups and the pair rule; errors are one line starting with `source`.
    public static func validated(_ set: ValueSet, source: String) throws -> ValueSet {
        guard set.values.count >= 2 else { throw ValueSetError("\(source): a value set needs at least two values") }
        var seen = Set<String>()
        for value in set.values {
            guard isName(value.name) else {
                throw ValueSetError("\(source): value name \"\(value.name)\" must be letters, digits, _ or -")
            }
            guard seen.insert(value.name).inserted else {
                throw ValueSetError("\(source): value \"\(value.name)\" appears twice")
            }
        }
        var groupOf: [String: String] = [:]
        var groupNames = Set<String>()
        for group in set.groups {
            guard isName(group.name) else {
                throw ValueSetError("\(source): group name \"\(group.name)\" must be letters, digits, _ or -")
            }
            guard groupNames.insert(group.name).inserted else {
                throw ValueSetError("\(source): group \"\(group.name)\" is declared twice")
            }
            guard !group.values.isEmpty else { throw ValueSetError("\(source): group \"\(group.name)\" is empty") }
            for value in group.values {
                guard seen.contains(value) else {
                    throw ValueSetError(
                        "\(source): group \"\(group.name)\" names \"\(value)\", which is not a value of the set "
                            + "(values: \(set.valueNames.joined(separator: ", ")))")
                }
                if let other = groupOf[value] {
                    throw ValueSetError(
                        other == group.name
                            ? "\(source): value \"\(value)\" appears twice in group \"\(group.name)\""
                            : "\(source): value \"\(value)\" is in two groups, \"\(other)\" and \"\(group.name)\"")
                }
                groupOf[value] = group.name
            }
        }
        if case .cross(let first, let second) = set.pairRule {
            guard first != second else {
                throw ValueSetError("\(source): the cross pair rule needs two different groups, not \"\(first)\" twice")
            }
            for groupName in [first, second] where !groupNames.contains(groupName) {
                let declared = set.groups.isEmpty ? "none" : set.groups.map(\.name).joined(separator: ", ")
                throw ValueSetError(
                    "\(source): the cross pair rule names group \"\(groupName)\", which is not declared "
                        + "(groups: \(declared))")
            }
            if let loose = set.values.first(where: { groupOf[$0.name] != first && groupOf[$0.name] != second }) {
                throw ValueSetError(
                    "\(source): value \"\(loose.name)\" is in neither \"\(first)\" nor \"\(second)\", "
                        + "so the cross pair rule puts it in no pair")
            }
        }
        return set
    }

    private static func isName(_ text: String) -> Bool {
        text.range(of: #"^[A-Za-z][A-Za-z0-9_\-]*$"#, options: .regularExpression) != nil
    }

    /// Top-level keys of a flat JSON object in file order.
    static func orderedKeys(in data: Data) -> [String] {
        var keys: [String] = []
        data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            try? FlatJSON.parseFields(bytes) { key, _ in keys.append(String(decoding: key, as: UTF8.self)) }
        }
        return keys
    }
}

public struct ValueSetError: Error, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
