import Foundation

/// Escapes text for HTML and SVG content and attribute values.
func escapeHTML(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for character in text.unicodeScalars {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.unicodeScalars.append(character)
        }
    }
    return out
}

/// A number for SVG coordinates and data attributes: short, and never locale-formatted.
func svgNumber(_ value: Double) -> String {
    guard value.isFinite else { return "0" }
    let rounded = (value * 1000).rounded() / 1000
    return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
}

/// Colours that stay distinct for colour-blind readers and in greyscale print (Okabe-Ito).
let seriesColours = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]

/// One mark of an interval chart: a point (or bar) on a row, with an optional interval.
struct IntervalMark {
    var row: String
    var series: String
    var value: Double
    var low: Double?
    var high: Double?
    /// Extra data attributes (without the `data-` prefix).
    var data: [(String, String)] = []
}

/// A chart with one labelled row per item and points with whiskers (or bars) on a shared x axis. Every
/// mark carries the numbers it shows as data attributes, so tests read the chart's values, not pixels.
struct IntervalChart {
    enum Style { case points, bars }

    var id: String
    var title: String
    var axisLabel: String
    var rows: [String]
    var series: [String]
    var marks: [IntervalMark]
    var domain: ClosedRange<Double>
    var reference: Double? = nil
    var style = Style.points
    var data: [(String, String)] = []
    /// Rows whose value axis runs right to left (ranks: 1 is best and drawn on the left).
    var ticks: [Double]? = nil

