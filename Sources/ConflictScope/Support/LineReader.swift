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

    /// Calls `body` with each line's bytes (without the newline or a trailing carriage return) and its
    /// 1-based number. `path` "-" reads standard input.
    public static func forEachLine(
        path: String, _ body: (UnsafeBufferPointer<UInt8>, Int) throws -> Void
    ) throws {
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

        let chunkSize = 1 << 20
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        var lineNumber = 0
        while true {
            let read = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, chunkSize, file) }
            if read == 0 {
                if ferror(file) != 0 { throw OpenError(path: path, reason: "read error") }
                break
            }
            try chunk.withUnsafeBufferPointer { buffer in
                var start = 0
                while start < read,
                    let newline = memchr(buffer.baseAddress! + start, Int32(UInt8(ascii: "\n")), read - start)
                {
                    let index = buffer.baseAddress!.distance(to: newline.assumingMemoryBound(to: UInt8.self))
                    lineNumber += 1
                    if pending.isEmpty {
                        try emit(UnsafeBufferPointer(rebasing: buffer[start..<index]), lineNumber, body)
                    } else {
                        pending.append(contentsOf: buffer[start..<index])
                        try pending.withUnsafeBufferPointer { try emit($0, lineNumber, body) }
                        pending.removeAll(keepingCapacity: true)
                    }
                    start = index + 1
                }
                pending.append(contentsOf: buffer[start..<read])
            }
        }
        if !pending.isEmpty {
            lineNumber += 1
            try pending.withUnsafeBufferPointer { try emit($0, lineNumber, body) }
        }
    }

    private static func emit(
        _ line: UnsafeBufferPointer<UInt8>, _ number: Int, _ body: (UnsafeBufferPointer<UInt8>, Int) throws -> Void
    ) throws {
        if let last = line.last, last == UInt8(ascii: "\r") {
            try body(UnsafeBufferPointer(rebasing: line.dropLast()), number)
        } else {
            try body(line, number)
        }
    }
}
