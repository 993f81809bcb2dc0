import ConflictScope
import ConflictScopeCluster
import Foundation
import Logging
import Testing

/// The deployment's transport security, on loopback: RabbitMQ with AMQPS and Redis with TLS only,
/// started by cluster/servers with a CA and server certificate made for this run, Redis reached through
/// stunnel with the shipped k8s/stunnel-redis.conf, and the roles logged in as a user holding exactly
/// the permissions k8s/rabbitmq.yaml grants them. Ports of their own, so the plain servers stay up.
@Suite("TLS to RabbitMQ and Redis, least-privilege user")
struct TLSTests {
    static let plainPort = 5683  // the TLS broker's own plain listener, used by nothing here
    static let amqpsPort = 5681
    static let redisTLSPort = 6390
    static let password = "tls-test-pw-5f1c"

    @Test func aSweepRunsOverTLSAsTheRolesUserAndAWrongCAIsRefused() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cs-tls-\(UUID().uuidString)")
        let certificates = folder.appendingPathComponent("certs").path
        #expect(try await runScript("servers", ["certs", certificates]).0 == 0)
        let servers = [
            "CONFLICTSCOPE_TLS_DIR": certificates, "CONFLICTSCOPE_AMQP_PORT": "\(Self.plainPort)",
            "CONFLICTSCOPE_AMQPS_PORT": "\(Self.amqpsPort)", "CONFLICTSCOPE_REDIS_PORT": "\(Self.redisTLSPort)",
            "CONFLICTSCOPE_REDIS_DIR": folder.appendingPathComponent("redis").path,
        ]
        // Servers a failed earlier run left behind hold another run's certificate: stop them first.
        try await runScript("servers", ["stop"], environment: servers)
        let (started, startLog) = try await runScript("servers", ["start"], environment: servers, timeout: 240)
        try #require(started == 0, "cluster/servers could not start the TLS servers: \(startLog)")
        let (added, _) = try await runScript(
            "servers", ["add-user", "cs-roles", Self.password, "conflictscope"], environment: servers)
        try #require(added == 0)

        let (tunnel, tunnelPort) = try startTunnel(folder: folder, caFile: "\(certificates)/ca.crt")
        defer { tunnel.signal(SIGKILL) }
        let redisThroughTunnel = "redis://127.0.0.1:\(tunnelPort)/0"
        let amqps =
            "amqps://cs-roles:\(Self.password)@localhost:\(Self.amqpsPort)/conflictscope?cacertfile=\(certificates)/ca.crt"

        // A small sweep, every role over TLS, as the least-privilege user.
        let (path, config) = try smallSlowConfig("tls", latencyMilliseconds: 20)
        let cluster = LocalCluster(configPath: path, config: config, amqp: amqps, redis: redisThroughTunnel)
        defer { cluster.kill() }
        try cluster.startAggregator()
        for _ in 0..<2 { try cluster.startWorker() }
        let (status, summary) = try await cluster.startCoordinator().finish(timeout: 600)
        #expect(status == 0, "coordinator failed over TLS: \(cluster.logTails())")
        #expect(cluster.logs(containing: Self.password) == 0)
        #expect(await cluster.stop() == [0, 0, 0])
        try expectCompleteAndCountedOnce(config)
        try await expectSameRankingsAsEmbedded(config, clusterSummary: summary)

        // The same broker, verified against a CA that did not sign its certificate: refused, in one line.
        let records = CapturedLogs()
        let wrong = BrokerConnection(
            settings: try BrokerSettings(
                url: "amqps://cs-roles:\(Self.password)@localhost:\(Self.amqpsPort)/conflictscope"
                    + "?cacertfile=\(certificates)/wrong-ca.crt"),
            name: "test-wrong-ca", logger: Logger(label: "test") { _ in records })
        let failure = try await records.first(containing: "broker connect failed", timeout: 20)
        #expect(!wrong.isConnected)
        #expect(failure.contains("broker.step=tls"), "\(failure)")
        #expect(failure.contains("not signed by the CA file \(certificates)/wrong-ca.crt"), "\(failure)")
        #expect(!failure.contains(Self.password) && !failure.contains("\n"))
        await wrong.close()

        // Redis through a tunnel that trusts the wrong CA: no answer; through the right one: PONG.
        let (wrongTunnel, wrongPort) = try startTunnel(folder: folder, caFile: "\(certificates)/wrong-ca.crt")
        defer { wrongTunnel.signal(SIGKILL) }
        let refused = try RedisClient(url: "redis://127.0.0.1:\(wrongPort)/0")
        defer { refused.shutdown() }
        #expect(await refused.answersNow() == false)
        let accepted = try RedisClient(url: redisThroughTunnel)
        defer { accepted.shutdown() }
        #expect(await accepted.answersNow())
        #expect(try await runScript("servers", ["stop"], environment: servers).0 == 0)
    }

    /// stunnel with the shipped client config, pointed at the local Redis and CA, on a free port; waits
    /// until it listens. Stop it with SIGKILL: it inherits this process's blocked SIGTERM.
    private func startTunnel(folder: URL, caFile: String) throws -> (ChildProcess, Int) {
        let port = try freePort()
        let shipped = try String(
            contentsOf: repositoryRoot.appendingPathComponent("k8s/stunnel-redis.conf"), encoding: .utf8)
        let local =
            shipped
            .replacingOccurrences(of: "accept = 127.0.0.1:6379", with: "accept = 127.0.0.1:\(port)")
            .replacingOccurrences(
                of: "connect = conflictscope-redis.conflictscope.svc:6380",
                with: "connect = 127.0.0.1:\(Self.redisTLSPort)"
            )
            .replacingOccurrences(of: "CAfile = /etc/conflictscope-tls/ca.crt", with: "CAfile = \(caFile)")
            .replacingOccurrences(
                of: "checkHost = conflictscope-redis.conflictscope.svc", with: "checkHost = localhost")
        #expect(local.contains("127.0.0.1:\(Self.redisTLSPort)") && local.contains(caFile))
        let path = folder.appendingPathComponent("stunnel-\(port).conf").path
        try local.write(toFile: path, atomically: true, encoding: .utf8)
        let tunnel = try ChildProcess("/usr/bin/stunnel", [path], log: path + ".log")
        let deadline = ContinuousClock.now + .seconds(10)
        while !portOpen(port) {
            guard ContinuousClock.now < deadline, tunnel.isRunning else {
                throw ClusterTestError(
                    "stunnel did not listen on \(port): \((try? String(contentsOfFile: path + ".log", encoding: .utf8)) ?? "")"
                )
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return (tunnel, port)
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
private func portOpen(_ port: Int) -> Bool {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else { return false }
    defer { close(socket) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}

/// Log records of one logger, each flattened to its message and metadata on one line.
final class CapturedLogs: LogHandler, @unchecked Sendable {
    // Guarded by `lock`: the broker thread logs while the test reads.
    private let lock = NSLock()
    private var lines: [String] = []
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let fields = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        lock.withLock { lines.append(([event.message.description] + fields).joined(separator: " ")) }
    }

    /// The first line containing `text`, waiting for it up to `timeout` seconds.
    func first(containing text: String, timeout: Double) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            if let line = lock.withLock({ lines.first { $0.contains(text) } }) { return line }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ClusterTestError("no log line containing '\(text)' within \(timeout) s")
    }
}
