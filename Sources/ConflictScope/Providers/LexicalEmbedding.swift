/// The built-in embedding used for deduplication when no embedder is configured: a hashed bag of
/// lower-cased words (and word pairs) in 512 dimensions, L2-normalised, so cosine similarity is a dot
/// product. It catches near-copies of an outline, which is what deduplication is for.
public enum LexicalEmbedding {
    public static let dimensions = 512

    public static func embed(_ text: String) -> [Double] {
        var vector = Array(repeating: 0.0, count: dimensions)
        let words = tokens(text)
        for (index, word) in words.enumerated() {
            vector[Int(StableHash.fnv64(word) % UInt64(dimensions))] += 1
            if index > 0 {
                vector[Int(StableHash.fnv64(words[index - 1] + " " + word) % UInt64(dimensions))] += 0.5
            }
        }
        let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? vector.map { $0 / norm } : vector
    }

    public static func cosine(_ a: [Double], _ b: [Double]) -> Double {
        let dot = zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
        let norms = (a.reduce(0) { $0 + $1 * $1 } * b.reduce(0) { $0 + $1 * $1 }).squareRoot()
        return norms > 0 ? dot / norms : 0
    }

    /// Lower-cased runs of letters and digits.
    public static func tokens(_ text: String) -> [String] {
        text.lowercased().split { !($0.isLetter || $0.isNumber) }.map(String.init)
    }
}
