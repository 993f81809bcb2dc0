import CHiredis
import ConflictScope
import Foundation
import Logging

/// One attempt at running a command on the connection thread.
enum RedisAttempt: Sendable {
    case reply(RedisReply)
    /// Redis answered with an error reply; the connection is still good.
    case errorReply(String)
    /// The connection could not be made or broke (refused, timeout, EOF, NULL reply); it has been freed
    /// and the next attempt reconnects. The message is hiredis' `errstr`, which holds no credentials.
    case connectionFailure(String)
    /// The connection has been shut down.
    case closed
}

/// Owns one hiredis `redisContext` and the OS thread that uses it.
///
/// `@unchecked Sendable` is safe because the context (and `lostConnection`) are touched only by `thread`
/// — every hiredis call, including connect and free, runs there — and the only state shared with other
/// threads (`jobs`, `stopped`) is read and written under `condition`. Blocking C calls therefore never run
/// on the Swift concurrency pool.
final class RedisConnection: @unchecked Sendable {
    private struct Job {
        let arguments: [String]
        let complete: @Sendable (RedisAttempt) -> Void
    }

    private let settings: RedisSettings
    private let logger: Logger
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var head = 0
    private var stopped = false

    // Thread-confined.
    private var context: UnsafeMutablePointer<redisContext>?
    private var lostConnection = false

    init(settings: RedisSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        let thread = Thread { [self] in run() }
        thread.name = "conflictscope-redis"
        thread.start()
    }

    /// Queues `arguments` for the connection thread; `complete` is called on that thread.
    func submit(_ arguments: [String], complete: @escaping @Sendable (RedisAttempt) -> Void) {
        condition.lock()
        if stopped {
            condition.unlock()
            complete(.closed)
            return
        }
        jobs.append(Job(arguments: arguments, complete: complete))
        condition.signal()
        condition.unlock()
    }

