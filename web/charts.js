// charts.js: the charts the live dashboard and the HTML report share.
// Both hand it the same JSON (report.Sample, report.Spectrum,
// report.Event), so a chart on the page and in the file cannot disagree.
// It needs uPlot (window.uPlot) and nothing from the network.
(function () {
  "use strict";

  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"];
  const eventColors = { step: "#888", change: "#1f77b4", "agent-lost": "#d62728", rebalance: "#ff7f0e", stop: "#d62728", threshold: "#9467bd", breaker: "#8c564b", degrade: "#e377c2" };

  function fmtUs(v) {
    if (v == null || !isFinite(v)) return "–";
    if (v < 1000) return Math.round(v) + " µs";
    if (v < 1e6) return +(v / 1000).toPrecision(3) + " ms";
    return +(v / 1e6).toPrecision(3) + " s";
  }
  function fmtNum(v) {
    if (v == null || !isFinite(v)) return "–";
    if (Math.abs(v) >= 100 || Number.isInteger(v)) return Math.round(v).toLocaleString("en-US");
    return (+v.toPrecision(3)).toLocaleString("en-US");
  }
  function fmtSec(v) {
    if (v == null) return "–";
    return (+v.toFixed(1)) + " s";
  }
  function fmtPct(p) {
    if (p == null || !isFinite(p)) return "–";
    if (p >= 99) return p.toFixed(Math.min(6, Math.max(1, Math.ceil(-Math.log10(100 - p)) + 1))).replace(/0+$/, "").replace(/\.$/, "") + "%";
    return Math.round(p) + "%";
  }
  // Log scales cannot show 0: a zero latency is drawn as a gap.
  function pos(v) { return v > 0 ? v : null; }

  // eventsPlugin draws the events as vertical markers on a time chart.
  function eventsPlugin(getEvents) {
    return {
      hooks: {
        draw: [function (u) {
          const evs = getEvents();
          if (!evs || !evs.length) return;
          const ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
          ctx.save();
          ctx.setLineDash([4, 3]);
          ctx.lineWidth = 1;
          ctx.font = Math.round(10 * devicePixelRatio) + "px sans-serif";
          for (const e of evs) {
            const x = u.valToPos(e.at_seconds, "x", true);
            if (!(x >= u.bbox.left && x <= u.bbox.left + u.bbox.width)) continue;
            ctx.strokeStyle = eventColors[e.kind] || "#444";
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + h);
            ctx.stroke();
            ctx.fillStyle = ctx.strokeStyle;
            ctx.fillText(e.kind, x + 3, top + 12 * devicePixelRatio);
          }
          ctx.restore();
        }],
      },
    };
  }

  // A log scale with nothing to show (no responses yet, all zeros) has
  // no range of its own: uPlot's axes then fail, so give it one.
  function logScale() {
    return {
      distr: 3, log: 10,
      range: (u, lo, hi) => (lo == null || hi == null || !(lo > 0) || !(hi > 0)) ? [1, 1000] : uPlot.rangeLog(lo, hi, 10, true),
    };
  }

  function timeAxis() {
    return { values: (u, vs) => vs.map(v => v + "s") };
  }

  // specs lists the time charts: each maps samples to series.
  function specs(model, errorKinds, statusClasses) {
    const open = model === "open";
    const perSec = (s, n) => { const d = s.end - s.start; return d > 0 ? n / d : null; };
    const q = (field, k) => s => s[field] ? pos(s[field][k]) : null;
    const latencySeries = field => [
      { label: "p50", get: q(field, "p50") },
      { label: "p90", get: q(field, "p90") },
      { label: "p99", get: q(field, "p99") },
      { label: "p99.9", get: q(field, "p999") },
    ];
    const list = [
      {
        id: "rate", title: "Requests per second: achieved" + (open ? " vs target" : ""), fmt: fmtNum,
        series: [
          { label: "achieved (responses/s)", get: s => s.rps },
          open ? { label: "target", get: s => s.target_rps, dash: [6, 4] } : null,
          { label: "sent/s", get: s => s.sent_rps, width: 1 },
        ],
      },
      {
        id: "latency", title: open ? "Latency from the intended send (coordinated-omission corrected)" : "Latency (service time)",
        fmt: fmtUs, log: true, series: latencySeries("latency_us"),
      },
      open ? { id: "service", title: "Service time (from the actual send)", fmt: fmtUs, log: true, series: latencySeries("service_us") }
        : { id: "corrected", title: "Latency corrected for coordinated omission (closed model, back-filled)", fmt: fmtUs, log: true, series: latencySeries("corrected_us") },
      {
        id: "errors", title: "Errors per second by kind", fmt: fmtNum,
        series: errorKinds.map((k, i) => ({ label: k, get: s => s.errors ? perSec(s, s.errors[i]) : null })),
      },
      {
        id: "classes", title: "Responses per second by status class", fmt: fmtNum,
        series: statusClasses.map((k, i) => ({ label: k, get: s => s.status_classes ? perSec(s, s.status_classes[i]) : null })),
      },
      {
        id: "conns", title: "Connections", fmt: fmtNum,
        series: [{ label: "open", get: s => s.conns_open }, { label: "wanted", get: s => s.conns_wanted, dash: [6, 4] }],
      },
      {
        id: "generator", title: open ? "Generator: event loops busy and send lateness (p99)" : "Generator: event loops busy", fmt: v => fmtNum(v) + "%",
        series: [
          { label: "loops busy %", get: s => s.loop_busy == null ? null : 100 * s.loop_busy },
          open ? { label: "send lateness p99", get: s => s.lateness_us ? s.lateness_us.p99 : null, scale: "us", fmt: fmtUs } : null,
        ],
      },
    ];
    for (const c of list) c.series = c.series.filter(Boolean);
    return list;
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    if (attrs) for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    return e;
  }

  // create builds every chart in root and returns a handle to feed them.
  function create(root, o) {
    const model = o.model || "closed";
    const cs = specs(model, o.errorKinds || [], o.statusClasses || []);
    let samples = [];
    let events = [];
    const charts = [];
    const width = () => Math.max(320, Math.min(root.clientWidth || 900, 1400) - 8);
    const tooltip = fmt => (u, v) => (v == null ? "–" : fmt(v));
    for (const c of cs) {
      const box = el("div", { class: "chart", id: "chart-" + c.id, "data-chart": c.id });
      root.appendChild(box);
      const scales = { x: { time: false } };
      scales.y = c.log ? logScale() : { range: (u, lo, hi) => [Math.min(0, lo || 0), hi > 0 ? hi * 1.08 : 1] };
      const axes = [timeAxis(), { values: (u, vs) => vs.map(c.fmt), size: 70 }];
      const series = [{ label: "t", value: (u, v) => fmtSec(v) }];
      c.series.forEach((s, i) => {
        const ser = { label: s.label, stroke: palette[i % palette.length], width: s.width || 1.6, value: tooltip(s.fmt || c.fmt), spanGaps: false };
        if (s.dash) ser.dash = s.dash;
        if (s.scale) {
          ser.scale = s.scale;
          if (!scales[s.scale]) {
            scales[s.scale] = logScale();
            axes.push({ scale: s.scale, side: 1, values: (u, vs) => vs.map(s.fmt), size: 70, grid: { show: false } });
          }
        }
        series.push(ser);
      });
      const opts = { title: c.title, width: width(), height: o.height || 220, scales, axes, series, plugins: [eventsPlugin(() => events)], cursor: { drag: { x: true, y: false } } };
      const data = [[]].concat(c.series.map(() => []));
      charts.push({ spec: c, u: new uPlot(opts, data, box) });
    }
    // The spectrum: values at percentiles on a log scale of 1/(1-p).
    const sbox = el("div", { class: "chart", id: "chart-spectrum", "data-chart": "spectrum" });
    root.appendChild(sbox);
    const open = model === "open";
    const sseries = [
      { label: "percentile", value: (u, v) => (v == null ? "–" : fmtPct(100 * (1 - 1 / v))) },
      { label: open ? "latency (intended)" : "latency", stroke: palette[0], width: 1.8, value: tooltip(fmtUs) },
      { label: open ? "service time" : "CO-corrected", stroke: palette[1], width: 1.4, value: tooltip(fmtUs) },
    ];
    const spectrum = new uPlot({
      title: "Percentile spectrum of the whole run" + (o.live ? " so far" : ""), width: width(), height: o.height || 240,
      scales: { x: Object.assign(logScale(), { time: false }), y: logScale() },
      // Ticks at 0%, 90%, 99%, 99.9%, ...: one per decade of 1/(1-p).
      axes: [{
        splits: u => { const out = []; const hi = u.scales.x.max || 10; for (let x = 1; x <= hi * 1.0001; x *= 10) out.push(x); return out; },
        values: (u, vs) => vs.map(v => (v >= 1 ? fmtPct(100 * (1 - 1 / v)) : "")),
      }, { values: (u, vs) => vs.map(fmtUs), size: 70 }],
      series: sseries,
    }, [[], [], []], sbox);

    function redraw() {
      const x = samples.map(s => s.end);
      for (const ch of charts) {
        const d = [x];
        for (const s of ch.spec.series) d.push(samples.map(s.get));
        ch.u.setData(d);
      }
    }
    const handle = {
      charts: charts.map(c => c.u).concat([spectrum]),
      setSamples(list) { samples = (list || []).slice(); redraw(); },
      addSamples(list) {
        for (const s of list || []) {
          if (samples.length && s.seq <= samples[samples.length - 1].seq) continue;
          samples.push(s);
        }
        if (o.keep && samples.length > o.keep) samples = samples.slice(samples.length - o.keep);
        redraw();
      },
      samples() { return samples; },
      setEvents(list) { events = (list || []).slice(); for (const ch of charts) ch.u.redraw(false, false); },
      setSpectrum(sp) {
        if (!sp || !sp.percentiles || !sp.percentiles.length) return;
        // p = 0 sits at x = 1; the last point (the maximum) at 1/(1-p).
        const x = sp.percentiles.map(p => 1 / (1 - p / 100));
        const second = sp.service_us || sp.corrected_us || [];
        spectrum.setData([x, (sp.latency_us || []).map(pos), x.map((_, i) => pos(second[i]))]);
      },
      resize() {
        const w = width();
        for (const u of handle.charts) u.setSize({ width: w, height: u.height });
      },
    };
    window.addEventListener("resize", () => handle.resize());
    return handle;
  }

  // fromTimeline turns a report's timeline (report.Point) into samples,
  // for a report that carries no samples (rebuilt from its JSON).
  function fromTimeline(tl) {
    return (tl || []).map(p => ({
      seq: p.seq, step: p.step + 1, start: p.start_seconds, end: p.end_seconds, rps: p.rps,
      latency_us: { p50: p.p50_us, p99: p.p99_us }, conns_open: p.conns_open, conns_wanted: p.conns_wanted,
      errors: [p.errors], status_classes: null,
    }));
  }

  window.BarrageCharts = { create, fromTimeline, fmtUs, fmtNum, fmtSec, fmtPct, el };
})();