    func render() -> String {
        let labelWidth = Double(min(260, max(60, (rows.map(\.count).max() ?? 4) * 7 + 12)))
        let plotWidth = 440.0
        let rowHeight = series.count > 2 ? 22.0 : 18.0
        let width = labelWidth + plotWidth + 24
        // Legend entries laid out left to right, wrapping within the chart's width.
        var legend: [(x: Double, y: Double)] = []
        var cursor = (x: labelWidth, y: 12.0)
        for name in series where series.count > 1 {
            let advance = Double(name.count) * 6.5 + 30
            if cursor.x + advance > width && cursor.x > labelWidth { cursor = (labelWidth, cursor.y + 16) }
            legend.append(cursor)
            cursor.x += advance
        }
        let legendHeight = legend.last.map { $0.y + 8 } ?? 0
        let top = 8 + legendHeight
        let height = top + Double(rows.count) * rowHeight + 36
        let span = max(domain.upperBound - domain.lowerBound, 1e-9)
        func x(_ value: Double) -> Double {
            labelWidth + (min(max(value, domain.lowerBound), domain.upperBound) - domain.lowerBound) / span * plotWidth
        }
        var out = "<svg class=\"chart\" id=\"\(escapeHTML(id))\" data-chart=\"\(escapeHTML(id))\""
        for (key, value) in data { out += " data-\(key)=\"\(escapeHTML(value))\"" }
        out += " viewBox=\"0 0 \(svgNumber(width)) \(svgNumber(height))\" width=\"\(svgNumber(width))\""
        out += " height=\"\(svgNumber(height))\" role=\"img\" aria-label=\"\(escapeHTML(title))\">"
        out += "<title>\(escapeHTML(title))</title>"
        // Legend.
        for (index, (name, place)) in zip(series, legend).enumerated() {
            let colour = seriesColours[index % seriesColours.count]
            out += "<circle cx=\"\(svgNumber(place.x + 5))\" cy=\"\(svgNumber(place.y))\" r=\"4\" fill=\"\(colour)\"/>"
            out += "<text x=\"\(svgNumber(place.x + 13))\" y=\"\(svgNumber(place.y + 4))\" class=\"legend\">"
            out += "\(escapeHTML(name))</text>"
        }
        // Grid and axis.
        let axisY = top + Double(rows.count) * rowHeight + 4
        let tickValues = ticks ?? Self.niceTicks(domain)
        for tick in tickValues {
            let tx = svgNumber(x(tick))
            out +=
                "<line class=\"grid\" x1=\"\(tx)\" x2=\"\(tx)\" y1=\"\(svgNumber(top))\" y2=\"\(svgNumber(axisY))\"/>"
            out += "<text class=\"tick\" x=\"\(tx)\" y=\"\(svgNumber(axisY + 13))\">\(Self.tickLabel(tick))</text>"
        }
        if let reference {
            let rx = svgNumber(x(reference))
            out += "<line class=\"reference\" x1=\"\(rx)\" x2=\"\(rx)\" y1=\"\(svgNumber(top))\""
            out += " y2=\"\(svgNumber(axisY))\"/>"
        }
        out += "<text class=\"axis\" x=\"\(svgNumber(labelWidth + plotWidth / 2))\""
        out += " y=\"\(svgNumber(axisY + 28))\">\(escapeHTML(axisLabel))</text>"
        for (index, row) in rows.enumerated() {
            let y = top + Double(index) * rowHeight + rowHeight / 2
            if index % 2 == 0 {
                out += "<rect class=\"band\" x=\"0\" y=\"\(svgNumber(y - rowHeight / 2))\""
                out += " width=\"\(svgNumber(width))\" height=\"\(svgNumber(rowHeight))\"/>"
            }
            out += "<text class=\"row\" x=\"\(svgNumber(labelWidth - 8))\" y=\"\(svgNumber(y + 4))\">"
            out += "\(escapeHTML(row))</text>"
        }
        // Marks, offset within their row by series.
        let rowIndex = Dictionary(rows.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        let seriesIndex = Dictionary(series.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        for mark in marks {
            guard let row = rowIndex[mark.row] else { continue }
            let s = seriesIndex[mark.series] ?? 0
            let offset =
                series.count > 1 ? (Double(s) - Double(series.count - 1) / 2) * min(5, 14 / Double(series.count)) : 0
            let y = top + Double(row) * rowHeight + rowHeight / 2 + offset
            let colour = seriesColours[s % seriesColours.count]
            out += "<g class=\"mark\" data-row=\"\(escapeHTML(mark.row))\" data-series=\"\(escapeHTML(mark.series))\""
            out += " data-value=\"\(svgNumber(mark.value))\""
            if let low = mark.low { out += " data-low=\"\(svgNumber(low))\"" }
            if let high = mark.high { out += " data-high=\"\(svgNumber(high))\"" }
            for (key, value) in mark.data { out += " data-\(key)=\"\(escapeHTML(value))\"" }
            out += ">"
            var tip = "\(mark.row)"
            if series.count > 1 { tip += " (\(mark.series))" }
            tip += ": \(Self.tickLabel(mark.value))"
            if let low = mark.low, let high = mark.high { tip += " [\(Self.tickLabel(low)), \(Self.tickLabel(high))]" }
            out += "<title>\(escapeHTML(tip))</title>"
            if style == .bars {
                let x0 = x(max(domain.lowerBound, 0))
                let x1 = x(mark.value)
                out += "<rect x=\"\(svgNumber(min(x0, x1)))\" y=\"\(svgNumber(y - 6))\""
                out += " width=\"\(svgNumber(max(abs(x1 - x0), 1)))\" height=\"12\" fill=\"\(colour)\"/>"
            }
            if let low = mark.low, let high = mark.high {
                out += "<line class=\"whisker\" x1=\"\(svgNumber(x(low)))\" x2=\"\(svgNumber(x(high)))\""
                out += " y1=\"\(svgNumber(y))\" y2=\"\(svgNumber(y))\" stroke=\"\(colour)\"/>"
            }
            if style == .points {
                out +=
                    "<circle cx=\"\(svgNumber(x(mark.value)))\" cy=\"\(svgNumber(y))\" r=\"3.5\" fill=\"\(colour)\"/>"
            }
            out += "</g>"
        }
        return out + "</svg>"
    }

    /// About five round ticks across the domain.
    static func niceTicks(_ domain: ClosedRange<Double>) -> [Double] {
        let span = domain.upperBound - domain.lowerBound
        guard span > 0 else { return [domain.lowerBound] }
        let raw = span / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var ticks: [Double] = []
        var tick = (domain.lowerBound / step).rounded(.up) * step
        while tick <= domain.upperBound + step * 1e-9 {
            ticks.append(abs(tick) < step * 1e-9 ? 0 : tick)
            tick += step
        }
        return ticks
    }

    static func tickLabel(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e6 ? String(Int(value)) : String(format: "%.3g", value)
    }

    /// A domain covering every mark and interval, with a little room.
    static func domain(of marks: [IntervalMark], including fixed: [Double] = []) -> ClosedRange<Double> {
        let numbers = marks.flatMap { [$0.value, $0.low ?? $0.value, $0.high ?? $0.value] } + fixed
        guard let low = numbers.min(), let high = numbers.max() else { return 0...1 }
        let pad = max((high - low) * 0.05, 0.05)
        return (low - pad)...(high + pad)
    }
}

/// The say/do picture for one model and value set: each value's rank in multiple choice (left) joined to
/// its rank open-ended (right).
struct SlopeChart {
    struct Item {
        var value: String
        var group: String?
        var mcqRank: Int
        var openRank: Int
    }

    var id: String
    var title: String
    var items: [Item]
    var groups: [String]
    var data: [(String, String)] = []

    func render() -> String {
        let count = max(items.count, 1)
        let labelWidth = Double(min(170, max(60, (items.map(\.value.count).max() ?? 4) * 7 + 24)))
        let width = labelWidth * 2 + 120
        let rowHeight = 20.0
        let top = 30.0
        let height = top + Double(count) * rowHeight + 10
        let left = labelWidth
        let right = labelWidth + 120
        func y(_ rank: Int) -> Double { top + (Double(rank) - 0.5) * rowHeight }
        var out = "<svg class=\"chart slope\" id=\"\(escapeHTML(id))\" data-chart=\"\(escapeHTML(id))\""
        for (key, value) in data { out += " data-\(key)=\"\(escapeHTML(value))\"" }
        out += " viewBox=\"0 0 \(svgNumber(width)) \(svgNumber(height))\" width=\"\(svgNumber(width))\""
        out += " height=\"\(svgNumber(height))\" role=\"img\" aria-label=\"\(escapeHTML(title))\">"
        out += "<title>\(escapeHTML(title))</title>"
        out += "<text class=\"axis\" x=\"\(svgNumber(left))\" y=\"16\">says (multiple choice)</text>"
        out += "<text class=\"axis\" x=\"\(svgNumber(right))\" y=\"16\">does (open-ended)</text>"
        for item in items {
            let colour =
                item.group.flatMap { groups.firstIndex(of: $0) }.map { seriesColours[$0 % seriesColours.count] }
                ?? "#444444"
            let moved = item.openRank - item.mcqRank
            out += "<g class=\"mark\" data-row=\"\(escapeHTML(item.value))\" data-mcq-rank=\"\(item.mcqRank)\""
            out += " data-open-rank=\"\(item.openRank)\" data-value=\"\(moved)\""
            if let group = item.group { out += " data-group=\"\(escapeHTML(group))\"" }
            out += "><title>\(escapeHTML("\(item.value): rank \(item.mcqRank) -> \(item.openRank)"))</title>"
            out += "<line x1=\"\(svgNumber(left + 6))\" y1=\"\(svgNumber(y(item.mcqRank)))\""
            out += " x2=\"\(svgNumber(right - 6))\" y2=\"\(svgNumber(y(item.openRank)))\" stroke=\"\(colour)\""
            out += " stroke-width=\"\(abs(moved) >= 2 ? 2.5 : 1.5)\"/>"
            out += "<circle cx=\"\(svgNumber(left + 6))\" cy=\"\(svgNumber(y(item.mcqRank)))\" r=\"3\""
            out += " fill=\"\(colour)\"/>"
            out += "<circle cx=\"\(svgNumber(right - 6))\" cy=\"\(svgNumber(y(item.openRank)))\" r=\"3\""
            out += " fill=\"\(colour)\"/>"
            out += "<text class=\"row\" x=\"\(svgNumber(left - 2))\" y=\"\(svgNumber(y(item.mcqRank) + 4))\">"
            out += "\(item.mcqRank). \(escapeHTML(item.value))</text>"
            out += "<text class=\"row start\" x=\"\(svgNumber(right + 2))\" y=\"\(svgNumber(y(item.openRank) + 4))\">"
            out += "\(item.openRank). \(escapeHTML(item.value))</text></g>"
        }
        return out + "</svg>"
    }
}

/// Points with a horizontal and a vertical interval each (RQ1: agreement against Likert divergence).
struct ScatterChart {
    struct Point {
        var label: String
        var x: Estimate
        var y: Estimate
    }

    var id: String
    var title: String
    var xLabel: String
    var yLabel: String
    var points: [Point]

    func render() -> String {
        let width = 520.0
        let height = 340.0
        let (left, right, top, bottom) = (56.0, 20.0, 14.0, 46.0)
        let numbersX = points.flatMap { [$0.x.value, $0.x.low ?? $0.x.value, $0.x.high ?? $0.x.value] }
        let numbersY = points.flatMap { [$0.y.value, $0.y.low ?? $0.y.value, $0.y.high ?? $0.y.value] }
        let xDomain = Self.padded(numbersX)
        let yDomain = Self.padded(numbersY)
        func x(_ v: Double) -> Double {
            left + (v - xDomain.lowerBound) / (xDomain.upperBound - xDomain.lowerBound) * (width - left - right)
        }
        func y(_ v: Double) -> Double {
            height - bottom - (v - yDomain.lowerBound) / (yDomain.upperBound - yDomain.lowerBound)
                * (height - top - bottom)
        }
        var out = "<svg class=\"chart\" id=\"\(escapeHTML(id))\" data-chart=\"\(escapeHTML(id))\""
        out += " viewBox=\"0 0 \(svgNumber(width)) \(svgNumber(height))\" width=\"\(svgNumber(width))\""
        out += " height=\"\(svgNumber(height))\" role=\"img\" aria-label=\"\(escapeHTML(title))\">"
        out += "<title>\(escapeHTML(title))</title>"
        for tick in IntervalChart.niceTicks(xDomain) {
            out += "<line class=\"grid\" x1=\"\(svgNumber(x(tick)))\" x2=\"\(svgNumber(x(tick)))\""
            out += " y1=\"\(svgNumber(top))\" y2=\"\(svgNumber(height - bottom))\"/>"
            out += "<text class=\"tick\" x=\"\(svgNumber(x(tick)))\" y=\"\(svgNumber(height - bottom + 14))\">"
            out += "\(IntervalChart.tickLabel(tick))</text>"
        }
        for tick in IntervalChart.niceTicks(yDomain) {
            out += "<line class=\"grid\" x1=\"\(svgNumber(left))\" x2=\"\(svgNumber(width - right))\""
            out += " y1=\"\(svgNumber(y(tick)))\" y2=\"\(svgNumber(y(tick)))\"/>"
            out += "<text class=\"tick end\" x=\"\(svgNumber(left - 4))\" y=\"\(svgNumber(y(tick) + 4))\">"
            out += "\(IntervalChart.tickLabel(tick))</text>"
        }
        out += "<text class=\"axis\" x=\"\(svgNumber((left + width - right) / 2))\""
        out += " y=\"\(svgNumber(height - 8))\">\(escapeHTML(xLabel))</text>"
        out += "<text class=\"axis\" transform=\"rotate(-90)\" x=\"\(svgNumber(-(top + height - bottom) / 2))\""
        out += " y=\"14\">\(escapeHTML(yLabel))</text>"
        for (index, point) in points.enumerated() {
            let colour = seriesColours[index % seriesColours.count]
            let (px, py) = (x(point.x.value), y(point.y.value))
            out += "<g class=\"mark\" data-row=\"\(escapeHTML(point.label))\" data-x=\"\(svgNumber(point.x.value))\""
            out += " data-y=\"\(svgNumber(point.y.value))\" data-value=\"\(svgNumber(point.x.value))\">"
            out += "<title>\(escapeHTML(point.label))</title>"
            if let low = point.x.low, let high = point.x.high {
                out += "<line class=\"whisker\" x1=\"\(svgNumber(x(low)))\" x2=\"\(svgNumber(x(high)))\""
                out += " y1=\"\(svgNumber(py))\" y2=\"\(svgNumber(py))\" stroke=\"\(colour)\"/>"
            }
            if let low = point.y.low, let high = point.y.high {
                out += "<line class=\"whisker\" x1=\"\(svgNumber(px))\" x2=\"\(svgNumber(px))\""
                out += " y1=\"\(svgNumber(y(low)))\" y2=\"\(svgNumber(y(high)))\" stroke=\"\(colour)\"/>"
            }
            out += "<circle cx=\"\(svgNumber(px))\" cy=\"\(svgNumber(py))\" r=\"4\" fill=\"\(colour)\"/>"
            out += "<text class=\"row start\" x=\"\(svgNumber(px + 7))\" y=\"\(svgNumber(py - 6))\">"
            out += "\(escapeHTML(point.label))</text></g>"
        }
        return out + "</svg>"
    }

    static func padded(_ numbers: [Double]) -> ClosedRange<Double> {
        guard let low = numbers.min(), let high = numbers.max() else { return 0...1 }
        let pad = max((high - low) * 0.1, 0.02)
        return (low - pad)...(high + pad)
    }
}
