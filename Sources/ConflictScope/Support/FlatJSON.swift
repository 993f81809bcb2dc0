#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A value of a top-level field in a one-object-per-line JSON file.
public enum FlatJSONValue: Equatable, Sendable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
    /// An array whose elements are all strings.
    case strings([String])
    /// Any other array or object; skipped, but well-formedness is still checked.
    case nested
}

/// A small byte-level reader for lines holding one JSON object with flat fields. Foundation's
/// decoders cost tens of microseconds per line; paper-scale judgment files have ~200k lines.
public struct FlatJSON {
    public struct SyntaxError: Error, Equatable, CustomStringConvertible {
        public let message: String
        public let column: Int
        public var description: String { "\(message) at column \(column)" }
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private var position = 0

    private init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// A field value as `parseFields` hands it over: strings without escapes stay raw bytes (valid only
    /// during the callback) so callers can reuse an existing `String` for repeated values.
    public enum RawValue {
        case text(UnsafeBufferPointer<UInt8>)
        case value(FlatJSONValue)
    }

    /// Parses one object, handing each top-level field's key bytes and value to `field` in order,
    /// with no intermediate dictionary or key strings (the per-line cost matters at paper scale).
    public static func parseFields(
        _ bytes: UnsafeBufferPointer<UInt8>, field: (UnsafeBufferPointer<UInt8>, RawValue) throws -> Void
    ) throws {
        var parser = FlatJSON(bytes)
        parser.skipSpace()
        try parser.expect(UInt8(ascii: "{"), "expected a JSON object")
        parser.skipSpace()
        if parser.peek() == UInt8(ascii: "}") {
            parser.position += 1
        } else {
            while true {
                parser.skipSpace()
                let key = try parser.rawOrDecodedString()
                parser.skipSpace()
                try parser.expect(UInt8(ascii: ":"), "expected ':' after a key")
                parser.skipSpace()
                let value: RawValue
                if parser.peek() == UInt8(ascii: "\"") {
                    switch try parser.rawOrDecodedString() {
                    case .text(let raw): value = .text(raw)
                    case .value(let decoded): value = .value(decoded)
                    }
                } else {
                    value = .value(try parser.value(depth: 0))
                }
                switch key {
                case .text(let raw): try field(raw, value)
                case .value(.string(let decoded)):
                    try Array(decoded.utf8).withUnsafeBufferPointer { try field($0, value) }
                case .value: preconditionFailure("keys are strings")
                }
                parser.skipSpace()
                if parser.peek() == UInt8(ascii: ",") {
                    parser.position += 1
                    continue
                }
                try parser.expect(UInt8(ascii: "}"), "expected ',' or '}'")
                break
            }
        }
        parser.skipSpace()
        if parser.position != bytes.count { throw parser.error("unexpected text after the object") }
    }

    /// Parses one object into a dictionary; a later duplicate of a key replaces the earlier one.
    public static func parseObject(_ bytes: UnsafeBufferPointer<UInt8>) throws -> [String: FlatJSONValue] {
        var fields: [String: FlatJSONValue] = [:]
        try parseFields(bytes) { key, value in
            switch value {
            case .text(let raw):
                fields[String(decoding: key, as: UTF8.self)] = .string(String(decoding: raw, as: UTF8.self))
            case .value(let decoded): fields[String(decoding: key, as: UTF8.self)] = decoded
            }
        }
        return fields
    }

    /// A string's raw bytes when it has no escapes, else the decoded string.
    private mutating func rawOrDecodedString() throws(SyntaxError) -> RawValue {
        guard peek() == UInt8(ascii: "\""), let base = bytes.baseAddress else { throw error("expected a string") }
        let start = position + 1
        // memchr finds the closing quote fast; the text before it is raw when it has no backslash or
        // control character (those take the slow path, which decodes escapes and rejects controls).
        if let quote = memchr(base + start, Int32(UInt8(ascii: "\"")), bytes.count - start) {
            let end = base.distance(to: quote.assumingMemoryBound(to: UInt8.self))
            let raw = UnsafeBufferPointer(rebasing: bytes[start..<end])
            if memchr(base + start, Int32(UInt8(ascii: "\\")), end - start) == nil
                && !raw.contains(where: { $0 < 0x20 })
            {
                position = end + 1
                return .text(raw)
            }
        }
        return .value(.string(try string()))
    }

    private func peek() -> UInt8? { position < bytes.count ? bytes[position] : nil }

    private func error(_ message: String) -> SyntaxError { SyntaxError(message: message, column: position + 1) }

