// dashboard.js: the live page. It listens to /api/stream (Server-Sent
// Events: a "hello" with everything so far, then one "tick" per merged
// interval, a "status" heartbeat each second, and a "final" with the
// report), and sends controls to /api/control and /api/stop with the
// token the user types (kept in this tab only).
(function () {
  "use strict";
  const B = window.BarrageCharts;
  const el = B.el;
  const $ = id => document.getElementById(id);
  const st = window.barrage = { seq: -1, totals: null, last: null, final: null, hello: false, ticks: 0 };
  let charts = null;
  let events = [];
  let token = sessionStorage.getItem("barrage-token") || "";

  function setV(id, value, text) {
    const e = $(id);
    e.setAttribute("data-value", value == null ? "" : String(value));
    e.textContent = text != null ? text : (value == null ? "–" : B.fmtNum(value));
  }
  function state(s, why) {
    const e = $("state");
    e.textContent = why || s;
    e.className = "badge " + s;
    st.state = s;
  }
  function meta(m) {
    $("kind").textContent = (m.fleet ? "coordinator" : "run") + " · " + m.model + " model";
    $("target").textContent = m.target;
    document.title = "barrage live: " + m.target;
    $("agents-section").hidden = !m.fleet;
    $("controls").hidden = !m.control;
    st.meta = m;
  }
  function totals(t) {
    if (!t) return;
    st.totals = t;
    setV("requests", t.responses);
    $("sent-sub").textContent = B.fmtNum(t.sent) + " sent · " + B.fmtNum(Math.round(t.rps)) + "/s overall";
    setV("errors", t.errors);
    const ks = (st.meta && st.meta.error_kinds) || [];
    $("errors-sub").textContent = (t.error_kinds || []).map((n, i) => (n ? ks[i] + " " + B.fmtNum(n) : "")).filter(Boolean).join(", ") || "none";
    $("clock").textContent = B.fmtSec(t.elapsed) + (st.meta && st.meta.planned_seconds ? " of " + B.fmtSec(st.meta.planned_seconds) : "");
  }
  function last(s) {
    if (!s) return;
    st.last = s;
    st.seq = s.seq;
    $("rate").setAttribute("data-seq", s.seq);
    setV("rate", Math.round(s.rps));
    $("rate-sub").textContent = (s.target_rps ? "target " + B.fmtNum(Math.round(s.target_rps)) + "/s · " : "") + "interval " + (s.seq + 1) + ", step " + s.step;
    setV("p99", s.latency_us ? s.latency_us.p99 : null, s.latency_us ? B.fmtUs(s.latency_us.p99) : "–");
    $("p99-sub").textContent = s.latency_us ? "p50 " + B.fmtUs(s.latency_us.p50) + " · p99.9 " + B.fmtUs(s.latency_us.p999) : "";
    setV("conns", s.conns_open);
    $("conns-sub").textContent = "wanted " + s.conns_wanted + (s.of > 1 ? " · " + s.agents + "/" + s.of + " agents" : "");
    setV("busy", Math.round(100 * s.loop_busy), Math.round(100 * s.loop_busy) + "%");
    $("busy-sub").textContent = s.lateness_us ? "send lateness p99 " + B.fmtUs(s.lateness_us.p99) : "";
  }
  function agents(rows) {
    if (!rows) return;
    const t = $("agents");
    t.textContent = "";
    const head = ["agent", "host", "budget", "status", "responses", "req/s", "errors", "loops busy", "intervals"];
    const tr = el("tr");
    head.forEach((h, i) => tr.appendChild(el("th", i === 0 ? { class: "l" } : null, h)));
    t.appendChild(tr);
    for (const a of rows) {
      const r = el("tr", { class: a.lost ? "lost" : "", "data-agent": a.name });
      [a.name, a.host || "", a.budget || "", a.status, B.fmtNum(a.requests), B.fmtNum(Math.round(a.rps)), B.fmtNum(a.errors),
        a.loop_busy != null ? Math.round(100 * a.loop_busy) + "%" : "", (a.intervals_received || 0) + "/" + (a.intervals_expected || 0)]
        .forEach((c, i) => r.appendChild(el("td", i <= 3 ? { class: "l" } : null, String(c))));
      t.appendChild(r);
    }
  }
  function addEvents(list) {
    for (const e of list || []) {
      events.push(e);
      $("events").appendChild(el("li", { "data-kind": e.kind }, B.fmtSec(e.at_seconds) + " " + e.kind + ": " + e.text));
    }
    if (charts) charts.setEvents(events);
  }
  function final(rep) {
    st.final = rep;
    $("final").hidden = false;
    const v = $("verdict");
    v.textContent = (rep.outcome || "completed") + " · " + (rep.valid ? "VALID" : "NOT VALID: " + (rep.invalid_reasons || []).join("; "));
    v.className = "verdict " + (rep.valid ? "valid" : "invalid");
    const ft = $("final-tiles");
    ft.textContent = "";
    for (const [k, label, val] of [["requests", "responses", rep.requests], ["sent", "sent", rep.sent], ["errors", "errors", rep.errors],
      ["failed", "failed", rep.failed], ["unfinished", "unfinished", rep.unfinished], ["rps", "req/s", rep.rps],
      ["p99", "p99", rep.latency_us ? rep.latency_us.p99 : null]]) {
      const t = el("div", { class: "tile" });
      t.appendChild(el("div", { class: "k" }, label));
      t.appendChild(el("div", { class: "v", id: "final-" + k, "data-value": val == null ? "" : String(val) }, k === "p99" ? B.fmtUs(val) : B.fmtNum(val)));
      ft.appendChild(t);
    }
    state("finished", "finished: " + (rep.outcome || "completed"));
    $("controls").hidden = true;
  }

  function onHello(h) {
    meta(h.meta);
    if (!charts) {
      charts = B.create($("charts"), { model: h.meta.model, errorKinds: h.meta.error_kinds, statusClasses: h.meta.status_classes, live: true, keep: h.meta.keep });
    }
    events = [];
    $("events").textContent = "";
    addEvents(h.events);
    charts.setSamples(h.samples);
    if (h.samples && h.samples.length) last(h.samples[h.samples.length - 1]);
    totals(h.totals);
    charts.setSpectrum(h.spectrum);
    agents(h.agents);
    state(h.state);
    if (h.final) final(h.final);
    st.hello = true;
  }
  function onTick(t) {
    st.ticks++;
    if (t.samples && t.samples.length) {
      charts.addSamples(t.samples);
      last(t.samples[t.samples.length - 1]);
    }
    addEvents(t.events);
    totals(t.totals);
    if (t.spectrum) charts.setSpectrum(t.spectrum);
    agents(t.agents);
    if (t.state && !st.final) state(t.state);
    if (t.final) final(t.final);
  }

  const es = new EventSource("api/stream");
  es.addEventListener("hello", ev => onHello(JSON.parse(ev.data)));
  es.addEventListener("tick", ev => onTick(JSON.parse(ev.data)));
  es.addEventListener("status", ev => {
    const s = JSON.parse(ev.data);
    st.heartbeat = s;
    if (!st.final) state(s.state);
    if (s.elapsed != null) $("clock").textContent = B.fmtSec(s.elapsed) + (st.meta && st.meta.planned_seconds ? " of " + B.fmtSec(st.meta.planned_seconds) : "");
  });
  es.onerror = () => {
    if (st.final) { es.close(); $("link").textContent = "the test has ended"; return; }
    $("link").textContent = "reconnecting…";
  };
  es.onopen = () => { $("link").textContent = ""; };

  // Controls: only with the token printed at start.
  function msg(t, bad) { const m = $("control-msg"); m.textContent = t; m.className = "msg " + (bad ? "fail" : "pass"); }
  function unlocked(on) { $("unlock").hidden = on; $("change").hidden = !on; }
  async function post(path, body) {
    const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token }, body: JSON.stringify(body) });
    let j = {};
    try { j = await r.json(); } catch (e) { }
    if (r.status === 401 || r.status === 403) { unlocked(false); sessionStorage.removeItem("barrage-token"); }
    if (!r.ok) throw new Error(j.error || r.statusText);
    return j;
  }
  $("unlock").addEventListener("submit", async ev => {
    ev.preventDefault();
    token = $("token").value.trim();
    try {
      await post("api/auth", {});
      sessionStorage.setItem("barrage-token", token);
      unlocked(true);
      msg("controls unlocked");
    } catch (e) { msg(e.message, true); }
  });
  $("lock").addEventListener("click", () => { token = ""; sessionStorage.removeItem("barrage-token"); unlocked(false); msg(""); });
  $("change").addEventListener("submit", async ev => {
    ev.preventDefault();
    const body = {};
    if ($("set-rate").value !== "") body.rate = Number($("set-rate").value);
    if ($("set-conns").value !== "") body.connections = Number($("set-conns").value);
    try {
      const r = await post("api/control", body);
      msg("takes effect at " + B.fmtSec(r.at_seconds));
    } catch (e) { msg(e.message, true); }
  });
  $("stop").addEventListener("click", async () => {
    if (!confirm("Stop the test now?")) return;
    try { await post("api/stop", { reason: "stopped from the dashboard" }); msg("stopping"); } catch (e) { msg(e.message, true); }
  });
  if (token) post("api/auth", {}).then(() => unlocked(true), () => unlocked(false));
})();
