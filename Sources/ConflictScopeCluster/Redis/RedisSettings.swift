import ConflictScope
import Foundation

/// Where and how to reach Redis, parsed from `redis://[[user]:password@]host[:port][/db]`.
public struct RedisSettings: Sendable, CustomStringConvertible {
    /// Host name or IP address.
    public var host: String
    /// TCP port; 6379 when the URL names none.
    public var port: Int
    /// ACL user for `AUTH user password`; nil uses the single-password form `AUTH password`.
    public var username: String?
    /// Sent with AUTH after every connect; nil sends no AUTH. Never logged or printed.
    public var password: String?
    /// Database selected after every connect; 0 when the URL has no path.
    public var database: Int
    /// Limit on establishing a TCP connection. Default 2 s.
    public var connectTimeout: Duration = .seconds(2)
    /// Limit on each command's send and reply; a command that takes longer breaks the connection,
    /// which is then re-established and the command retried. Default 5 s.
    public var commandTimeout: Duration = .seconds(5)

    /// Parses `redis://[[user]:password@]host[:port][/db]`; throws ``RedisError/invalidURL`` otherwise.
    public init(url: String) throws {
        guard let components = URLComponents(string: url), components.scheme?.lowercased() == "redis",
            let host = components.host, !host.isEmpty
        else { throw RedisError.invalidURL }
        self.host = host
        self.port = components.port ?? 6379
        guard (1...65535).contains(port) else { throw RedisError.invalidURL }
        let user = components.user ?? ""
        self.username = user.isEmpty ? nil : user
        let password = components.password ?? ""
        self.password = password.isEmpty ? nil : password
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if path.isEmpty {
            self.database = 0
        } else {
            guard let database = Int(path), database >= 0 else { throw RedisError.invalidURL }
            self.database = database
        }
    }

    /// The URL with any password masked.
    public var description: String {
        var credentials = ""
        if username != nil || password != nil {
            credentials = (username ?? "") + (password == nil ? "" : ":***") + "@"
        }
        let printedHost = host.contains(":") ? "[\(host)]" : host
        return "redis://\(credentials)\(printedHost):\(port)/\(database)"
    }
}
