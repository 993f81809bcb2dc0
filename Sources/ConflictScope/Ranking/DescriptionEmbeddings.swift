import Foundation

/// The embedder role's vectors of kept scenarios' descriptions, for the diversity measure.
///
/// `run` embeds each value pair's kept descriptions in one call at the end of the sweep (a cached call like
/// any other, so a rerun pays nothing); the summary and `report` then find the vectors in the store by the
/// call's key. A pair without them is measured on the lexical embedding, and each pair says which it used.
public struct DescriptionEmbeddings: Sendable {
    /// The embedder's config model name (the label of the measure).
    public var model: String
    /// Vectors by scenario id.
    public var vectors: [String: [Double]]

    public init(model: String, vectors: [String: [Double]]) {
        self.model = model
        self.vectors = vectors
    }

    /// Kept scenarios by value pair, each pair's in id order (the order of its embedding call).
    static func byPair(_ kept: [Scenario]) -> [[Scenario]] {
        Dictionary(grouping: kept) { "\($0.valueSet)\u{1}\($0.value1)\u{1}\($0.value2)" }
            .sorted { $0.key < $1.key }.map { $0.value.sorted { $0.id < $1.id } }
    }

    /// Embeds every value pair's kept descriptions with the embedder role (nothing without one). Returns the
    /// pairs whose call gave no vectors.
    @discardableResult
    public static func embed(scenarios: [Scenario], caller: ModelCaller, store: ResultStore) async throws -> Int {
        guard let embedder = caller.config.roles.embedder else { return 0 }
        var missing = 0
        for pair in byPair(scenarios.filter { $0.status == .kept }) where pair.count > 1 {
            let first = pair[0]
            let vectors = try await caller.embed(
                modelName: embedder.model, texts: pair.map(\.description),
                taskID: "\(Stage.generation.rawValue)/diversity/\(first.valueSet)/\(first.value1)/\(first.value2)",
                records: store)
            if vectors == nil { missing += 1 }
        }
        return missing
    }

    /// The vectors `embed` stored for `scenarios`, or nil without an embedder role or any vectors.
    public static func stored(scenarios: [Scenario], config: SweepConfig, store: ResultStore) throws
        -> DescriptionEmbeddings?
    {
        guard let embedder = config.roles.embedder else { return nil }
        var vectors: [String: [Double]] = [:]
        for pair in byPair(scenarios.filter { $0.status == .kept }) where pair.count > 1 {
            let key = ModelCaller.embeddingKey(
                config: config, modelName: embedder.model, texts: pair.map(\.description))
            guard let key, let answer = try store.successfulResponse(key: key),
                let found = ModelCaller.vectors(answer.text), found.count == pair.count
            else { continue }
            for (scenario, vector) in zip(pair, found) { vectors[scenario.id] = vector }
        }
        return vectors.isEmpty ? nil : DescriptionEmbeddings(model: embedder.model, vectors: vectors)
    }
}
