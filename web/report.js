// report.js: draws the HTML report from the JSON inlined in the file
// (report.Charts). Offline: everything it needs is in the page.
(function () {
  "use strict";
  const B = window.BarrageCharts;
  const el = B.el;
  const data = JSON.parse(document.getElementById("barrage-data").textContent);
  const rep = data.report || {};
  const $ = id => document.getElementById(id);

  $("target").textContent = rep.target || "";
  const outcome = $("outcome");
  outcome.textContent = rep.outcome || "completed";
  outcome.className = "badge " + (rep.outcome && rep.outcome !== "completed" ? "failed" : "finished");
  $("generated").textContent = data.generated ? "written " + data.generated : "";
  const v = $("verdict");
  v.textContent = rep.valid ? "VALID: the generator kept its schedule and connections" : "NOT VALID: " + (rep.invalid_reasons || []).join("; ");
  v.className = "verdict " + (rep.valid ? "valid" : "invalid");

  function tile(key, label, value, sub) {
    const t = el("div", { class: "tile", "data-key": key });
    t.appendChild(el("div", { class: "k" }, label));
    const vv = el("div", { class: "v", id: "total-" + key, "data-value": value == null ? "" : String(value) }, typeof value === "number" ? B.fmtNum(value) : (value == null ? "–" : String(value)));
    t.appendChild(vv);
    if (sub) t.appendChild(el("div", { class: "s" }, sub));
    $("tiles").appendChild(t);
  }
  tile("requests", "responses", rep.requests);
  tile("sent", "requests sent", rep.sent);
  tile("errors", "errors", rep.errors, rep.http_errors ? rep.http_errors + " with an error status" : "");
  tile("rps", "req/s", Math.round(rep.rps || 0), rep.model === "open" ? "target " + B.fmtNum(rep.target_rate) + "/s" : "closed model");
  tile("duration", "duration", B.fmtSec(rep.duration_seconds), "planned " + B.fmtSec(rep.planned_seconds));
  tile("connections", "connections", rep.connections, "pipeline " + rep.pipeline);
  tile("failed", "failed / unfinished", (rep.failed || 0) + " / " + (rep.unfinished || 0));
  if (rep.generator_loop_busy != null) tile("loop_busy", "loops busy", Math.round(100 * rep.generator_loop_busy) + "%");
  if (rep.censored) tile("censored", "censored latencies", rep.censored);

  function table(parent, head, rows, cls) {
    const t = el("table", cls ? { class: cls } : null);
    const tr = el("tr");
    head.forEach((h, i) => tr.appendChild(el("th", i === 0 ? { class: "l" } : null, h)));
    t.appendChild(tr);
    for (const r of rows) {
      const row = el("tr", r.cls ? { class: r.cls } : null);
      (r.cells || r).forEach((c, i) => row.appendChild(el("td", i === 0 ? { class: "l" } : null, c == null ? "" : String(c))));
      t.appendChild(row);
    }
    parent.appendChild(t);
    return t;
  }
  const lat = [["latency", rep.latency_us], ["service time", rep.service_time_us], ["CO-corrected", rep.corrected_latency_us], ["send lateness", rep.send_lateness_us]]
    .filter(x => x[1]).map(([k, l]) => [k, B.fmtUs(l.min), B.fmtUs(l.p50), B.fmtUs(l.p90), B.fmtUs(l.p99), B.fmtUs(l.p999), B.fmtUs(l.p9999), B.fmtUs(l.max), B.fmtNum(l.count)]);
  table($("latency-table"), ["", "min", "p50", "p90", "p99", "p99.9", "p99.99", "max", "count"], lat);

  const hasSamples = data.samples && data.samples.length > 0;
  const charts = B.create($("charts"), {
    model: rep.model, errorKinds: hasSamples ? data.error_kinds : ["errors (all kinds)"],
    statusClasses: hasSamples ? data.status_classes : [], live: false,
  });
  charts.setEvents(rep.events || []);
  charts.setSamples(hasSamples ? data.samples : B.fromTimeline(rep.timeline));
  charts.setSpectrum(data.spectrum);

  const sec = $("sections");
  function section(title, id) {
    const s = el("section", { id: id });
    s.appendChild(el("h2", null, title));
    sec.appendChild(s);
    return s;
  }
  const codes = Object.keys(rep.status || {}).sort();
  if (codes.length) table(section("Status codes", "status"), ["code", "responses"], codes.map(c => [c, B.fmtNum(rep.status[c])]));
  const kinds = Object.keys(rep.error_kinds || {});
  if (kinds.length) table(section("Errors by kind", "error-kinds"), ["kind", "count"], kinds.map(k => [k, B.fmtNum(rep.error_kinds[k])]));
  if (rep.steps && rep.steps.length) {
    table(section("Steps", "steps"), ["step", "label", "start", "duration", "sent", "responses", "req/s", "target", "errors", "p50", "p99", "p99.9", "note"],
      rep.steps.map(s => [s.step, s.label, B.fmtSec(s.start_seconds), B.fmtSec(s.duration_seconds), B.fmtNum(s.sent), B.fmtNum(s.requests), B.fmtNum(s.rps),
        rep.model === "open" ? B.fmtNum(s.target_rate) : "–", B.fmtNum(s.errors),
        s.latency_us ? B.fmtUs(s.latency_us.p50) : "", s.latency_us ? B.fmtUs(s.latency_us.p99) : "", s.latency_us ? B.fmtUs(s.latency_us.p999) : "", s.note || ""]));
  }
  if (rep.agents && rep.agents.length) {
    table(section("Agents", "agents"), ["agent", "host", "budget", "responses", "req/s", "p99", "errors", "loops busy", "intervals", "status"],
      rep.agents.map(a => ({
        cls: a.lost ? "lost" : "", cells: [a.name, a.host || "", a.budget || "", B.fmtNum(a.requests), B.fmtNum(a.rps), B.fmtUs(a.p99_us), B.fmtNum(a.errors),
          a.loop_busy != null ? Math.round(100 * a.loop_busy) + "%" : "", a.intervals_received + "/" + a.intervals_expected, a.status],
      })));
  }
  if (rep.thresholds && rep.thresholds.length) {
    table(section("Thresholds", "thresholds"), ["threshold", "value", "result", "per step"],
      rep.thresholds.map(t => ({
        cls: t.ok ? "" : "fail",
        cells: [t.expr, t.value_text, t.ok ? "pass" : t.aborted ? "FAIL (stopped the test: " + t.aborted + ")" : "FAIL",
          (t.steps || []).map(x => x.step + ": " + x.value_text + (x.ok ? "" : " ✗")).join(", ")],
      })));
  }
  if (rep.retries) {
    const r = rep.retries, kv = m => Object.keys(m || {}).filter(k => m[k]).map(k => k + " " + B.fmtNum(m[k])).join(", ") || "none";
    const e = r.end_to_end_us;
    table(section("Retries", "retries"), ["what", "value"], [
      ["requests (first sends)", B.fmtNum(r.logical)], ["attempts", B.fmtNum(r.attempts)], ["retries", B.fmtNum(r.retries)],
      ["retries by cause", kv(r.by_cause)], ["succeeded only after a retry", B.fmtNum(r.succeeded_after_retry)],
      ["exhausted (last attempt failed)", B.fmtNum(r.exhausted)], ["not retried", kv(r.dropped)],
      ["end to end (with backoff) p50 / p99 / p99.9", e ? [e.p50, e.p99, e.p999].map(B.fmtUs).join(" / ") : "–"],
    ]);
  }
  if (rep.by_request && rep.by_request.length) {
    table(section("By request name", "by-request"), ["request", "method", "path", "share", "sent", "responses", "errors", "req/s", "p50", "p99", "p99.9"],
      rep.by_request.map(r => [r.name, r.method, r.path, (100 * r.sent_share).toFixed(1) + "%", B.fmtNum(r.sent), B.fmtNum(r.requests), B.fmtNum(r.errors), B.fmtNum(r.rps),
        r.latency_us ? B.fmtUs(r.latency_us.p50) : "", r.latency_us ? B.fmtUs(r.latency_us.p99) : "", r.latency_us ? B.fmtUs(r.latency_us.p999) : ""]));
  }
  if (rep.events && rep.events.length) {
    const s = section("Events", "events");
    const ul = el("ul", { class: "events" });
    for (const e of rep.events) ul.appendChild(el("li", null, B.fmtSec(e.at_seconds) + " " + e.kind + ": " + e.text));
    s.appendChild(ul);
  }
  // Any other list of rows the JSON carries: drawn as a table, titled by
  // its key.
  const known = new Set(["steps", "timeline", "agents", "events", "invalid_reasons", "notes", "thresholds", "by_request", "retries"]);
  function rowsTable(title, id, rows) {
    const keys = [];
    for (const r of rows) for (const k of Object.keys(r)) if (!keys.includes(k)) keys.push(k);
    const cell = x => (x == null ? "" : typeof x === "object" ? JSON.stringify(x) : typeof x === "number" ? B.fmtNum(x) : String(x));
    table(section(title, id), keys, rows.map(r => {
      const failed = r.passed === false || r.ok === false || r.pass === false || r.status === "fail" || r.failed === true;
      return { cls: failed ? "fail" : "", cells: keys.map(k => cell(r[k])) };
    }));
  }
  function asRows(v) {
    if (Array.isArray(v) && v.length && v.every(x => x && typeof x === "object" && !Array.isArray(x))) return v;
    if (v && typeof v === "object" && !Array.isArray(v)) {
      const ks = Object.keys(v);
      if (ks.length && ks.every(k => v[k] && typeof v[k] === "object" && !Array.isArray(v[k]))) return ks.map(k => Object.assign({ name: k }, v[k]));
    }
    return null;
  }
  for (const k of Object.keys(rep)) {
    if (known.has(k)) continue;
    const rows = asRows(rep[k]);
    if (!rows || /_us$/.test(k)) continue;
    rowsTable(k.replace(/_/g, " "), "extra-" + k, rows);
  }
  for (const [k, title] of [["invalid_reasons", "Why the run is not valid"], ["notes", "Notes"]]) {
    if (rep[k] && rep[k].length) {
      const s = section(title, k);
      const ul = el("ul");
      for (const n of rep[k]) ul.appendChild(el("li", null, n));
      s.appendChild(ul);
    }
  }
  window.barrageReport = { data, rendered: true, plots: charts.charts };
})();