    /// Fails queued commands with `.closed`, lets the running one finish, then frees the context and ends
    /// the thread.
    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        // hiredis writes with write(2), which raises SIGPIPE on a connection the server closed; blocked on this
        // thread the write fails with EPIPE instead, and the process keeps its own SIGPIPE disposition.
        var pipe = sigset_t()
        sigemptyset(&pipe)
        sigaddset(&pipe, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipe, nil)
        while let job = next() {
            job.complete(perform(job.arguments))
        }
        if let context { redisFree(context) }
        context = nil
    }

    private func next() -> Job? {
        condition.lock()
        defer { condition.unlock() }
        while head == jobs.count && !stopped { condition.wait() }
        if stopped {
            let abandoned = jobs[head...]
            jobs = []
            head = 0
            for job in abandoned { job.complete(.closed) }
            return nil
        }
        let job = jobs[head]
        head += 1
        if head == jobs.count || head > 1024 {
            jobs.removeFirst(head)
            head = 0
        }
        return job
    }

    private func perform(_ arguments: [String]) -> RedisAttempt {
        if context == nil, let failure = connect() { return failure }
        guard let context else { return .connectionFailure("not connected") }
        return execute(arguments, on: context)
    }

    /// Connects, then AUTH and SELECT; returns nil on success.
    private func connect() -> RedisAttempt? {
        guard let made = redisConnectWithTimeout(settings.host, Int32(settings.port), timeval(settings.connectTimeout))
        else { return noteLost("cannot allocate redis context") }
        if made.pointee.err != 0 {
            let message = errorString(made)
            redisFree(made)
            return noteLost(message)
        }
        guard redisSetTimeout(made, timeval(settings.commandTimeout)) == REDIS_OK else {
            let message = errorString(made)
            redisFree(made)
            return noteLost(message)
        }
        _ = redisEnableKeepAlive(made)
        context = made
        var setup: [[String]] = []
        if let password = settings.password {
            setup.append(["AUTH"] + (settings.username.map { [$0] } ?? []) + [password])
        }
        if settings.database != 0 { setup.append(["SELECT", String(settings.database)]) }
        for arguments in setup {
            switch execute(arguments, on: made) {
            case .reply: continue
            case .errorReply(let message):
                // A wrong password or database is a configuration error: fail the command, try again next time.
                redisFree(made)
                context = nil
                return .errorReply(message)
            case .connectionFailure(let message): return noteLost(message)
            case .closed: return .closed
            }
        }
        if lostConnection {
            lostConnection = false
            logger.info("redis reconnected", metadata: ["redis.server": "\(settings.host):\(settings.port)"])
        }
        return nil
    }

    private func noteLost(_ message: String) -> RedisAttempt {
        lostConnection = true
        return .connectionFailure(message)
    }

    private func execute(_ arguments: [String], on context: UnsafeMutablePointer<redisContext>) -> RedisAttempt {
        let encoded = arguments.map { Array($0.utf8) }
        var lengths = encoded.map(\.count)
        var storage = [CChar]()
        storage.reserveCapacity(max(1, lengths.reduce(0, +)))
        var offsets: [Int] = []
        for bytes in encoded {
            offsets.append(storage.count)
            storage.append(contentsOf: bytes.map { CChar(bitPattern: $0) })
        }
        if storage.isEmpty { storage.append(0) }
        let raw: UnsafeMutablePointer<redisReply>? = storage.withUnsafeBufferPointer { buffer in
            var argv: [UnsafePointer<CChar>?] = offsets.map { buffer.baseAddress! + $0 }
            return argv.withUnsafeMutableBufferPointer { argvBuffer in
                lengths.withUnsafeMutableBufferPointer { lengthBuffer in
                    chiredis_command(
                        context, Int32(arguments.count), argvBuffer.baseAddress, lengthBuffer.baseAddress
                    )
                }
            }
        }
        guard let raw, context.pointee.err == 0 else {
            // After a NULL reply or any I/O error the context is unusable: free it, reconnect next time.
            let message = context.pointee.err != 0 ? errorString(context) : "no reply"
            if let raw { freeReplyObject(raw) }
            redisFree(context)
            self.context = nil
            return noteLost(message)
        }
        defer { freeReplyObject(raw) }
        switch Self.convert(raw) {
        case .success(let reply): return .reply(reply)
        case .failure(let error):
            // A server still loading its data set answers LOADING: retry like a connection problem.
            if error.message.hasPrefix("LOADING") { return .connectionFailure(error.message) }
            return .errorReply(error.message)
        }
    }

    private struct ErrorReply: Error {
        let message: String
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> Result<RedisReply, ErrorReply> {
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STRING: return .success(.string(text(value)))
        case REDIS_REPLY_STATUS: return .success(.status(text(value)))
        case REDIS_REPLY_INTEGER: return .success(.integer(Int(value.integer)))
        case REDIS_REPLY_NIL: return .success(.null)
        case REDIS_REPLY_ERROR: return .failure(ErrorReply(message: text(value)))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            elements.reserveCapacity(value.elements)
            for index in 0..<value.elements {
                guard let element = value.element[index] else {
                    elements.append(.null)
                    continue
                }
                switch convert(element) {
                case .success(let converted): elements.append(converted)
                case .failure(let error): return .failure(error)
                }
            }
            return .success(.array(elements))
        default:
            return .failure(ErrorReply(message: "unknown reply type \(value.type)"))
        }
    }

    private static func text(_ reply: redisReply) -> String {
        guard let pointer = reply.str, reply.len > 0 else { return "" }
        return pointer.withMemoryRebound(to: UInt8.self, capacity: reply.len) {
            String(decoding: UnsafeBufferPointer(start: $0, count: reply.len), as: UTF8.self)
        }
    }

    private func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { bytes in
            let length = bytes.firstIndex(of: 0) ?? bytes.count
            return String(decoding: bytes.prefix(length), as: UTF8.self)
        }
    }
}

extension timeval {
    fileprivate init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
