import ConflictScope
import Foundation
import Testing

/// Headless Chromium (Debian's `chromium`, installed by scripts/install-deps.sh), or a clear failure.
func chromiumPath() throws -> String {
    let environment = ProcessInfo.processInfo.environment
    let candidates =
        [environment["CONFLICTSCOPE_CHROMIUM"]].compactMap { $0 }
        + (environment["PATH"] ?? "/usr/bin").split(separator: ":").flatMap { folder in
            ["chromium", "chromium-browser"].map { "\(folder)/\($0)" }
        }
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw FixtureError(
            message: "chromium is not installed: the report's browser tests need Debian's chromium package "
                + "(scripts/install-deps.sh installs it; or set CONFLICTSCOPE_CHROMIUM)")
    }
    return found
}

struct BrowserResult {
    let stdout: String
    /// Chromium's log; with --enable-logging=stderr every console message of the page is a `:CONSOLE` line.
    let stderr: String
}

/// Runs headless Chromium on `url` with a private profile; kills it after `timeout` seconds.
func runChromium(_ arguments: [String], url: String, profile: URL, timeout: Double = 90) throws -> BrowserResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try chromiumPath())
    process.arguments =
        [
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            "--user-data-dir=\(profile.path)", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000",
        ] + arguments + [url]
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("chromium-\(UUID().uuidString).out")
    let err = out.appendingPathExtension("err")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
    if process.isRunning {
        process.terminate()
        process.waitUntilExit()
        throw FixtureError(message: "chromium did not finish within \(Int(timeout)) s on \(url)")
    }
    return BrowserResult(
        stdout: try String(contentsOf: out, encoding: .utf8), stderr: try String(contentsOf: err, encoding: .utf8))
}

@Suite("HTML report in a real browser", .serialized)
struct ReportBrowserTests {
    /// Where the test leaves the report and its screenshot: .build/test-output/report-browser.
    static let outputFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/test-output/report-browser")

