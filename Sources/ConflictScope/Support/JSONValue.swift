/// A JSON document with object keys kept in the order they were written, so machine-readable output
/// has exactly the documented shape (Foundation's encoder does not keep key order on Linux).
public indirect enum JSONValue: Equatable, Sendable {
    case object([(String, JSONValue)])
    case array([JSONValue])
    case string(String)
    case number(Double)
    case int(Int)
    case bool(Bool)
    case null
    /// JSON serialized elsewhere (another process's output), written as it is.
    case serialized(String)

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool { lhs.serialized() == rhs.serialized() }

    /// Compact text; non-finite numbers become null.
    public func serialized() -> String {
        var out = ""
        write(to: &out)
        return out
    }

    private func write(to out: inout String) {
        switch self {
        case .object(let fields):
            out += "{"
            for (index, (key, value)) in fields.enumerated() {
                if index > 0 { out += "," }
                Self.writeString(key, to: &out)
                out += ":"
                value.write(to: &out)
            }
            out += "}"
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .string(let text): Self.writeString(text, to: &out)
        case .number(let value): out += value.isFinite ? "\(value)" : "null"
        case .int(let value): out += "\(value)"
        case .bool(let value): out += value ? "true" : "false"
        case .null: out += "null"
        case .serialized(let text): out += text
        }
    }

    private static func writeString(_ text: String, to out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

extension JSONValue {
    /// `.number` or `.null` for an optional.
    public static func number(_ value: Double?) -> JSONValue { value.map { .number($0) } ?? .null }
    public static func string(_ value: String?) -> JSONValue { value.map { .string($0) } ?? .null }
}

/// Types with a documented JSON shape.
public protocol JSONRepresentable {
    var json: JSONValue { get }
}
