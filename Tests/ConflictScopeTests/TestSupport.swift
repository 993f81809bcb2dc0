import ConflictScope
import Foundation

/// The repository's config.toml (the default sweep), as text to edit.
func repositoryConfigText() throws -> String {
    try String(
        contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("config.toml"), encoding: .utf8)
}

/// Writes `text` as config.toml in a fresh temporary folder and loads it.
func writeTemporaryConfig(_ text: String, environment: [String: String] = [:]) throws -> (
    config: SweepConfig, folder: URL
) {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let path = folder.appendingPathComponent("config.toml").path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return (try SweepConfig.load(path: path, environment: environment), folder)
}

/// The four roles, all played by the model `writer`.
let writerRoles = """
    [roles.generator]
    model = "writer"
    [roles.filter_judge]
    model = "writer"
    [roles.user]
    model = "writer"
    [roles.judge]
    model = "writer"
    """