    private mutating func expect(_ byte: UInt8, _ message: String) throws(SyntaxError) {
        guard peek() == byte else { throw error(message) }
        position += 1
    }

    private mutating func skipSpace() {
        while let byte = peek(), byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { position += 1 }
    }

    private mutating func value(depth: Int) throws(SyntaxError) -> FlatJSONValue {
        guard depth < 64 else { throw error("nesting too deep") }
        switch peek() {
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "{"): try skipObject(depth: depth); return .nested
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case .some(let byte) where byte == UInt8(ascii: "-") || (0x30...0x39).contains(byte):
            return .number(try number())
        default: throw error("expected a value")
        }
    }

    private mutating func literal(_ word: String) throws(SyntaxError) {
        for expected in word.utf8 {
            guard peek() == expected else { throw error("expected \(word)") }
            position += 1
        }
    }

    private mutating func number() throws(SyntaxError) -> Double {
        let start = position
        if peek() == UInt8(ascii: "-") { position += 1 }
        var digits = 0
        while let byte = peek(),
            (0x30...0x39).contains(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e")
                || byte == UInt8(ascii: "E") || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-")
        {
            position += 1
            digits += 1
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        guard digits > 0, let value = Double(text) else { throw error("malformed number") }
        return value
    }

    private mutating func array(depth: Int) throws(SyntaxError) -> FlatJSONValue {
        position += 1
        var strings: [String] = []
        var onlyStrings = true
        skipSpace()
        if peek() == UInt8(ascii: "]") {
            position += 1
            return .strings([])
        }
        while true {
            skipSpace()
            let element = try value(depth: depth + 1)
            if case .string(let text) = element { strings.append(text) } else { onlyStrings = false }
            skipSpace()
            if peek() == UInt8(ascii: ",") {
                position += 1
                continue
            }
            try expect(UInt8(ascii: "]"), "expected ',' or ']'")
            return onlyStrings ? .strings(strings) : .nested
        }
    }

    private mutating func skipObject(depth: Int) throws(SyntaxError) {
        position += 1
        skipSpace()
        if peek() == UInt8(ascii: "}") {
            position += 1
            return
        }
        while true {
            skipSpace()
            _ = try string()
            skipSpace()
            try expect(UInt8(ascii: ":"), "expected ':' after a key")
            skipSpace()
            _ = try value(depth: depth + 1)
            skipSpace()
            if peek() == UInt8(ascii: ",") {
                position += 1
                continue
            }
            try expect(UInt8(ascii: "}"), "expected ',' or '}'")
            return
        }
    }

    private mutating func string() throws(SyntaxError) -> String {
        try expect(UInt8(ascii: "\""), "expected a string")
        let start = position
        // Fast path: no escapes.
        while let byte = peek(), byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") {
            guard byte >= 0x20 else { throw error("control character in a string") }
            position += 1
        }
        guard let stop = peek() else { throw error("unterminated string") }
        if stop == UInt8(ascii: "\"") {
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
            position += 1
            return text
        }
        var scalars = Array(bytes[start..<position])
        while true {
            guard let byte = peek() else { throw error("unterminated string") }
            position += 1
            if byte == UInt8(ascii: "\"") { break }
            guard byte >= 0x20 else { throw error("control character in a string") }
            if byte != UInt8(ascii: "\\") {
                scalars.append(byte)
                continue
            }
            guard let escaped = peek() else { throw error("unterminated string") }
            position += 1
            switch escaped {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(escaped)
            case UInt8(ascii: "b"): scalars.append(0x08)
            case UInt8(ascii: "f"): scalars.append(0x0C)
            case UInt8(ascii: "n"): scalars.append(0x0A)
            case UInt8(ascii: "r"): scalars.append(0x0D)
            case UInt8(ascii: "t"): scalars.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800..<0xDC00).contains(code) {
                    guard peek() == UInt8(ascii: "\\") else { throw error("unpaired surrogate") }
                    position += 1
                    try expect(UInt8(ascii: "u"), "unpaired surrogate")
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw error("invalid unicode escape") }
                scalars.append(contentsOf: Array(String(Character(scalar)).utf8))
            default: throw error("invalid escape")
            }
        }
        return String(decoding: scalars, as: UTF8.self)
    }

    private mutating func hex4() throws(SyntaxError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw error("short unicode escape") }
        var code: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt32
            switch byte {
            case 0x30...0x39: digit = UInt32(byte - 0x30)
            case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
            default: throw error("invalid unicode escape")
            }
            code = code << 4 | digit
            position += 1
        }
        return code
    }
}
