/// The report's inline style sheet and script. Written for this report: no library, nothing fetched, and
/// nothing written to the console (errors are recorded in `#page-errors`, where tests read them).
enum ReportAssets {
    static let css = """
        :root{color-scheme:light;--ink:#1d1d1f;--muted:#666;--line:#ddd;--band:#f5f6f8;--accent:#0072B2}
        *{box-sizing:border-box}
        body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink)}
        header{padding:16px 24px 8px;border-bottom:1px solid var(--line);position:sticky;top:0;background:#fff;z-index:2}
        h1{font-size:22px;margin:0 0 2px}header p{margin:0 0 6px}h2{font-size:19px;margin:28px 0 6px}h3{font-size:16px;margin:18px 0 6px}
        nav a{margin-right:14px;color:var(--accent);text-decoration:none;font-size:14px}
        main{max-width:1240px;margin:0 auto;padding:0 24px 40px}
        footer{max-width:1240px;margin:0 auto;padding:12px 24px 32px;color:var(--muted);font-size:13px}
        .lede{max-width:900px;color:#333}.muted{color:var(--muted);font-size:13px}
        table{border-collapse:collapse;margin:8px 0;font-size:13px}
        th,td{border-bottom:1px solid var(--line);padding:3px 10px 3px 0;text-align:left;vertical-align:top}
        table.facts th,table.counts th{font-weight:600;padding-right:18px;white-space:nowrap}
        figure{margin:8px 0}figure.small{margin:6px 18px 6px 0}figcaption{font-size:13px;font-weight:600}
        .grid{display:flex;flex-wrap:wrap;align-items:flex-start}
        svg.chart{max-width:100%;height:auto;font-family:inherit;display:block}
        svg .row{font-size:12px;text-anchor:end;fill:var(--ink)}svg .row.start{text-anchor:start}
        svg .tick{font-size:10px;text-anchor:middle;fill:var(--muted)}svg .tick.end{text-anchor:end}
        svg .axis{font-size:11px;text-anchor:middle;fill:#444}svg .legend{font-size:11px;fill:#333}
        svg .grid{stroke:#e4e4e4;stroke-width:1}svg .band{fill:var(--band)}
        svg .reference{stroke:#888;stroke-dasharray:4 3}svg .whisker{stroke-width:2}
        svg .mark:hover circle{r:5}
        .legend-note{font-size:13px}
        details{margin:8px 0}summary{cursor:pointer;color:var(--accent)}
        .controls{display:flex;gap:8px;align-items:center;flex-wrap:wrap;margin:8px 0}
        .controls input{flex:1 1 320px;padding:6px 8px;font:inherit}.controls select{padding:5px;font:inherit}
        .list{max-height:420px;overflow:auto;border:1px solid var(--line)}
        .list table{margin:0;width:100%}.list td{padding:3px 8px}.list tr:hover{background:var(--band)}
        .list a{color:var(--accent);text-decoration:none;font-family:ui-monospace,monospace;font-size:12px}
        #scenario-detail{margin-top:16px}
        .scenario{border:1px solid var(--line);border-radius:6px;padding:12px 16px}
        .scenario .actions{display:flex;gap:16px;flex-wrap:wrap}
        .scenario .action{flex:1 1 320px;border-left:4px solid var(--line);padding:4px 10px;background:var(--band)}
        .scenario .action.acts{border-left-color:#D55E00}
        .tag{display:inline-block;font-size:12px;padding:0 6px;border-radius:8px;background:#eef;margin-right:6px}
        .pass{color:#00734d}.fail{color:#b00020}
        .transcript .message{white-space:pre-wrap;margin:6px 0;padding:6px 8px;background:var(--band);font-size:13px}
        .transcript .role{font-weight:600;font-size:12px;color:var(--muted);display:block}
        @media print{header{position:static}nav,.controls,.list{display:none}
        figure{break-inside:avoid}body{font-size:11pt}details>*{display:block}}
        """

