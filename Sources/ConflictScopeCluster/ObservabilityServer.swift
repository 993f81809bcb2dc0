import ConflictScope
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle

/// The HTTP endpoints every cluster role serves for Kubernetes and Prometheus:
///
/// - `GET /metrics`: every ``SweepMetrics`` metric in Prometheus' text format;
/// - `GET /healthz`: 200 while the process runs (liveness);
/// - `GET /readyz`: 200 while the role reaches RabbitMQ and Redis, 503 otherwise (readiness);
/// - `GET /` and `GET /status.json`: the role's live view of the sweep (``ClusterLiveView``), when given.
///
/// It is a swift-service-lifecycle Service; failing to listen (the port is taken) ends it with a
/// one-line error.
public struct ObservabilityServer: Service {
    let app: any Service
    let address: String

    /// `notReady` (why the role is not ready, nil when it is) is evaluated on every /readyz and /metrics
    /// request.
    public init(
        host: String, port: Int, registry: PrometheusCollectorRegistry, logger: Logger, live: ClusterLiveView? = nil,
        notReady: @escaping @Sendable () async -> String?
    ) {
        self.app = Self.application(
            host: host, port: port, registry: registry, logger: logger, live: live, notReady: notReady)
        self.address = "\(host):\(port)"
    }

    public func run() async throws {
        do {
            try await app.run()
        } catch {
            throw ObservabilityError(description: "cannot serve metrics on \(address): \(error)")
        }
    }

    /// Makes Prometheus the process's swift-metrics backend and returns its registry. Call once,
    /// before any metric is touched.
    public static func bootstrapMetrics() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // LLM calls take from well under a second to minutes.
        factory.defaultDurationHistogramBuckets = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300].map {
            Duration.milliseconds(Int64($0 * 1000))
        }
        MetricsSystem.bootstrap(factory)
        return registry
    }

    static func application(
        host: String, port: Int, registry: PrometheusCollectorRegistry, logger: Logger, live: ClusterLiveView?,
        notReady: @escaping @Sendable () async -> String?
    ) -> some ApplicationProtocol {
        let router = Router()
        if let live { LiveViewServer.addRoutes(to: router) { await live.snapshot() } }
        router.get("/healthz") { _, _ in plain(.ok, "ok\n") }
        router.get("/readyz") { _, _ in
            let problem = await notReady()
            SweepMetrics.ready(problem == nil)
            return problem.map { plain(.serviceUnavailable, "not ready: \($0)\n") } ?? plain(.ok, "ready\n")
        }
        router.get("/metrics") { _, _ in
            SweepMetrics.ready(await notReady() == nil)
            return plain(.ok, registry.emitToString(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "conflictscope"),
            logger: logger)
    }

    private static func plain(
        _ status: HTTPResponse.Status, _ text: String, contentType: String = "text/plain; charset=utf-8"
    ) -> Response {
        Response(
            status: status, headers: [.contentType: contentType],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

public struct ObservabilityError: Error, CustomStringConvertible {
    public let description: String
}
