import ConflictScope
import Foundation
import Testing

@Suite("Line reader")
struct LineReaderTests {
    @Test(arguments: [1, 3, 7, 64, 1 << 20])
    func linesSurviveChunkBoundaries(chunkSize: Int) throws {
        let text = "first line\r\nsecond\n\nfourth is a little longer than the others\nno newline at the end"
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lines-\(UUID().uuidString)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        var lines: [(Int, String)] = []
        try LineReader.forEachBatch(path: path, chunkSize: chunkSize) { batch in
            for (offset, line) in batch.lines.enumerated() {
                lines.append((batch.firstLineNumber + offset, String(decoding: line, as: UTF8.self)))
            }
        }
        #expect(lines.map(\.0) == [1, 2, 3, 4, 5])
        #expect(
            lines.map(\.1) == [
                "first line", "second", "", "fourth is a little longer than the others", "no newline at the end",
            ])
    }
}