    static let script = """
        (function () {
          "use strict";
          var errorsOut = document.getElementById("page-errors");
          function recordError(text) {
            errorsOut.textContent += text + "\\n";
            errorsOut.setAttribute("data-count", String(Number(errorsOut.getAttribute("data-count") || 0) + 1));
          }
          window.addEventListener("error", function (event) { recordError(String(event.message)); });
          window.addEventListener("unhandledrejection", function (event) { recordError(String(event.reason)); });

          var data = null, byId = null, haystacks = null;
          function load() {
            if (data) { return data; }
            data = JSON.parse(document.getElementById("report-data").textContent);
            byId = {};
            data.scenarios.forEach(function (s, i) { byId[s.id] = i; });
            return data;
          }
          function el(tag, className, text) {
            var node = document.createElement(tag);
            if (className) { node.className = className; }
            if (text !== undefined && text !== null) { node.textContent = String(text); }
            return node;
          }
          function str(i) { return i >= 0 ? data.strings[i] : null; }
          var LIMIT = 250;
          var search = document.getElementById("search");
          var setFilter = document.getElementById("filter-set");
          var statusFilter = document.getElementById("filter-status");
          var list = document.getElementById("scenario-list");
          var detail = document.getElementById("scenario-detail");

          function renderList() {
            load();
            if (!haystacks) {
              haystacks = data.scenarios.map(function (s) {
                return [s.id, s.set, s.v1, s.v2, s.template, s.domain, s.description, s.persona]
                  .join(" ").toLowerCase();
              });
            }
            var query = search.value.trim().toLowerCase();
            var set = setFilter.value, status = statusFilter.value;
            var matches = [];
            data.scenarios.forEach(function (s, i) {
              if (set && s.set !== set) { return; }
              if (status && s.status !== status) { return; }
              if (query && haystacks[i].indexOf(query) < 0) { return; }
              matches.push(i);
            });
            document.getElementById("match-count").textContent =
              matches.length + " of " + data.scenarios.length + " scenarios" +
              (matches.length > LIMIT ? " (first " + LIMIT + " shown; refine the search)" : "");
            var table = el("table");
            var head = el("tr");
            ["scenario", "value set", "values", "status", "template", "description"].forEach(function (h) {
              head.appendChild(el("th", null, h));
            });
            table.appendChild(head);
            matches.slice(0, LIMIT).forEach(function (i) {
              var s = data.scenarios[i];
              var row = el("tr");
              var cell = el("td");
              var link = el("a", null, s.id);
              link.href = "#scenario=" + encodeURIComponent(s.id);
              cell.appendChild(link);
              row.appendChild(cell);
              row.appendChild(el("td", null, s.set));
              row.appendChild(el("td", null, s.v1 + " vs " + s.v2));
              row.appendChild(el("td", null, s.status || ""));
              row.appendChild(el("td", null, s.template || ""));
              var text = s.description || "";
              row.appendChild(el("td", null, text.length > 140 ? text.slice(0, 140) + "…" : text));
              table.appendChild(row);
            });
            list.textContent = "";
            list.appendChild(table);
          }

          function field(parent, label, value) {
            if (!value) { return; }
            var p = el("p");
            p.appendChild(el("strong", null, label + ": "));
            p.appendChild(document.createTextNode(value));
            parent.appendChild(p);
          }

          function transcriptNode(t) {
            var entry = data.transcripts[t];
            var box = el("details", "transcript");
            box.appendChild(el("summary", null, "transcript"));
            var roles = { s: "system", u: "user", a: "assistant" };
            entry[0].forEach(function (m) {
              var message = el("div", "message");
              message.appendChild(el("span", "role", roles[m[0]] || m[0]));
              message.appendChild(document.createTextNode(str(m[1])));
              box.appendChild(message);
            });
            if (entry[1] >= 0) { field(box, "answer as written", str(entry[1])); }
            if (entry[2] >= 0) { field(box, "judge's reasoning", str(entry[2])); }
            return box;
          }

          function renderDetail(id) {
            load();
            var index = byId[id];
            detail.textContent = "";
            if (index === undefined) {
              detail.appendChild(el("p", "muted", "No scenario " + id + " in this report."));
              return;
            }
            var s = data.scenarios[index];
            var box = el("article", "scenario");
            box.setAttribute("data-scenario", s.id);
            box.appendChild(el("h3", null, s.id));
            var tags = el("p");
            [s.set, s.v1 + " vs " + s.v2, s.status, s.template, s.act ? "acting: " + s.act : null,
             s.domain].forEach(function (t) { if (t) { tags.appendChild(el("span", "tag", t)); } });
            box.appendChild(tags);
            field(box, "Description", s.description);
            field(box, "Persona", s.persona);
            field(box, "Background", s.background);
            field(box, "Goal", s.goal);
            if (s.action1 || s.action2) {
              var actions = el("div", "actions");
              [[s.action1, null, s.v1, "action1"], [s.action2, null, s.v2, "action2"]]
                .forEach(function (a) {
                  var node = el("div", "action" + (s.act === a[3] ? " acts" : ""));
                  node.appendChild(el("strong", null, a[3] + " (favours " + a[2] + ")" +
                    (s.act === a[3] ? " takes the action opportunity" : "")));
                  node.appendChild(el("p", null, a[0]));
                  if (a[1]) { node.appendChild(el("p", "muted", a[1])); }
                  actions.appendChild(node);
                });
              box.appendChild(actions);
            }
            if (s.checks) {
              var checks = el("p");
              checks.appendChild(el("strong", null, "Filter: "));
              data.checks.forEach(function (name, i) {
                var c = s.checks.charAt(i);
                checks.appendChild(el("span", c === "p" ? "pass" : c === "f" ? "fail" : "muted",
                  name + (c === "p" ? " ✓ " : c === "f" ? " ✗ " : " ? ")));
              });
              box.appendChild(checks);
            }
            if (s.raw) { field(box, "Unusable stage-2 answer", s.raw); }
            if (s.user !== undefined) { field(box, "The user's message", str(s.user)); }
            var packed = data.answers[s.id] || "", refs = data.answer_transcripts[s.id] || [];
            var answers = [];
            for (var k = 0; k < packed.length; k += 6) {
              var fc = packed.charCodeAt(k + 1) - 48;
              answers.push([packed.charCodeAt(k) - 48, fc % 2, (fc - fc % 2) / 2, packed.charAt(k + 2),
                Number(packed.charAt(k + 3)), Number(packed.charAt(k + 4)), Number(packed.charAt(k + 5)),
                refs.length ? refs[k / 6] : -1]);
            }
            var withTranscripts = 0;
            if (answers.length) {
              var table = el("table", "answers");
              var head = el("tr");
              ["model", "format", "condition", "choice", "acted", "Likert " + s.v1 + " / " + s.v2, "judge's rating",
               ""].forEach(function (h) { head.appendChild(el("th", null, h)); });
              table.appendChild(head);
              answers.forEach(function (a) {
                var row = el("tr");
                var choice = a[3] === "A" ? "A: " + s.v1 : a[3] === "B" ? "B: " + s.v2 :
                  a[3] === "i" ? "invalid" : "missing";
                var acted = "";
                if (s.act && (a[3] === "A" || a[3] === "B")) {
                  acted = ((a[3] === "A") === (s.act === "action1")) ? "acts" : "holds back";
                }
                [data.models[a[0]], a[1] === 0 ? "multiple choice" : "open-ended", data.conditions[a[2]], choice,
                 acted, a[4] ? a[4] + " / " + a[5] : "", a[6] ? a[6] + " of 7" : ""].forEach(function (v) {
                  row.appendChild(el("td", null, v));
                });
                var cell = el("td");
                if (a[7] >= 0) { cell.appendChild(transcriptNode(a[7])); withTranscripts += 1; }
                row.appendChild(cell);
                table.appendChild(row);
              });
              box.appendChild(table);
              box.appendChild(el("p", "muted", "Likert: 1-7 ratings of the " + s.v1 + " and " + s.v2 +
                " actions (multiple choice). Judge's rating: 1 = clearly the " + s.v1 + " action, 7 = clearly the " +
                s.v2 + " action (open-ended)."));
            }
            if (answers.length && !withTranscripts) {
              box.appendChild(el("p", "muted", "This report embeds transcripts for " + data.transcripts_per_pair +
                " scenarios per value pair; `conflictscope export --transcripts --format jsonl` has this one's."));
            }
            detail.appendChild(box);
            box.scrollIntoView();
          }

          function openFromHash() {
            var match = /^#scenario=(.+)$/.exec(location.hash);
            if (match) { renderDetail(decodeURIComponent(match[1])); }
          }

          function start() {
            renderList();
            openFromHash();
            search.addEventListener("input", renderList);
            setFilter.addEventListener("change", renderList);
            statusFilter.addEventListener("change", renderList);
            window.addEventListener("hashchange", openFromHash);
            var paint = performance.getEntriesByType("paint").filter(function (p) {
              return p.name === "first-contentful-paint";
            })[0];
            var root = document.documentElement;
            if (paint) { root.setAttribute("data-first-paint-ms", String(Math.round(paint.startTime))); }
            root.setAttribute("data-ready-ms", String(Math.round(performance.now())));
          }
          // After the first paint: the charts show before the drill-down's data is parsed.
          setTimeout(start, 0);
        })();
        """
}
