// The live status page. Polls status.json (state, loads, reloads) and status/history.json (per-app
// traffic per second, summed into windows by the server) once a second and draws each series as an
// inline SVG polyline. Everything it shows comes from those two URLs on the same origin: no
// library, no font, no image, so it works on an air-gapped host. Text from the server goes in
// through textContent only, never as markup.
"use strict";

const POLL_MS = 1000;
const SVG_NS = "http://www.w3.org/2000/svg";
const CHART_W = 180, CHART_H = 40, CHART_TOP = 11, CHART_BOTTOM = 38;

const rows = new Map(); // app name -> {tr, cells...}
let pollTimer = null;
let generation = 0; // a change of window starts a new poll loop; an answer for an older one is dropped

function $(id) { return document.getElementById(id); }

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function pad(n) { return String(n).padStart(2, "0"); }

function clock(unix) {
  const d = new Date(unix * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function ago(unix, now) {
  const s = Math.max(0, Math.round(now - unix));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function secs(s) { return s === null || s === undefined ? "–" : s < 10 ? `${s.toFixed(2)} s` : `${s.toFixed(1)} s`; }
// Bytes in kB or MB; `unitOf` picks the unit, so "done / total" share one.
function mb(n, unitOf = n) { return unitOf < 1e5 ? `${(n / 1e3).toFixed(1)} kB` : `${(n / 1e6).toFixed(1)} MB`; }
function rate(v) { return v < 10 ? `${v.toFixed(1)}/s` : `${Math.round(v)}/s`; }
function pct(v) { return v === null ? "–" : v === 0 ? "0 %" : v < 10 ? `${v.toFixed(1)} %` : `${Math.round(v)} %`; }
function ms(v) {
  if (v === null) return "–";
  if (v >= 1000) return `${(v / 1000).toFixed(2)} s`;
  return v < 10 ? `${v.toFixed(2)} ms` : v < 100 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`;
}
function shortDigest(d) { return d ? d.replace(/^(sha256:)?([0-9a-f]{12}).*$/, "$1$2") : ""; }

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

// -- charts ------------------------------------------------------------------------------------

function svgNode(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function newChart(metric) {
  const svg = svgNode("svg", { class: `chart ${metric}`, viewBox: `0 0 ${CHART_W} ${CHART_H}`,
                               preserveAspectRatio: "none", "data-metric": metric, role: "img" });
  svg.appendChild(svgNode("title"));
  svg.appendChild(svgNode("text", { x: 3, y: 9, class: "max" }));
  svg.appendChild(svgNode("g", { class: "series" }));
  return svg;
}

// values: numbers, or null where there is nothing to show (no requests: no error rate, no p99).
// Each run of numbers is one polyline, so a gap is drawn as a gap and not as a zero.
function drawChart(svg, values, floorMax, format, label) {
  let max = floorMax;
  for (const v of values) if (v !== null && v > max) max = v;
  const n = values.length;
  const x = (i) => (n > 1 ? (i * CHART_W) / (n - 1) : CHART_W / 2);
  const y = (v) => CHART_BOTTOM - ((CHART_BOTTOM - CHART_TOP) * v) / max;
  const group = svg.querySelector("g.series");
  group.replaceChildren();
  let run = [];
  const flush = () => {
    if (!run.length) return;
    if (run.length === 1) run.push([run[0][0] + 1.5, run[0][1]]); // a lone point still shows
    const points = run.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" ");
    const first = run[0][0].toFixed(1), last = run[run.length - 1][0].toFixed(1);
    group.appendChild(svgNode("polygon", { class: "area", points: `${first},${CHART_BOTTOM} ${points} ${last},${CHART_BOTTOM}` }));
    group.appendChild(svgNode("polyline", { class: "line", points }));
    run = [];
  };
  values.forEach((v, i) => {
    if (v === null) flush();
    else run.push([x(i), y(v)]);
  });
  flush();
  svg.querySelector("text.max").textContent = `max ${format(max)}`;
  svg.querySelector("title").textContent = label;
}

// -- rows --------------------------------------------------------------------------------------

function metricCell(metric) {
  const td = el("td");
  const box = el("div", "metric");
  const value = el("span", "value none", "–");
  value.dataset.metric = metric;
  const chart = newChart(metric);
  box.append(value, chart);
  td.appendChild(box);
  return { td, value, chart };
}

function makeRow(name) {
  const tr = el("tr");
  tr.dataset.app = name;
  const nameCell = el("td", "name");
  const state = el("td", "state");
  const version = el("td", "version");
  const rps = metricCell("rps"), errors = metricCell("errors"), p99 = metricCell("p99");
  tr.append(nameCell, state, version, rps.td, errors.td, p99.td);
  return { tr, nameCell, state, version, rps, errors, p99 };
}

function loadLines(app, now) {
  const load = app.load;
  const out = [];
  if (!load) return out;
  if (load.phase === "pulling") {
    const pull = load.pull;
    if (pull && pull.layers_total) {
      const cached = pull.layers_cached ? `, ${pull.layers_cached} cached` : "";
      out.push(el("div", "load", `pulling: ${pull.layers_done}/${pull.layers_total - pull.layers_cached} layers${cached} · ` +
                                   `${mb(pull.bytes_done, pull.bytes_total)} / ${mb(pull.bytes_total)} · ${secs(load.elapsed_s)}`));
      const bar = el("div", "progress");
      const fill = el("div");
      fill.style.width = `${pull.bytes_total ? Math.min(100, (100 * pull.bytes_done) / pull.bytes_total) : 0}%`;
      bar.appendChild(fill);
      out.push(bar);
    } else {
      out.push(el("div", "load", `resolving ${load.source} · ${secs(load.elapsed_s)}`));
    }
  } else if (load.phase === "compiling") {
    const pulled = load.pull ? `pulled ${mb(load.pull.bytes_done)} in ${secs(load.pull_s)}` : `artifact cached, ${secs(load.pull_s)}`;
    out.push(el("div", "load", `compiling · ${secs(load.elapsed_s - (load.pull_s || 0))} (${pulled})`));
  } else {
    const pulled = load.pull
      ? `pulled ${mb(load.pull.bytes_done)} (${load.pull.layers_done} layers) in ${secs(load.pull_s)}`
      : `artifact cached (${secs(load.pull_s)})`;
    const compiled = load.compile_s === null ? "" : `, compiled in ${secs(load.compile_s)}`;
    const verb = load.phase === "done" ? "loaded" : "load failed";
    const when = load.finished_at ? `${clock(load.finished_at)} (${ago(load.finished_at, now)})` : "";
    out.push(el("div", `load small ${load.phase === "done" ? "muted" : "err"}`, `${verb} ${when}: ${pulled}${compiled}`));
  }
  return out;
}

function updateRow(row, app, series, step, now) {
  row.nameCell.replaceChildren(
    el("div", "", app.name),
    el("div", "routes small muted", app.routes.map((r) => `${r.hosts.join(", ") || "any host"} ${r.prefix}`).join(" · ")),
    el("div", "small muted", `in flight ${app.inflight} · ${app.requests} answered${app.rejected ? ` · ${app.rejected} refused (503)` : ""}`),
  );

  const badge = el("span", `badge ${app.state}`, app.state);
  const stateParts = [badge, ...loadLines(app, now)];
  if (app.error) stateParts.push(el("div", "err small", `error: ${app.error}`));
  row.state.replaceChildren(...stateParts);

  const versionParts = [];
  const v = app.version;
  if (v) {
    versionParts.push(el("div", "", `serving ${v.app_name}${v.app_version ? " " + v.app_version : ""}`));
    versionParts.push(el("code", "serving-digest", shortDigest(v.digest)));
    versionParts.push(el("div", "small muted", `${v.reference} · since ${clock(v.loaded_at)}`));
  } else {
    versionParts.push(el("div", "muted", "nothing serving"));
  }
  const load = app.load;
  if (load && (load.phase === "pulling" || load.phase === "compiling")) {
    const next = el("div", "loading-version");
    next.append(`→ loading ${load.source} `);
    if (load.digest) next.appendChild(el("code", "", shortDigest(load.digest)));
    versionParts.push(next);
  }
  row.version.replaceChildren(...versionParts);

  const s = series || { requests: [], errors: [], p99_ms: [], recent: { rps: 0, error_pct: null, p99_ms: null, requests: 0 } };
  const rps = s.requests.map((n) => n / step);
  const errPct = s.requests.map((n, i) => (n ? (100 * s.errors[i]) / n : null));
  const recent = s.recent;
  setValue(row.rps.value, rate(recent.rps), recent.requests > 0);
  setValue(row.errors.value, pct(recent.error_pct), recent.error_pct !== null);
  row.errors.value.classList.toggle("err", recent.error_pct > 0);
  setValue(row.p99.value, ms(recent.p99_ms), recent.p99_ms !== null);
  const span = `${recent.seconds} s`;
  row.rps.value.title = `requests per second over the last ${span}`;
  row.errors.value.title = `share of 5xx responses over the last ${span}`;
  row.p99.value.title = `99th percentile latency over the last ${span}`;
  drawChart(row.rps.chart, rps, 1, rate, "requests per second");
  drawChart(row.errors.chart, errPct, 1, pct, "5xx responses, % of requests");
  drawChart(row.p99.chart, s.p99_ms, 1, ms, "99th percentile latency");
}

function setValue(node, text, present) {
  node.textContent = text;
  node.classList.toggle("none", !present);
}

// -- page --------------------------------------------------------------------------------------

function renderReload(status) {
  const reloads = status.recent_reloads || [];
  const last = reloads[0];
  const summary = $("reload-summary");
  if (!last) {
    summary.textContent = "none yet";
  } else {
    const parts = [`${clock(last.at)} (${ago(last.at, status.now)})`];
    if (last.result === "rejected") {
      parts.push("rejected");
    } else {
      parts.push(`applied in ${secs(last.seconds)}`);
      if (last.loaded.length) parts.push(`loaded ${last.loaded.join(", ")}`);
      if (last.failed.length) parts.push(`failed ${last.failed.join(", ")}`);
      if (last.removed.length) parts.push(`removed ${last.removed.join(", ")}`);
      if (!last.loaded.length && !last.failed.length && !last.removed.length) parts.push("no app changed");
    }
    summary.textContent = parts.join(" · ");
    summary.className = last.result === "rejected" || last.failed.length ? "err" : "ok";
  }
  const box = $("config-error");
  if (status.config_error) {
    const list = $("config-problems");
    const rejected = reloads.find((r) => r.result === "rejected");
    const items = [];
    if (rejected && rejected.problems.length) {
      for (const p of rejected.problems) items.push(problemItem(p));
    } else {
      for (const line of status.config_error.split("\n")) items.push(el("li", "", line));
    }
    list.replaceChildren(...items);
    box.hidden = false;
  } else {
    box.hidden = true;
  }
  const fileProblems = status.app_file_problems || [];
  $("file-problem-list").replaceChildren(...fileProblems.map(problemItem));
  $("file-problems").hidden = fileProblems.length === 0;
}

// One configuration problem: "file:line: app 'x': field 'y': message".
function problemItem(p) {
  const li = el("li");
  li.appendChild(el("span", "where", p.line === null ? p.file : `${p.file}:${p.line}`));
  const what = [p.app === null ? null : `app '${p.app}'`, p.field === null ? null : `field '${p.field}'`, p.message];
  li.append(": " + what.filter((w) => w !== null).join(": "));
  return li;
}

function render(status, history) {
  const ready = $("ready");
  ready.textContent = status.ready ? "ready" : "not ready";
  ready.className = `badge ${status.ready ? "ready" : "notready"}`;
  $("summary").textContent = `${status.routes_file} · pid ${status.pid} · ${status.reloads} swaps · ` +
                             `${status.unmatched_requests} unmatched requests`;
  $("updated").textContent = `updated ${clock(status.now)}`;
  renderReload(status);

  const body = document.querySelector("#apps tbody");
  const seen = new Set();
  for (const app of status.apps) {
    seen.add(app.name);
    let row = rows.get(app.name);
    if (!row) {
      row = makeRow(app.name);
      rows.set(app.name, row);
    }
    body.appendChild(row.tr); // (re)appending keeps the file's order
    updateRow(row, app, history.apps[app.name], history.step_s, status.now);
  }
  for (const [name, row] of rows) {
    if (!seen.has(name)) {
      row.tr.remove();
      rows.delete(name);
    }
  }
  $("no-apps").hidden = status.apps.length > 0;
  $("footer").textContent = `charts: ${history.window_s / 60} min in ${history.step_s} s steps; ` +
    "numbers: the last 10 s. With --workers N each poll is answered by one worker, for its own traffic.";
}

async function poll(gen) {
  const [window_s, step_s] = $("window").value.split(":");
  try {
    const [status, history] = await Promise.all([
      getJSON("status.json"),
      getJSON(`status/history.json?window=${window_s}&step=${step_s}`),
    ]);
    if (gen !== generation) return;
    render(status, history);
    $("offline").hidden = true;
  } catch (err) {
    if (gen !== generation) return;
    $("offline").hidden = false;
  }
  pollTimer = setTimeout(() => poll(gen), POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("window").addEventListener("change", () => {
    clearTimeout(pollTimer);
    poll(++generation);
  });
  poll(generation);
});
