import ConflictScope
import Foundation

/// Where and how to reach RabbitMQ: `amqp://user:password@host:port/vhost`, or `amqps://` for TLS.
///
/// User, password and vhost are percent-decoded; the vhost is "/" when the path is empty or "/" (write
/// `%2F` for "/" inside a longer path). `description` shows the URL with the password masked.
public struct BrokerSettings: Sendable, CustomStringConvertible {
    /// TLS for an `amqps://` URL. The broker's certificate chain and host name are verified by default.
    public struct TLS: Sendable, Equatable {
        /// PEM file of the CAs to trust; nil trusts the system's CAs (what managed brokers need). URL query
        /// parameter `cacertfile`.
        public var caCertificateFile: String?
        /// PEM client certificate (chain) for brokers that require one, with `keyFile`. URL query parameter
        /// `certfile`.
        public var certificateFile: String?
        /// PEM private key (unencrypted) of `certificateFile`. URL query parameter `keyfile`.
        public var keyFile: String?
        /// Verify the broker's certificate and host name. Default true; `verify=verify_none` in the URL turns
        /// it off (never for real traffic).
        public var verifyPeer: Bool = true

        public init(
            caCertificateFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil,
            verifyPeer: Bool = true
        ) {
            self.caCertificateFile = caCertificateFile
            self.certificateFile = certificateFile
            self.keyFile = keyFile
            self.verifyPeer = verifyPeer
        }
    }

    /// Broker host name or address (IPv6 without brackets).
    public var host: String
    /// Broker port. Default 5672.
    public var port: Int
    /// User name. Default "guest".
    public var user: String
    /// Password. Never logged or shown in descriptions and errors.
    public var password: String
    /// Virtual host. Default "/".
    public var vhost: String
    /// Heartbeat interval proposed at login, in seconds; 0 disables heartbeats. Default 30. URL query
    /// parameter `heartbeat`.
    public var heartbeatSeconds: Int = 30
    /// Time allowed for the TCP connect and for each connection-setup step, in seconds. Default 5. URL
    /// query parameter `connection_timeout` (milliseconds, as in other AMQP clients).
    public var connectTimeoutSeconds: Double = 5
    /// TLS settings; nil for a plain `amqp://` connection. Default nil.
    public var tls: TLS?
    /// The largest message body `publish` sends, in bytes: RabbitMQ 4's default `max_message_size`, 16 MiB.
    /// A bigger one fails at once instead of being refused by the broker. URL query parameter
    /// `max_message_size`.
    public var maxMessageBytes = 16 * 1024 * 1024

    public init(
        host: String = "127.0.0.1", port: Int = 5672, user: String = "guest", password: String = "guest",
        vhost: String = "/"
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.vhost = vhost
    }

    /// Parses `amqp://user:password@host:port/vhost?heartbeat=30`, or `amqps://...` with the TLS parameters
    /// `cacertfile`, `certfile`, `keyfile` and `verify` (the names RabbitMQ's own clients use). Missing user
    /// and password default to guest/guest, a missing port to 5672 (5671 for amqps). Throws ``BrokerError/invalidSettings`` with a one-line message
    /// naming the part that is wrong; the message never quotes the URL, so it cannot leak the password.
    public init(url: String) throws {
        func invalid(_ message: String) -> BrokerError { .invalidSettings("AMQP URL: \(message)") }

        let text = url.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let schemeEnd = text.range(of: "://") else {
            throw invalid("expected amqp://user:password@host:port/vhost")
        }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "amqp" || scheme == "amqps" else { throw invalid("the scheme must be amqp:// or amqps://") }
        let rest = text[schemeEnd.upperBound...]

        // The user info ends at the last "@": a password may contain "/", "?" or "#" without encoding.
        self.init()
        if scheme == "amqps" {
            tls = TLS()
            port = 5671
        }
        var afterUser = rest
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            afterUser = rest[rest.index(after: at)...]
            let rawUser: Substring
            let rawPassword: Substring
            if let colon = userInfo.firstIndex(of: ":") {
                rawUser = userInfo[..<colon]
                rawPassword = userInfo[userInfo.index(after: colon)...]
            } else {
                rawUser = userInfo
                rawPassword = ""
            }
            guard let user = String(rawUser).removingPercentEncoding else {
                throw invalid("the user name has invalid percent-encoding")
            }
            guard let password = String(rawPassword).removingPercentEncoding else {
                throw invalid("the password has invalid percent-encoding")
            }
            guard !user.isEmpty else { throw invalid("the user name is empty") }
            self.user = user
            self.password = password
        }

