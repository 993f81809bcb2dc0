import Foundation

/// Reads the reference fixtures copied from shared/fixtures into the test bundle.
enum Fixture {
    static func load(_ name: String) throws -> [String: Any] {
        guard let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures/bt") else {
            throw FixtureError(message: "fixture \(name).json is missing from the test bundle")
        }
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url))
        guard let dictionary = object as? [String: Any] else {
            throw FixtureError(message: "fixture \(name).json is not a JSON object")
        }
        return dictionary
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

extension Dictionary where Key == String, Value == Any {
    func object(_ key: String) throws -> [String: Any] {
        guard let value = self[key] as? [String: Any] else { throw FixtureError(message: "no object at \(key)") }
        return value
    }

    func doubles(_ key: String) throws -> [Double] {
        guard let value = self[key] as? [NSNumber] else { throw FixtureError(message: "no number list at \(key)") }
        return value.map(\.doubleValue)
    }

    func matrix(_ key: String) throws -> [[Double]] {
        guard let value = self[key] as? [[NSNumber]] else { throw FixtureError(message: "no matrix at \(key)") }
        return value.map { $0.map(\.doubleValue) }
    }

    func int(_ key: String) throws -> Int {
        guard let value = self[key] as? NSNumber else { throw FixtureError(message: "no number at \(key)") }
        return value.intValue
    }

    /// `[[winner, loser], ...]` lists as choix takes them.
    func comparisons(_ key: String) throws -> [(winner: Int, loser: Int)] {
        guard let value = self[key] as? [[NSNumber]] else { throw FixtureError(message: "no pairs at \(key)") }
        return value.map { (winner: $0[0].intValue, loser: $0[1].intValue) }
    }
}

func maxAbsDifference(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count, "lengths differ: \(a.count) vs \(b.count)")
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
