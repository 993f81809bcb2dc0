import ArgumentParser
import ConflictScope
import ConflictScopeSimServer
import Foundation

struct SimServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim-server",
        abstract: "Serve the config's simulated models over HTTP, in OpenAI's and Anthropic's wire formats.",
        discussion: """
            Endpoints: POST /v1/chat/completions, POST /v1/embeddings, POST /v1/messages, GET /stats. Answers \
            equal an embedded run's; each [providers.NAME] of kind "simulated" sets its models' rpm, tpm, \
            input_tpm, output_tpm, latency_ms, latency_jitter_ms and fault rates (fault_5xx, fault_hang, \
            fault_malformed, fault_empty, fault_reset, max_faults_per_request). Stops on SIGINT or SIGTERM.
            """
    )

    @Option(name: .long, help: "The sweep's config file.")
    var config = "config.toml"

    @Option(name: .long, help: "Port to listen on (0: any free port).")
    var port = 8089

    @Option(name: .long, help: "Address to listen on.")
    var host = "127.0.0.1"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
    }

    func run() async throws {
        let server: SimServer
        do {
            server = try SimServer(
                config: try SweepConfig.load(path: config), configuration: .init(host: host, port: port))
        } catch {
            throw CommandFailure("\(error)")
        }
        let models = server.modelIDs.joined(separator: ", ")
        let app = server.application { port in
            FileHandle.standardError.write(Data("sim-server on http://\(host):\(port)/v1 serving \(models)\n".utf8))
        }
        try await app.runService()
    }
}
