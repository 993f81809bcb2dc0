#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Streams a file line by line in fixed-size chunks, so memory stays flat however long the file is.
public enum LineReader {
    public struct OpenError: Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "cannot read \(path): \(reason)" }
    }

    /// A run of consecutive lines; the buffers are valid only during the callback. Sendable because the
    /// bytes are only read, by any number of threads, until the callback returns.
    public struct Batch: @unchecked Sendable {
        /// Each line's bytes, without the newline or a trailing carriage return.
        public var lines: [UnsafeBufferPointer<UInt8>]
        /// 1-based number of `lines[0]` in the file.
        public var firstLineNumber: Int
    }

    /// Calls `body` with each line's bytes (without the newline or a trailing carriage return) and its
    /// 1-based number. `path` "-" reads standard input.
    public static func forEachLine(
        path: String, _ body: (UnsafeBufferPointer<UInt8>, Int) throws -> Void
    ) throws {
        try forEachBatch(path: path) { batch in
            for (offset, line) in batch.lines.enumerated() { try body(line, batch.firstLineNumber + offset) }
        }
    }

    /// Calls `body` with the file's lines a few megabytes at a time, so a caller can work on a batch's
    /// lines in parallel while memory stays flat however long the file is.
    public static func forEachBatch(path: String, chunkSize: Int = 4 << 20, _ body: (Batch) throws -> Void) throws {
        let file: UnsafeMutablePointer<FILE>
        if path == "-" {
            // A duplicate descriptor, so closing our FILE leaves the process's standard input open.
            guard let input = fdopen(dup(STDIN_FILENO), "rb") else {
                throw OpenError(path: "standard input", reason: String(cString: strerror(errno)))
            }
            file = input
        } else {
            guard let opened = fopen(path, "rb") else {
                throw OpenError(path: path, reason: String(cString: strerror(errno)))
            }
            file = opened
        }
        defer { fclose(file) }

        // `buffer` holds the unfinished last line of the previous chunk followed by the new chunk.
        var buffer: [UInt8] = []
        var nextLineNumber = 1
        var atEnd = false
        while !atEnd {
            let carried = buffer.count
            buffer.append(contentsOf: repeatElement(0, count: chunkSize))
            let read = buffer.withUnsafeMutableBytes { fread($0.baseAddress! + carried, 1, chunkSize, file) }
            if read < chunkSize && ferror(file) != 0 { throw OpenError(path: path, reason: "read error") }
            buffer.removeLast(chunkSize - read)
            atEnd = read == 0
            let consumed = try buffer.withUnsafeBufferPointer { bytes -> Int in
                var lines: [UnsafeBufferPointer<UInt8>] = []
                var start = 0
                while start < bytes.count,
                    let newline = memchr(bytes.baseAddress! + start, Int32(UInt8(ascii: "\n")), bytes.count - start)
                {
                    let end = bytes.baseAddress!.distance(to: newline.assumingMemoryBound(to: UInt8.self))
                    lines.append(trimmed(UnsafeBufferPointer(rebasing: bytes[start..<end])))
                    start = end + 1
                }
                // At the end of the input an unterminated last line is still a line.
                if atEnd && start < bytes.count {
                    lines.append(trimmed(UnsafeBufferPointer(rebasing: bytes[start...])))
                    start = bytes.count
                }
                if !lines.isEmpty {
                    try body(Batch(lines: lines, firstLineNumber: nextLineNumber))
                    nextLineNumber += lines.count
                }
                return start
            }
            buffer.removeFirst(consumed)
        }
    }

    private static func trimmed(_ line: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        if let last = line.last, last == UInt8(ascii: "\r") { return UnsafeBufferPointer(rebasing: line.dropLast()) }
        return line
    }
}
