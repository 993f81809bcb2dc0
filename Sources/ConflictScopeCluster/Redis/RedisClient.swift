import ConflictScope
import Logging

/// A Redis client over one hiredis connection, safe to share between tasks.
///
/// Commands run one at a time, in submission order, on the connection's own OS thread. When the connection
/// fails (refused, timed out, dropped) it is re-established and the command retried with backoff
/// (0.1 s doubling to 2 s) until it succeeds or the calling task is cancelled. A command whose reply was lost
/// may therefore run twice: commands sent through this client should be idempotent or tolerate that.
///
/// `@unchecked Sendable`: all mutable state lives in ``RedisConnection``, which confines the hiredis context
/// to its thread and guards its queue with a lock; the stored properties here are immutable.
public final class RedisClient: @unchecked Sendable {
    public let settings: RedisSettings
    private let logger: Logger
    private let connection: RedisConnection

    /// Starts the connection thread; the first command connects. `logger` receives reconnect warnings.
    public init(settings: RedisSettings, logger: Logger = Logger(label: "conflictscope.redis")) {
        self.settings = settings
        self.logger = logger
        self.connection = RedisConnection(settings: settings, logger: logger)
    }

    /// Parses `url` (see ``RedisSettings/init(url:)``) and starts the client.
    public convenience init(url: String, logger: Logger = Logger(label: "conflictscope.redis")) throws {
        self.init(settings: try RedisSettings(url: url), logger: logger)
    }

    deinit { connection.stop() }

    /// Closes the connection; commands queued or sent afterwards throw ``RedisError/closed``.
    public func shutdown() { connection.stop() }

    /// Runs one command given as binary-safe arguments (`["SET", key, value]`).
    ///
    /// Throws ``RedisError`` for an error reply, and `CancellationError` when the task is cancelled while
    /// waiting to reconnect. Connection failures are not thrown: they are logged and retried.
    public func command(_ arguments: [String]) async throws -> RedisReply {
        var delay = Duration.milliseconds(100)
        while true {
            let attempt = await withCheckedContinuation { continuation in
                connection.submit(arguments) { continuation.resume(returning: $0) }
            }
            switch attempt {
            case .reply(let reply): return reply
            case .errorReply(let message): throw RedisError.errorReply(message)
            case .closed: throw RedisError.closed
            case .connectionFailure(let message):
                logger.warning(
                    "redis connection failed, retrying",
                    metadata: [
                        "redis.error": "\(message)", "redis.server": "\(settings.host):\(settings.port)",
                        "redis.retry_in": "\(delay)",
                    ]
                )
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }

    /// Whether the server answers a PING now: one attempt, no reconnect retries (readiness probes).
    public func answersNow() async -> Bool {
        let attempt = await withCheckedContinuation { continuation in
            connection.submit(["PING"]) { continuation.resume(returning: $0) }
        }
        if case .reply = attempt { return true }
        return false
    }

    /// Runs `script` with EVALSHA, loading it first if the server does not have it (NOSCRIPT, e.g. after a
    /// restart).
    public func evaluate(_ script: RedisScript, keys: [String], arguments: [String]) async throws -> RedisReply {
        let call = ["EVALSHA", script.sha1, String(keys.count)] + keys + arguments
        do {
            return try await command(call)
        } catch let error as RedisError where error.isNoScript {
            _ = try await command(["SCRIPT", "LOAD", script.source])
            return try await command(call)
        }
    }
}
