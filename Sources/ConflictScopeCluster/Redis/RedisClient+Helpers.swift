import ConflictScope

extension RedisClient {
    /// SET, with an expiry when `ttlSeconds` is given.
    public func set(_ key: String, _ value: String, ttlSeconds: Int? = nil) async throws {
        var arguments = ["SET", key, value]
        if let ttlSeconds { arguments += ["EX", String(ttlSeconds)] }
        _ = try await command(arguments)
    }

    /// SET NX with an expiry; true when the key was set (it did not exist).
    @discardableResult
    public func setIfAbsent(_ key: String, _ value: String, ttlSeconds: Int) async throws -> Bool {
        switch try await command(["SET", key, value, "NX", "EX", String(ttlSeconds)]) {
        case .null: return false
        default: return true
        }
    }

    /// GET; nil when the key does not exist.
    public func get(_ key: String) async throws -> String? {
        switch try await command(["GET", key]) {
        case .null: return nil
        case .string(let value): return value
        default: throw RedisError.unexpectedReply("a bulk string from GET")
        }
    }

    /// DEL; returns how many of `keys` existed.
    @discardableResult
    public func delete(_ keys: [String]) async throws -> Int {
        guard !keys.isEmpty else { return 0 }
        guard let count = try await command(["DEL"] + keys).integer else {
            throw RedisError.unexpectedReply("an integer from DEL")
        }
        return count
    }

    /// HINCRBY; returns the field's new value.
    @discardableResult
    public func hashIncrement(_ key: String, field: String, by amount: Int = 1) async throws -> Int {
        guard let value = try await command(["HINCRBY", key, field, String(amount)]).integer else {
            throw RedisError.unexpectedReply("an integer from HINCRBY")
        }
        return value
    }

    /// HGETALL as a dictionary of field to value.
    public func hashGetAll(_ key: String) async throws -> [String: String] {
        guard case .array(let items) = try await command(["HGETALL", key]), items.count % 2 == 0 else {
            throw RedisError.unexpectedReply("a field/value array from HGETALL")
        }
        var result: [String: String] = [:]
        for index in stride(from: 0, to: items.count, by: 2) {
            guard let field = items[index].string, let value = items[index + 1].string else {
                throw RedisError.unexpectedReply("strings from HGETALL")
            }
            result[field] = value
        }
        return result
    }
}