    @Test func reportOpensWithoutConsoleMessagesDrawsEveryChartAndShowsATranscript() async throws {
        _ = try chromiumPath()
        let (config, _, summary) = try await ReportSweep.shared.get()
        let store = try ResultStore(path: config.storePath)
        let input = try ReportInput.store(store, config: config, source: "config.toml", transcriptsPerPair: 1)
        let html = try HTMLReport.render(input: input, options: ReportOptions(transcriptsPerPair: 1))
        let folder = Self.outputFolder
        try? FileManager.default.removeItem(at: folder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let page = folder.appendingPathComponent("report.html")
        try html.write(to: page, atomically: true, encoding: .utf8)
        let profile = folder.appendingPathComponent("profile")

        // A scenario whose transcripts are embedded: an open-ended answer's reply must show once opened.
        let shown = try #require(
            input.rows.first { row in
                row.judgment.format == .open && row.storeID.flatMap { input.transcripts[$0] } != nil
            })
        let reply = try #require(input.transcripts[shown.storeID!]?.messages.last { $0.role == .assistant })
        let scenarioID = shown.judgment.scenarioID
        let hash = "#scenario=" + (scenarioID.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
        let opened = try runChromium(["--dump-dom"], url: page.absoluteString + hash, profile: profile)
        let dom = opened.stdout

        // Nothing on the console at any level, and no error caught by the page.
        let console = opened.stderr.split(separator: "\n").filter { $0.contains(":CONSOLE") }
        #expect(console.isEmpty, "console messages: \(console.joined(separator: "\n"))")
        #expect(dom.contains("data-ready-ms="), "the page's script did not finish")
        #expect(dom.contains("<output id=\"page-errors\" hidden=\"\"></output>"), "the page recorded errors")

        // Every chart is an svg with a drawn mark; the charts show the fitted values.
        let svgs = svgElements(dom)
        #expect(svgs.count == svgElements(html).count)
        for svg in svgs { #expect(hasDrawing(svg), "empty chart: \(svg.prefix(160))") }
        let ranking = try #require(summary.report.rankings.first { $0.condition == "default" && $0.format == .open })
        let chart = try #require(svgs.first { $0.contains("id=\"bt-\(ranking.model)-\(ranking.valueSet)\"") })
        for value in ranking.values {
            let mark = chartMarks(chart).first {
                $0["data-row"] == value.value && $0["data-format"] == "open" && $0["data-condition"] == "default"
            }
            #expect(mark.flatMap { Double($0["data-value"] ?? "") } == reportNumber(value.score))
        }

        // The drill-down opened the scenario of the URL and shows its transcript.
        let articleStart = try #require(dom.range(of: "data-scenario=\"\(scenarioID)\""), "scenario not opened")
        let article = String(dom[articleStart.lowerBound...])
        #expect(article.contains("class=\"transcript\""))
        let escapedReply = reply.content.replacingOccurrences(of: "&", with: "&amp;")
            .replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        #expect(article.contains(escapedReply), "the reply is not in the opened scenario")
        #expect(dom.contains("class=\"list\""))
        #expect(dom.contains("<a href=\"#scenario="), "the scenario list was not drawn")

        // A screenshot of the first screen, kept with the report.
        let screenshot = folder.appendingPathComponent("report.png")
        _ = try runChromium(
            ["--screenshot=\(screenshot.path)", "--window-size=1280,1600", "--hide-scrollbars"],
            url: page.absoluteString, profile: profile)
        let size = (try? FileManager.default.attributesOfItem(atPath: screenshot.path)[.size] as? Int) ?? 0
        #expect(size > 10_000, "screenshot \(screenshot.path) has \(size) bytes")
    }

    /// `run --serve PORT`: the live page, opened in the browser while the sweep runs, shows every stage's
    /// progress against the plan, with nothing on the console.
    @Test func theLivePageOfARunningSweepShowsItsProgress() async throws {
        _ = try chromiumPath()
        let folder = Self.outputFolder.deletingLastPathComponent().appendingPathComponent("live-view")
        try? FileManager.default.removeItem(at: folder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let config = try repositoryConfigText()
            .replacingOccurrences(
                of: "scenarios_per_pair = { hhh = 40, personal_protective = 30, model_spec = 16 }",
                with: "scenarios_per_pair = { hhh = 4, personal_protective = 0, model_spec = 0 }"
            )
            // A rate limit that does not slow the sweep, so that the page has rate-limit use to show.
            .replacingOccurrences(of: "concurrency = 64", with: "concurrency = 4\nlatency_ms = 250\nrpm = 6000")
            .replacingOccurrences(of: "store = \"results/default.sqlite\"", with: "store = \"live.sqlite\"")
        let configPath = folder.appendingPathComponent("config.toml").path
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        let port = 8797
        let run = Process()
        run.executableURL = Bundle.module.bundleURL.deletingLastPathComponent().appendingPathComponent("conflictscope")
        run.arguments = ["run", "--config", configPath, "--serve", "\(port)"]
        run.standardOutput = FileHandle.nullDevice
        run.standardError = FileHandle.nullDevice
        try run.run()
        defer { if run.isRunning { run.terminate() } }

        // The page while calls are still being made (a sweep of about 600 calls at 250 ms, 4 at a time).
        var page: BrowserResult?
        for _ in 0..<40 where run.isRunning {
            // A short virtual-time budget (the last one given wins): the page reloads itself every 2 s, and
            // the default budget would follow reloads past the sweep's end.
            let opened = try runChromium(
                ["--dump-dom", "--virtual-time-budget=500"], url: "http://127.0.0.1:\(port)/",
                profile: folder.appendingPathComponent("profile"), timeout: 60)
            if opened.stdout.contains("id=\"stages\"") {
                page = opened
                break
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        let opened = try #require(page, "the live page never answered while the sweep ran")
        let console = opened.stderr.split(separator: "\n").filter { $0.contains(":CONSOLE") }
        #expect(console.isEmpty, "console messages: \(console.joined(separator: "\n"))")
        for stage in ["generation", "filter", "multiple_choice", "open_ended", "judge"] {
            #expect(opened.stdout.contains("data-stage=\"\(stage)\""), "no row for \(stage)")
        }
        #expect(opened.stdout.contains("of at most 600 calls"), "\(opened.stdout.prefix(800))")
        #expect(opened.stdout.contains("http-equiv=\"refresh\""), "a running sweep's page reloads itself")
        #expect(opened.stdout.contains("<table id=\"rate-limits\">"), "no rate-limit use on the live page")
        #expect(opened.stdout.contains("of 6000 ("), "the requests per minute are shown against the limit")
        while run.isRunning { try await Task.sleep(for: .milliseconds(200)) }
        #expect(run.terminationStatus == 0)
    }
}
