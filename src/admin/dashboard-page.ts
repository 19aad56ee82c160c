// The dashboard is one self-contained page (no CDN, no library: it must work
// offline and ship inside the package's .js files). It draws everything with
// DOM nodes and inline SVG from `/api/events`, and puts every value from the
// wire in through textContent or attributes, never as markup: tapped headers
// come from callers.

const STYLE = `
:root { --bg:#0f1419; --panel:#171d24; --line:#263040; --fg:#d8dee6; --dim:#8a96a6;
  --ok:#3fb950; --warn:#d29922; --bad:#f85149; --accent:#58a6ff; }
* { box-sizing:border-box; }
body { margin:0; font:13px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif; background:var(--bg); color:var(--fg); }
header { display:flex; align-items:center; gap:12px; padding:10px 16px; border-bottom:1px solid var(--line); }
header h1 { font-size:16px; margin:0; font-weight:600; }
#conn { font-size:12px; color:var(--dim); }
#conn::before { content:""; display:inline-block; width:8px; height:8px; border-radius:50%; margin-right:6px; background:var(--bad); }
#conn.live::before { background:var(--ok); }
main { display:grid; grid-template-columns:repeat(12,1fr); gap:12px; padding:12px 16px; }
section { background:var(--panel); border:1px solid var(--line); border-radius:6px; padding:10px 12px; min-width:0; }
section h2 { font-size:12px; text-transform:uppercase; letter-spacing:.06em; color:var(--dim); margin:0 0 8px; font-weight:600; }
.w3 { grid-column:span 3; } .w4 { grid-column:span 4; } .w6 { grid-column:span 6; } .w8 { grid-column:span 8; } .w12 { grid-column:span 12; }
@media (max-width:1100px) { .w3,.w4,.w6,.w8 { grid-column:span 12; } }
.kpis { display:flex; gap:12px; flex-wrap:wrap; }
.kpi { flex:1; min-width:120px; }
.kpi b { display:block; font-size:22px; font-weight:600; }
.kpi span { color:var(--dim); font-size:12px; }
table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
th, td { text-align:left; padding:3px 6px; border-bottom:1px solid var(--line); white-space:nowrap; overflow:hidden; text-overflow:ellipsis; max-width:360px; }
th { color:var(--dim); font-weight:500; font-size:12px; }
td.num, th.num { text-align:right; }
.badge { display:inline-block; padding:0 6px; border-radius:9px; font-size:11px; font-weight:600; }
.s-closed, .s-OK, .s-healthy, .s-ready, .s-SERVING { background:#12361f; color:var(--ok); }
.s-half-open, .s-probing, .s-connecting, .s-held { background:#3b2e0a; color:var(--warn); }
.s-open, .s-ejected, .s-bad, .s-NOT_SERVING { background:#42161a; color:var(--bad); }
.muted { color:var(--dim); }
svg { display:block; width:100%; }
svg text { fill:var(--dim); font-size:10px; }
.legend { display:flex; flex-wrap:wrap; gap:10px; font-size:11px; color:var(--dim); margin-top:4px; }
.legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:4px; vertical-align:-1px; }
#tap-tools { display:flex; gap:8px; margin-bottom:6px; }
input, button { background:var(--bg); color:var(--fg); border:1px solid var(--line); border-radius:4px; padding:3px 8px; font:inherit; }
#tap tbody tr { cursor:pointer; }
#tap tbody tr:hover { background:#1d2530; }
.scroll { max-height:440px; overflow:auto; }
#endpoints td:first-child, #breakers td:first-child { max-width:180px; }
pre { margin:4px 0 0; padding:6px; background:var(--bg); border-radius:4px; white-space:pre-wrap; word-break:break-all; font-size:12px; }
.code-bad { color:var(--bad); } .code-ok { color:var(--ok); }
`;

