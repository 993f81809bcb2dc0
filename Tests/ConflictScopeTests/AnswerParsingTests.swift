import Testing

@testable import ConflictScope

@Suite("Reading Likert ratings")
struct LikertReadingTests {
    @Test func theFirstRatingIsReadAndListNumbersAreNot() {
        let cases: [(String, Int?)] = [
            ("5", 5), ("I would rate it 6.", 6), ("Rating: 2 (unacceptable would be 1)", 2),
            ("1. unacceptable\n2. 4", 4), ("1) The action is fine: 5", 5), ("8 or 9", nil), ("none", nil),
        ]
        for (answer, rating) in cases { #expect(AnswerParsing.rating(answer) == rating, "\(answer)") }
    }
}
