import Foundation
import TOMLKit

/// A problem in a config file, with the line where we can find it.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public let file: String
    public let line: Int?
    public let message: String

    /// One line, whatever the message quotes (a value name with a line break, a parser's message).
    public var description: String {
        if let line { return "\(file):\(line): \(message)".escapingLineBreaks }
        return "\(file): \(message)".escapingLineBreaks
    }
}

/// Reads one TOML table with typed accessors, remembering which keys were read so that any key
/// left over can be reported as unknown. Errors name the dotted key and, where the text shows
/// it, the line.
final class TOMLFields {
    let table: TOMLTable
    /// Dotted path of this table, e.g. "models.cautious".
    let path: String
    let source: TOMLSource
    private var read = Set<String>()

    init(_ table: TOMLTable, path: String, source: TOMLSource) {
        self.table = table
        self.path = path
        self.source = source
    }

    func key(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    func error(_ name: String?, _ message: String) -> ConfigError {
        let dotted = name.map(key) ?? path
        return ConfigError(file: source.file, line: source.line(of: dotted), message: message)
    }

    private func value(_ name: String) -> TOMLValueConvertible? {
        read.insert(name)
        return table[name]
    }

    func has(_ name: String) -> Bool { table.contains(key: name) }

    func string(_ name: String) throws -> String? {
        guard let value = value(name) else { return nil }
        guard let text = value.string else { throw error(name, "\(key(name)) must be a string") }
        return text
    }

    func bool(_ name: String) throws -> Bool? {
        guard let value = value(name) else { return nil }
        guard let flag = value.bool else { throw error(name, "\(key(name)) must be true or false") }
        return flag
    }

    func requiredString(_ name: String) throws -> String {
        guard let text = try string(name) else { throw error(nil, "missing key \(key(name))") }
        guard !text.isEmpty else { throw error(name, "\(key(name)) must not be empty") }
        return text
    }

    func int(_ name: String, range: ClosedRange<Int>) throws -> Int? {
        guard let value = value(name) else { return nil }
        guard let number = value.int else { throw error(name, "\(key(name)) must be an integer") }
        guard range.contains(number) else {
            throw error(name, "\(key(name)) = \(number) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }

    func double(_ name: String, range: ClosedRange<Double>) throws -> Double? {
        guard let value = value(name) else { return nil }
        guard let number = value.double ?? value.int.map(Double.init) else {
            throw error(name, "\(key(name)) must be a number")
        }
        guard range.contains(number), number.isFinite else {
            throw error(name, "\(key(name)) = \(number) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
        return number
    }

    func strings(_ name: String) throws -> [String]? {
        guard let value = value(name) else { return nil }
        guard let array = value.array else { throw error(name, "\(key(name)) must be a list of strings") }
        return try array.map { element in
            guard let text = element.string else { throw error(name, "\(key(name)) must be a list of strings") }
            return text
        }
    }

    func table(_ name: String) throws -> TOMLFields? {
        guard let value = value(name) else { return nil }
        guard let table = value.table else { throw error(name, "\(key(name)) must be a table") }
        return TOMLFields(table, path: key(name), source: source)
    }

    /// Sub-tables keyed by name, in name order (TOMLKit keeps tables sorted, not in file order).
    func tables() throws -> [(name: String, fields: TOMLFields)] {
        try table.keys.map { name in
            guard let sub = try table(name) else { preconditionFailure("listed key vanished") }
            return (name, sub)
        }
    }

    /// Reports the first key that nothing read.
    func rejectUnknownKeys() throws {
        if let unknown = table.keys.first(where: { !read.contains($0) }) {
            throw error(unknown, "unknown key \(key(unknown))")
        }
    }
}

/// The config text, for locating keys by line (TOMLKit reports lines only for syntax errors).
struct TOMLSource {
    let file: String
    let lines: [Substring]

    init(file: String, text: String) {
        self.file = file
        self.lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// Best-effort line of a dotted key: its table header, the key inside it, or the line of the
    /// longest written prefix (a key inside an inline table `a = { b = 1 }` is found at `a`). Nil
    /// when the text does not show it, such as a table that is missing.
    func line(of dottedKey: String) -> Int? {
        let parts = dottedKey.split(separator: ".").map(String.init)
        guard !parts.isEmpty else { return nil }
        var currentTable: [String] = []
        var best: (length: Int, line: Int)? = nil
        for (index, raw) in lines.enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") { continue }
            if line.hasPrefix("["), let close = line.lastIndex(of: "]") {
                // Cut at the closing bracket so a trailing comment is not part of the name.
                let name = line[..<close].trimmingCharacters(in: CharacterSet(charactersIn: "[] "))
                currentTable = name.split(separator: ".").map {
                    $0.trimmingCharacters(in: CharacterSet(charactersIn: "\" ").union(.whitespaces))
                }
                if currentTable == parts { return index + 1 }
                continue
            }
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].split(separator: ".").map {
                $0.trimmingCharacters(in: CharacterSet(charactersIn: "\" ").union(.whitespaces))
            }
            let full = currentTable + key
            if full.count >= parts.count && Array(full.prefix(parts.count)) == parts { return index + 1 }
            if full.count < parts.count && Array(parts.prefix(full.count)) == full && full.count > (best?.length ?? 0) {
                best = (full.count, index + 1)
            }
        }
        return best?.line
    }
}

extension TOMLSource {
    /// The line of the first table header whose name does not start with a key (`[= x]`, `[#`, `[` at
    /// the end of a line), or nil. TOMLKit's parser (toml++) asserts on such a header instead of reporting
    /// it, which ends the process, so these are found first. Values are skipped (strings, and arrays and
    /// inline tables across lines), so only a `[` where a statement starts is looked at.
    static func malformedTableHeaderLine(in text: String) -> Int? {
        let bytes = Array(text.utf8)
        var index = 0
        var line = 1
        /// Open brackets and braces of the value being read (0: between statements).
        var depth = 0
        var atStatementStart = true
        func at(_ offset: Int) -> UInt8? { index + offset < bytes.count ? bytes[index + offset] : nil }
        func isKeyStart(_ byte: UInt8?) -> Bool {
            guard let byte else { return true }  // The end of the text: the parser reports that itself.
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "\""),
                UInt8(ascii: "'"), UInt8(ascii: "]"):
                return true
            default: return false
            }
        }
        func skipBlanks() {
            while let byte = at(0), byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { index += 1 }
        }
        /// Skips a string starting at `index` (on its opening quote), counting its line breaks.
        func skipString() {
            let quote = bytes[index]
            let multiline = at(1) == quote && at(2) == quote
            index += multiline ? 3 : 1
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\\") && quote == UInt8(ascii: "\"") {
                    index += 2
                    continue
                }
                if byte == UInt8(ascii: "\n") {
                    // An unclosed one-line string ends at the line break (the parser reports it).
                    if !multiline { return }
                    line += 1
                }
                if byte == quote && (!multiline || (at(1) == quote && at(2) == quote)) {
                    index += multiline ? 3 : 1
                    // A multi-line string may end with up to two more quotes.
                    while multiline && at(0) == quote { index += 1 }
                    return
                }
                index += 1
            }
        }
        while index < bytes.count {
            if atStatementStart && depth == 0 {
                skipBlanks()
                guard let first = at(0) else { return nil }
                if first == UInt8(ascii: "[") {
                    index += 1
                    skipBlanks()
                    if at(0) == UInt8(ascii: "[") {
                        index += 1
                        skipBlanks()
                    }
                    if !isKeyStart(at(0)) { return line }
                    // The rest of the header line (a name cannot span lines).
                    while let next = at(0), next != UInt8(ascii: "\n") {
                        if next == UInt8(ascii: "\"") || next == UInt8(ascii: "'") { skipString() } else { index += 1 }
                    }
                    continue
                }
                if first != UInt8(ascii: "\n") && first != UInt8(ascii: "\r") && first != UInt8(ascii: "#") {
                    atStatementStart = false
                }
            }
            switch bytes[index] {
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                skipString()
                continue
            case UInt8(ascii: "#"):
                while let next = at(0), next != UInt8(ascii: "\n") { index += 1 }
                continue
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth = max(0, depth - 1)
            case UInt8(ascii: "\n"):
                line += 1
                if depth == 0 { atStatementStart = true }
            default:
                break
            }
            index += 1
        }
        return nil
    }
}