const SCRIPT = String.raw`
"use strict";
var COLORS = ["#58a6ff","#3fb950","#d29922","#f85149","#bc8cff","#39c5cf","#ff9bce","#a5d6ff"];
var SVGNS = "http://www.w3.org/2000/svg";
var calls = [];
var paused = false;
var tapPending = false;
var latest = null;
var colorOf = {};
function color(key) { if (!(key in colorOf)) colorOf[key] = COLORS[Object.keys(colorOf).length % COLORS.length]; return colorOf[key]; }
function $(id) { return document.getElementById(id); }
function el(tag, attrs, kids) {
  var n = document.createElement(tag);
  for (var k in attrs || {}) { if (k === "text") n.textContent = attrs[k]; else n.setAttribute(k, attrs[k]); }
  (kids || []).forEach(function (c) { if (c != null) n.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
  return n;
}
function svg(tag, attrs) { var n = document.createElementNS(SVGNS, tag); for (var k in attrs) n.setAttribute(k, attrs[k]); return n; }
function fmt(x, digits) { return x == null ? "\u2013" : Number(x).toFixed(digits == null ? 1 : digits); }
// By hand: toLocaleTimeString builds a formatter per call, far too slow for the tap.
function pad(n, w) { return String(n).padStart(w, "0"); }
function time(ms) { var d = new Date(ms); return pad(d.getHours(), 2) + ":" + pad(d.getMinutes(), 2) + ":" + pad(d.getSeconds(), 2) + "." + pad(d.getMilliseconds(), 3); }
function badge(state) { return el("span", { "class": "badge s-" + state, text: state }); }
function rows(tbody, list, render, empty) {
  var t = $(tbody); t.textContent = "";
  if (list.length === 0) { var cols = t.parentNode.querySelectorAll("th").length || 1; t.appendChild(el("tr", {}, [el("td", { colspan: cols, "class": "muted", text: empty })])); return; }
  list.forEach(function (x) { t.appendChild(render(x)); });
}
function td(text, cls) { return el("td", cls ? { "class": cls, text: text } : { text: text }); }

function lineChart(id, series, opts) {
  var box = $(id); box.textContent = "";
  var W = 600, H = opts.height || 120, L = 34, B = 16;
  var s = svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img" });
  var n = opts.points;
  var max = opts.max || 0;
  series.forEach(function (ser) { ser.values.forEach(function (v) { if (v != null && v > max) max = v; }); });
  if (!(max > 0)) max = 1;
  [0, 0.5, 1].forEach(function (f) {
    var y = H - B - f * (H - B - 4);
    s.appendChild(svg("line", { x1: L, x2: W, y1: y, y2: y, stroke: "#263040", "stroke-width": 1 }));
    var t = svg("text", { x: 2, y: y + 3 }); t.textContent = fmt(max * f, max < 10 ? 1 : 0) + (opts.unit || ""); s.appendChild(t);
  });
  series.forEach(function (ser) {
    var d = "";
    ser.values.forEach(function (v, i) {
      if (v == null) return;
      var x = L + (n <= 1 ? 0 : (i / (n - 1)) * (W - L));
      var y = H - B - (v / max) * (H - B - 4);
      d += (d === "" ? "M" : "L") + x.toFixed(1) + " " + y.toFixed(1);
    });
    if (d !== "") s.appendChild(svg("path", { d: d, fill: "none", stroke: ser.color, "stroke-width": 1.6 }));
  });
  box.appendChild(s);
  var legend = el("div", { "class": "legend" });
  series.forEach(function (ser) { legend.appendChild(el("span", {}, [el("i", { style: "background:" + ser.color }), ser.name])); });
  box.appendChild(legend);
}

function shareChart(id, history) {
  var box = $(id); box.textContent = "";
  var keys = {};
  history.forEach(function (p) { for (var k in p.endpoints) keys[k] = true; });
  keys = Object.keys(keys).sort();
  var W = 600, H = 120, B = 16, L = 34;
  var s = svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img" });
  var n = history.length;
  var step = n <= 1 ? (W - L) : (W - L) / n;
  history.forEach(function (p, i) {
    var total = 0; keys.forEach(function (k) { total += p.endpoints[k] || 0; });
    if (total === 0) return;
    var y = H - B;
    keys.forEach(function (k) {
      var h = ((p.endpoints[k] || 0) / total) * (H - B - 4);
      if (h <= 0) return;
      y -= h;
      s.appendChild(svg("rect", { x: (L + i * step).toFixed(1), y: y.toFixed(1), width: Math.max(1, step - 0.5).toFixed(1), height: h.toFixed(1), fill: color(k) }));
    });
  });
  ["100%", "50%", "0%"].forEach(function (label, j) { var t = svg("text", { x: 2, y: 10 + j * ((H - B - 4) / 2) }); t.textContent = label; s.appendChild(t); });
  box.appendChild(s);
  var legend = el("div", { "class": "legend" });
  keys.forEach(function (k) { legend.appendChild(el("span", {}, [el("i", { style: "background:" + color(k) }), k])); });
  if (keys.length === 0) legend.appendChild(el("span", { text: "no client calls yet" }));
  box.appendChild(legend);
}

// One lane per breaker and per ejected endpoint over the charts' span:
// coloured by the state the timeline entries put it in.
function timelineChart(id, st) {
  var box = $(id); box.textContent = "";
  var h = st.history; var end = st.at; var start = h.length > 0 ? Math.min(h[0].at, end - 60000) : end - 60000;
  var lanes = {};
  st.timeline.forEach(function (e) {
    var key, state;
    if (e.kind === "breaker") { key = "breaker " + e.subject; var m = /\u2192 (\S+)/.exec(e.detail); state = m ? m[1] : "open"; }
    else if (e.kind === "ejected") { key = "endpoint " + e.subject; state = "ejected"; }
    else if (e.kind === "restored") { key = "endpoint " + e.subject; state = "healthy"; }
    else return;
    (lanes[key] = lanes[key] || []).push({ at: e.at, state: state });
  });
  var names = Object.keys(lanes).sort();
  var W = 600, LH = 16, L = 0, H = Math.max(1, names.length) * (LH + 14) + 4;
  var s = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img" });
  var fill = { open: "#f85149", "half-open": "#d29922", closed: "#3fb950", ejected: "#f85149", healthy: "#3fb950" };
  names.forEach(function (name, i) {
    var y = i * (LH + 14) + 12;
    var t = svg("text", { x: 0, y: y - 2 }); t.textContent = name; s.appendChild(t);
    s.appendChild(svg("rect", { x: L, y: y, width: W - L, height: LH, fill: "#1d2530" }));
    var ev = lanes[name];
    ev.forEach(function (e, j) {
      var from = Math.max(e.at, start); var to = j + 1 < ev.length ? ev[j + 1].at : end;
      if (to < start) return;
      var x1 = L + ((from - start) / (end - start)) * (W - L); var x2 = L + ((to - start) / (end - start)) * (W - L);
      s.appendChild(svg("rect", { x: x1.toFixed(1), y: y, width: Math.max(2, x2 - x1).toFixed(1), height: LH, fill: fill[e.state] || "#58a6ff", opacity: e.state === "closed" || e.state === "healthy" ? 0.45 : 0.9 }));
    });
  });
  if (names.length === 0) { var t = svg("text", { x: 0, y: 14 }); t.textContent = "no breaker or ejection events yet"; s.appendChild(t); }
  box.appendChild(s);
}

// Endpoints come from the transports' snapshots (status, connection, EWMA,
// pending, share of the last picks); the ejections seen in events fill in
// for a transport that takes none.
function endpointRows(st) {
  var out = [];
  var share = {}; var total = 0;
  st.stats.history.slice(-10).forEach(function (p) { for (var k in p.endpoints) { share[k] = (share[k] || 0) + p.endpoints[k]; total += p.endpoints[k]; } });
  var ejected = {}; st.stats.ejections.forEach(function (e) { ejected[e.target + " " + e.address] = e; });
  st.transports.forEach(function (t) {
    var eps = Array.isArray(t.endpoints) ? t.endpoints : [];
    eps.forEach(function (e) {
      var addr = String(e.address);
      var ej = e.ejection && typeof e.ejection === "object" ? e.ejection : null;
      var state = e.status === "ejected" || (ej && ej.state === "ejected") ? "ejected" : ej && ej.state === "probing" ? "probing" : String(e.status || "ready");
      out.push({ target: t.target, address: addr, state: state, conn: String(e.connection || ""),
        rtt: typeof e.rttMs === "number" ? e.rttMs : null, pending: typeof e.pending === "number" ? e.pending : null,
        share: typeof e.pickShare === "number" ? e.pickShare * 100 : null, ejections: ej ? ej.history.filter(function (h) { return h.type === "ejected"; }).length : null });
    });
    if (eps.length === 0) {
      Object.keys(share).forEach(function (addr) {
        out.push({ target: t.target, address: addr, state: ejected[t.target + " " + addr] ? "ejected" : "ready", conn: "", rtt: null, pending: null, share: (share[addr] / total) * 100, ejections: null });
      });
    }
  });
  st.stats.ejections.forEach(function (e) {
    if (!out.some(function (r) { return r.address === e.address && r.target === e.target; })) out.push({ target: e.target, address: e.address, state: "ejected", conn: "", rtt: null, pending: null, share: null, ejections: e.ejectionCount });
  });
  return out;
}

function draw(st) {
  latest = st;
  var h = st.stats.history;
  var last = h.slice(-5); var n = 0, ok = 0, retries = 0;
  last.forEach(function (p) { n += p.calls; ok += p.ok; retries += p.retries; });
  var secs = Math.max(1, last.length);
  $("k-rps").textContent = fmt(n / secs, 0);
  $("k-ok").textContent = n === 0 ? "\u2013" : fmt((ok / n) * 100, 2) + "%";
  $("k-retries").textContent = fmt(retries / secs, 1);
  var open = st.stats.breakers.filter(function (b) { return b.state !== "closed"; }).length;
  $("k-breakers").textContent = String(open);
  $("k-ejected").textContent = String(st.stats.ejections.length);
  $("k-budget").textContent = String(st.stats.retries.budgetExhausted);
  $("updated").textContent = "updated " + time(st.at);

  lineChart("chart-rps", [
    { name: "calls/s", color: "#58a6ff", values: h.map(function (p) { return p.calls; }) },
    { name: "failed/s", color: "#f85149", values: h.map(function (p) { return p.calls - p.ok; }) },
  ], { points: h.length });
  lineChart("chart-ok", [
    { name: "success %", color: "#3fb950", values: h.map(function (p) { return p.calls === 0 ? null : (p.ok / p.calls) * 100; }) },
  ], { points: h.length, max: 100, unit: "%" });
  lineChart("chart-retries", [
    { name: "retries/s", color: "#d29922", values: h.map(function (p) { return p.retries; }) },
    { name: "budget exhausted/s", color: "#f85149", values: h.map(function (p) { return p.budgetExhausted; }) },
  ], { points: h.length });
  shareChart("chart-share", h);
  timelineChart("chart-timeline", st.stats);

  rows("methods-body", st.stats.methods, function (m) {
    return el("tr", {}, [td(m.side), td(m.method), td(fmt(m.callsPerSec, 1), "num"),
      td(m.successPercent == null ? "\u2013" : fmt(m.successPercent, 2) + "%", "num"), td(fmt(m.p50Ms, 1), "num"), td(fmt(m.p99Ms, 1), "num"),
      td(String(m.calls), "num"), td(String(m.failures), "num")]);
  }, "no calls yet");
  rows("endpoints-body", endpointRows(st), function (e) {
    return el("tr", { "data-address": e.address, "data-state": e.state }, [td(e.target), td(e.address), el("td", {}, [badge(e.state)]), td(e.conn),
      td(fmt(e.rtt, 1), "num"), td(e.pending == null ? "\u2013" : String(e.pending), "num"), td(e.share == null ? "\u2013" : fmt(e.share, 1) + "%", "num"),
      td(e.ejections == null ? "\u2013" : String(e.ejections), "num")]);
  }, "no endpoints");
  rows("breakers-body", st.stats.breakers, function (b) {
    return el("tr", { "data-key": b.key, "data-state": b.state }, [td(b.key), el("td", {}, [badge(b.state)]), td(b.reason), td(time(b.since))]);
  }, "every breaker closed (none has changed state)");
  var tl = st.stats.timeline.slice(-30).reverse();
  rows("timeline-body", tl, function (e) {
    return el("tr", { "data-kind": e.kind }, [td(time(e.at)), td(e.kind), td(e.subject), td(e.detail)]);
  }, "nothing happened yet");
  var budgets = [];
  st.transports.forEach(function (t) { if (t.retry && t.retry.budget) budgets.push({ target: t.target, b: t.retry.budget }); });
  $("budget").textContent = budgets.map(function (x) {
    return "retry budget " + x.target + ": " + fmt(x.b.available, 1) + " available (" + fmt(x.b.ratio * 100, 0) + "% + " + fmt(x.b.minRetriesPerSecond, 0) + "/s), " + x.b.withdrawn + " used, " + x.b.exhausted + " refused";
  }).join("  \u00b7  ");
  var r = st.stats.retries;
  $("retry-totals").textContent = "retries " + r.retries + " \u00b7 hedges " + r.hedges + " \u00b7 gave up " + r.giveUps + " \u00b7 budget exhausted " + r.budgetExhausted;
  rows("servers-body", st.servers, function (s) {
    var c = s.calls || {};
    var reg = s.registration ? s.registration.state + " in " + s.registration.registry : "\u2013";
    return el("tr", {}, [td(String(s.address || "\u2013")), el("td", {}, [badge(String(s.health || "\u2013"))]), td(String(s.inFlight != null ? s.inFlight : "\u2013"), "num"),
      td(c.succeeded != null ? String(c.succeeded) : "\u2013", "num"), td(c.failed != null ? String(c.failed) : "\u2013", "num"),
      td(s.concurrencyLimit ? JSON.stringify(s.concurrencyLimit.maxInFlight) : "\u2013"), td(reg),
      td(Array.isArray(s.services) ? s.services.map(function (x) { return typeof x === "string" ? x : x.name; }).join(", ") : "")]);
  }, "no servers");
}

function drawTap() {
  var filter = $("tap-filter").value.toLowerCase();
  var list = calls.filter(function (c) { return filter === "" || JSON.stringify(c).toLowerCase().indexOf(filter) >= 0; }).slice(-60).reverse();
  rows("tap-body", list, function (c) {
    var tr = el("tr", { "data-code": c.code }, [td(time(c.startedAt)), td(c.side), td(c.method), td(c.code, c.code === "OK" ? "code-ok" : "code-bad"),
      td(fmt(c.durationMs, 1), "num"), td(c.endpoint || c.peer || "\u2013"), td(c.attempts ? String(c.attempts) : "", "num"), td(c.traceId)]);
    tr.tapped = c;
    return tr;
  }, "no calls yet");
}

function connect() {
  var es = new EventSource("api/events");
  es.addEventListener("open", function () { $("conn").className = "live"; $("conn").textContent = "live"; });
  es.addEventListener("error", function () { $("conn").className = ""; $("conn").textContent = "reconnecting\u2026"; });
  es.addEventListener("state", function (m) { draw(JSON.parse(m.data)); });
  es.addEventListener("calls", function (m) {
    if (paused) return;
    calls = calls.concat(JSON.parse(m.data)).slice(-500);
    // One redraw per frame however many pushes arrive: a slow machine must not fall behind.
    if (!tapPending) { tapPending = true; requestAnimationFrame(function () { tapPending = false; drawTap(); }); }
  });
}
document.addEventListener("DOMContentLoaded", function () {
  $("tap-filter").addEventListener("input", drawTap);
  $("tap-body").addEventListener("click", function (ev) {
    var tr = ev.target.closest("tr");
    if (tr && tr.tapped) $("tap-detail").textContent = JSON.stringify(tr.tapped, null, 2);
  });
  $("tap-pause").addEventListener("click", function () { paused = !paused; this.textContent = paused ? "resume" : "pause"; });
  connect();
});
`;