        let authorityEnd = afterUser.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? afterUser.endIndex
        try parseHostAndPort(afterUser[..<authorityEnd], invalid: invalid)

        var remainder = afterUser[authorityEnd...]
        if let hash = remainder.firstIndex(of: "#") { remainder = remainder[..<hash] }
        var path = remainder
        var query: Substring = ""
        if let question = remainder.firstIndex(of: "?") {
            path = remainder[..<question]
            query = remainder[remainder.index(after: question)...]
        }
        try parseVhost(path, invalid: invalid)
        try parseQuery(query, invalid: invalid)
    }

    private mutating func parseHostAndPort(_ authority: Substring, invalid: (String) -> BrokerError) throws {
        var hostPart = authority
        var portPart: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw invalid("the IPv6 host lacks a ']'") }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw invalid("unexpected text after the IPv6 host") }
                portPart = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            portPart = authority[authority.index(after: colon)...]
        }
        guard !hostPart.isEmpty else { throw invalid("the host is missing") }
        host = String(hostPart)
        if let portPart {
            guard let port = Int(portPart), (1...65535).contains(port) else {
                throw invalid("the port must be a number from 1 to 65535")
            }
            self.port = port
        }
    }

    private mutating func parseVhost(_ path: Substring, invalid: (String) -> BrokerError) throws {
        let segment = path.dropFirst()  // the leading "/"
        if segment.isEmpty || segment == "/" {
            vhost = "/"
            return
        }
        guard !segment.contains("/") else { throw invalid("the vhost must be one path segment (write / as %2F)") }
        guard let decoded = String(segment).removingPercentEncoding else {
            throw invalid("the vhost has invalid percent-encoding")
        }
        vhost = decoded
    }

    private mutating func parseQuery(_ query: Substring, invalid: (String) -> BrokerError) throws {
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let value = parts.count == 2 ? parts[1] : ""
            switch parts[0] {
            case "heartbeat":
                guard let seconds = Int(value), (0...65535).contains(seconds) else {
                    throw invalid("heartbeat must be a number of seconds from 0 to 65535")
                }
                heartbeatSeconds = seconds
            case "connection_timeout":
                guard let milliseconds = Int(value), milliseconds > 0 else {
                    throw invalid("connection_timeout must be a positive number of milliseconds")
                }
                connectTimeoutSeconds = Double(milliseconds) / 1000
            case "max_message_size":
                guard let bytes = Int(value), bytes > 0 else {
                    throw invalid("max_message_size must be a positive number of bytes")
                }
                maxMessageBytes = bytes
            case "cacertfile", "certfile", "keyfile", "verify":
                guard tls != nil else { throw invalid("\(parts[0]) needs an amqps:// URL") }
                guard let decoded = String(value).removingPercentEncoding, !decoded.isEmpty else {
                    throw invalid("\(parts[0]) needs a value")
                }
                switch parts[0] {
                case "cacertfile": tls?.caCertificateFile = decoded
                case "certfile": tls?.certificateFile = decoded
                case "keyfile": tls?.keyFile = decoded
                default:
                    guard decoded == "verify_peer" || decoded == "verify_none" else {
                        throw invalid("verify must be verify_peer or verify_none")
                    }
                    tls?.verifyPeer = decoded == "verify_peer"
                }
            default:
                throw invalid(
                    "unsupported query parameter (supported: heartbeat, connection_timeout, max_message_size, "
                        + "and for amqps: cacertfile, certfile, keyfile, verify)")
            }
        }
        if let tls, (tls.certificateFile == nil) != (tls.keyFile == nil) {
            throw invalid("a client certificate needs both certfile and keyfile")
        }
    }

    public var description: String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove("/")
        let encodedVhost = vhost == "/" ? "" : (vhost.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")
        let encodedUser = user.addingPercentEncoding(withAllowedCharacters: .urlUserAllowed) ?? ""
        let shownHost = host.contains(":") ? "[\(host)]" : host
        let secret = password.isEmpty ? "" : ":***"
        return "\(tls == nil ? "amqp" : "amqps")://\(encodedUser)\(secret)@\(shownHost):\(port)/\(encodedVhost)"
    }
}
