import AsyncHTTPClient
import ConflictScope
import ConflictScopeSimServer
import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1
import Testing

/// Parses a config whose simulated provider `sim` has `providerLines` and serves `writer-1` and `target-1`.
func simConfig(_ providerLines: String = "") throws -> SweepConfig {
    try SweepConfig.parse(
        """
        [sweep]
        name = "sim-server"
        value_sets = ["hhh"]

        [providers.sim]
        kind = "simulated"
        \(providerLines)

        [models.writer]
        provider = "sim"
        model = "writer-1"

        [models.target]
        provider = "sim"
        model = "target-1"
        steerability = 0.5
        [models.target.utilities.open]
        helpfulness = 2.0
        harmlessness = -1.0

        \(rolesAndTargets)
        """, file: "/tmp/sim-server.toml", environment: [:])
}

/// The `[roles.*]` and `[targets]` tables every test config shares.
let rolesAndTargets = """
    [roles.generator]
    model = "writer"
    [roles.filter_judge]
    model = "writer"
    [roles.user]
    model = "writer"
    [roles.judge]
    model = "writer"

    [targets]
    models = ["target"]
    """

/// The project's own HTTP client for a provider of `kind` at `baseURL`, one attempt per call.
func client(kind: String, baseURL: String, timeout: Double = 5) throws -> HTTPProvider {
    let environment = ["SIM_TEST_KEY": "sk-sim"]
    let config = try SweepConfig.parse(
        """
        [sweep]
        name = "sim-client"
        value_sets = ["hhh"]

        [providers.remote]
        kind = "\(kind)"
        base_url = "\(baseURL)/v1"
        api_key_env = "SIM_TEST_KEY"
        timeout_s = \(timeout)
        max_retries = 3

        [models.writer]
        provider = "remote"
        model = "writer-1"

        [models.target]
        provider = "remote"
        model = "target-1"

        \(rolesAndTargets)
        """, file: "/tmp/sim-client.toml", environment: environment)
    return HTTPProvider(settings: try #require(config.providers["remote"]), environment: environment)
}

/// Runs `body` with a sim-server for `config` listening on an ephemeral port of 127.0.0.1, given its base URL.
func withSimServer<T: Sendable>(
    _ config: SweepConfig, hang: Duration = .seconds(5), _ body: (String) async throws -> T
) async throws -> T {
    let server = try SimServer(config: config, configuration: .init(host: "127.0.0.1", port: 0, hangDuration: hang))
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let app = server.application { continuation.yield($0) }
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await app.run() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        do {
            let result = try await body("http://127.0.0.1:\(port)")
            group.cancelAll()
            return result
        } catch {
            group.cancelAll()
            throw error
        }
    }
}

/// A raw HTTP exchange, for what `HTTPProvider` does not show (status, headers, `/stats`).
func rawRequest(
    _ url: String, method: HTTPMethod = .POST, json: [String: Any]? = nil
) async throws -> (status: Int, headers: [String: String], body: [String: Any]) {
    var request = HTTPClientRequest(url: url)
    request.method = method
    if let json {
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
    }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
    let bytes = try await response.body.collect(upTo: 16 << 20)
    var headers: [String: String] = [:]
    for header in response.headers { headers[header.name.lowercased()] = header.value }
    let body = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any] ?? [:]
    return (Int(response.status.code), headers, body)
}

/// The raw body of a POST.
func rawText(_ url: String, json: [String: Any]) async throws -> String {
    var request = HTTPClientRequest(url: url)
    request.method = .POST
    request.headers.add(name: "Content-Type", value: "application/json")
    request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
    return String(buffer: try await response.body.collect(upTo: 16 << 20))
}

/// `/stats` for one model.
func modelStats(_ baseURL: String, _ model: String) async throws -> [String: Any] {
    let stats = try await rawRequest(baseURL + "/stats", method: .GET)
    let models = try #require(stats.body["models"] as? [String: Any])
    return try #require(models[model] as? [String: Any])
}
