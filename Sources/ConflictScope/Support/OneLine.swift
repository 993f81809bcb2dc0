extension String {
    /// The text with every line break written as an escape (`\n`, `\r`, `\u{2028}`, ...), so an error
    /// message quoting a user's or a provider's text stays one line.
    public var escapingLineBreaks: String {
        guard unicodeScalars.contains(where: Self.isLineBreak) else { return self }
        var result = ""
        for scalar in unicodeScalars {
            switch scalar {
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case _ where Self.isLineBreak(scalar): result += "\\u{\(String(scalar.value, radix: 16))}"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    private static func isLineBreak(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029: true
        default: false
        }
    }
}