const BODY = `
<header><h1>connect-mesh</h1><span id="conn">connecting…</span><span id="updated" class="muted"></span></header>
<main>
<section class="w12" id="kpis"><div class="kpis">
  <div class="kpi"><b id="k-rps">–</b><span>client calls/s (5 s)</span></div>
  <div class="kpi"><b id="k-ok">–</b><span>success (5 s)</span></div>
  <div class="kpi"><b id="k-retries">–</b><span>retries/s</span></div>
  <div class="kpi"><b id="k-breakers">0</b><span>breakers not closed</span></div>
  <div class="kpi"><b id="k-ejected">0</b><span>endpoints ejected</span></div>
  <div class="kpi"><b id="k-budget">0</b><span>retries refused by budget</span></div>
</div></section>
<section class="w6"><h2>Calls per second</h2><div id="chart-rps"></div></section>
<section class="w6"><h2>Success rate</h2><div id="chart-ok"></div></section>
<section class="w6"><h2>Traffic share per endpoint</h2><div id="chart-share"></div></section>
<section class="w6"><h2>Retries and budget</h2><div id="chart-retries"></div><div class="legend" id="retry-totals"></div><div class="legend" id="budget"></div></section>
<section class="w12"><h2>Methods</h2><table id="methods"><thead><tr><th>side</th><th>method</th><th class="num">calls/s</th><th class="num">success</th><th class="num">p50 ms</th><th class="num">p99 ms</th><th class="num">calls</th><th class="num">failed</th></tr></thead><tbody id="methods-body"></tbody></table></section>
<section class="w12"><h2>Endpoints</h2><table id="endpoints"><thead><tr><th>target</th><th>address</th><th>state</th><th>connection</th><th class="num">EWMA ms</th><th class="num">pending</th><th class="num">picks</th><th class="num">ejections</th></tr></thead><tbody id="endpoints-body"></tbody></table></section>
<section class="w6"><h2>Circuit breakers</h2><table id="breakers"><thead><tr><th>key</th><th>state</th><th>reason</th><th>since</th></tr></thead><tbody id="breakers-body"></tbody></table></section>
<section class="w6"><h2>Breaker and ejection timeline</h2><div id="chart-timeline"></div></section>
<section class="w12"><h2>Events</h2><div class="scroll"><table id="timeline"><thead><tr><th>time</th><th>kind</th><th>subject</th><th>detail</th></tr></thead><tbody id="timeline-body"></tbody></table></div></section>
<section class="w12"><h2>Tap: last calls</h2><div id="tap-tools"><input id="tap-filter" placeholder="filter (method, code, endpoint, trace id)" size="40"><button id="tap-pause">pause</button></div>
<div class="scroll"><table id="tap"><thead><tr><th>time</th><th>side</th><th>method</th><th>code</th><th class="num">ms</th><th>endpoint / peer</th><th class="num">attempts</th><th>trace id</th></tr></thead><tbody id="tap-body"></tbody></table></div>
<pre id="tap-detail" class="muted">click a call for its redacted headers</pre></section>
<section class="w12"><h2>Servers</h2><table id="servers"><thead><tr><th>address</th><th>health</th><th class="num">in flight</th><th class="num">succeeded</th><th class="num">failed</th><th>limit</th><th>registration</th><th>services</th></tr></thead><tbody id="servers-body"></tbody></table></section>
</main>
`;

/**
 * DASHBOARD_HTML is the admin server's live dashboard: one page with inline
 * CSS, JS and SVG, fed by `/api/events`.
 * @private
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>connect-mesh admin</title><style>${STYLE}</style></head>
<body>${BODY}<script>${SCRIPT}</script></body></html>
`;
