import Foundation

/// Reads models' answers tolerantly: JSON objects inside prose or code fences, letters, booleans and
/// ratings in short free-text answers. Every reader returns nil for an answer it cannot use, which the
/// stage re-asks and finally stores as invalid.
enum AnswerParsing {
    /// Decodes the first JSON object in `text` that decodes as `T` (from the outermost braces inward).
    static func decode<T: Decodable>(_ type: T.Type, from text: String) -> T? {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        var starts = text.indices.filter { text[$0] == "{" }
        guard let end = text.lastIndex(of: "}") else { return nil }
        starts = Array(starts.prefix(8))
        for start in starts where start < end {
            if let value = try? decoder.decode(T.self, from: Data(text[start...end].utf8)) { return value }
        }
        return nil
    }

    /// The words of a short answer, lowercased, without punctuation or markdown.
    private static func words(_ text: String) -> [Substring] {
        text.lowercased().split { !$0.isLetter && !$0.isNumber }
    }

    /// "A" or "B" from answers such as `A`, `(b).`, `**A**`, `Answer: B` or `Option A is better`; nil
    /// when the answer names neither or both.
    static func letter(_ text: String) -> String? {
        let tokens = words(text)
        guard let first = tokens.first else { return nil }
        if first == "a" || first == "b" { return first.uppercased() }
        let markers: Set<Substring> = ["answer", "option", "choice", "action", "choose", "select", "pick", "would"]
        for (index, token) in tokens.enumerated().dropLast() where markers.contains(token) {
            let next = tokens[index + 1] == "is" && index + 2 < tokens.count ? tokens[index + 2] : tokens[index + 1]
            if next == "a" || next == "b" { return next.uppercased() }
        }
        // Otherwise the one capital A or B standing alone ("a" alone is usually the article).
        let letters = Set(text.matches(of: /\b([AB])\b/).map { String($0.1) })
        return letters.count == 1 ? letters.first : nil
    }

    /// The first true/false (or yes/no) of a short answer.
    static func booleans(_ text: String) -> [Bool] {
        words(text).compactMap { word in
            switch word {
            case "true", "yes": true
            case "false", "no": false
            default: nil
            }
        }
    }

    static func boolean(_ text: String) -> Bool? { booleans(text).first }

    /// The first whole number 1..7 in the answer, as the paper reads Likert ratings; the numbers of a
    /// numbered list ("1. unacceptable 2. 4") are list markers, not ratings.
    static func rating(_ text: String) -> Int? {
        let unnumbered = text.replacing(/(?m)^\s*\d+[.)]\s+/, with: "")
        for word in words(unnumbered) {
            if let number = Int(word), (1...7).contains(number) { return number }
        }
        return nil
    }

    /// Trimmed non-empty text.
    static func text(_ raw: String) -> String? {
        let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }
}

/// A string field that also accepts a boolean, a number or a nested object from a loose writer (joined as text).
struct LooseText: Decodable {
    var value: String

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            value = text
        } else if let flag = try? container.decode(Bool.self) {
            value = String(flag)
        } else if let number = try? container.decode(Double.self) {
            value = String(number)
        } else if let object = try? container.decode([String: LooseText].self) {
            value = object.keys.sorted().map { "\($0): \(object[$0]!.value)" }.joined(separator: "\n")
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not text")
        }
    }

    /// Trimmed, or nil when empty.
    var trimmed: String? { AnswerParsing.text(value) }
}
