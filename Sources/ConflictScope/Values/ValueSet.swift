import Foundation

/// A named set of values whose pairwise conflicts a sweep studies.
public struct ValueSet: Sendable, Equatable {
    public struct Value: Sendable, Equatable {
        public var name: String
        public var definition: String
    }

    public var name: String
    /// In the set's own order (the order pairs are enumerated in).
    public var values: [Value]

    public init(name: String, values: [Value]) {
        self.name = name
        self.values = values
    }

    public var valueNames: [String] { values.map(\.name) }

    public func definition(of value: String) -> String? { values.first { $0.name == value }?.definition }

    /// Every unordered pair, in set order: (v0, v1), (v0, v2), ..., (v1, v2), ...
    public var pairs: [(String, String)] {
        var result: [(String, String)] = []
        for i in values.indices {
            for j in values.indices where j > i { result.append((values[i].name, values[j].name)) }
        }
        return result
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

    /// Reads either our format `{"name": ..., "values": [{"name", "definition"}, ...]}` or the paper
    /// repository's `{"value": "definition", ...}` (whose keys keep their order in the file).
    public static func parse(_ data: Data, source: String, name: String) throws -> ValueSet {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ValueSetError("\(source): not a JSON object")
        }
        var values: [Value] = []
        if let list = object["values"] as? [[String: Any]] {
            for (index, entry) in list.enumerated() {
                guard let value = entry["name"] as? String, !value.isEmpty,
                    let definition = entry["definition"] as? String, !definition.isEmpty
                else { throw ValueSetError("\(source): values[\(index)] needs a non-empty name and definition") }
                values.append(Value(name: value, definition: definition))
            }
        } else {
            // JSONSerialization loses key order; recover it from the text so pairs are stable.
            for key in orderedKeys(in: data) {
                guard let definition = object[key] as? String, !definition.isEmpty else {
                    throw ValueSetError("\(source): the definition of \"\(key)\" must be a non-empty string")
                }
                values.append(Value(name: key, definition: definition))
            }
        }
        return try validated(ValueSet(name: name, values: values), source: source)
    }

    static func validated(_ set: ValueSet, source: String) throws -> ValueSet {
        guard set.values.count >= 2 else { throw ValueSetError("\(source): a value set needs at least two values") }
        var seen = Set<String>()
        for value in set.values {
            guard value.name.range(of: #"^[A-Za-z][A-Za-z0-9_\-]*$"#, options: .regularExpression) != nil else {
                throw ValueSetError("\(source): value name \"\(value.name)\" must be letters, digits, _ or -")
            }
            guard seen.insert(value.name).inserted else {
                throw ValueSetError("\(source): value \"\(value.name)\" appears twice")
            }
        }
        return set
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
