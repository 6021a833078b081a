/* The monitoring page: reads GET /monitor and GET /monitor/history, draws them with uPlot.
 *
 * Plain script, no build step. Every figure is {value, lower, upper, n}; a null value is
 * "not enough data" and is drawn as a gap and written as such, never as 0.
 */
"use strict";

const REFRESH_MS = 5000;
const TOKEN_KEY = "monitor-read-token";
const VERSION_COLORS = ["#2563eb", "#d97706", "#059669", "#9333ea", "#dc2626", "#0891b2"];
const SERIES_COLORS = ["#2563eb", "#d97706", "#059669", "#9333ea", "#dc2626", "#0891b2",
  "#65a30d", "#db2777", "#4b5563", "#ca8a04"];
const UNITS = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

const params = new URLSearchParams(window.location.search);
const state = {
  windowName: params.get("window"),
  range: Number(params.get("range")) || 3600,
  refreshing: false,
  refreshes: 0,
  charts: {},
};

/* ---------- formatting ---------- */

function seconds(name) {
  const m = /^(\d+)([smhdw])$/.exec(name);
  return m ? Number(m[1]) * UNITS[m[2]] : null;
}

function fmt(v, digits = 3) {
  if (v === null || v === undefined) return "not enough data";
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en");
  return Number(v).toFixed(digits);
}

function fmtInterval(f) {
  if (!f || f.lower === null || f.lower === undefined) return "—";
  return `${fmt(f.lower)} – ${fmt(f.upper)}`;
}

function clock(t) {
  return new Date(t * 1000).toISOString().slice(11, 16);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) node.append(child);
  return node;
}

/* ---------- fetching, with the optional read token ---------- */

async function getJSON(url) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, { headers, cache: "no-store" });
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    const error = new Error("this monitor needs its read token");
    error.unauthorized = true;
    throw error;
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${url}: HTTP ${response.status}`);
  return body;
}

function askForToken() {
  const form = document.getElementById("token-form");
  form.hidden = false;
  document.getElementById("token-input").focus();
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = document.getElementById("token-input").value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  document.getElementById("token-form").hidden = true;
  refresh();
});

/* ---------- charts ---------- */

const tooltip = document.getElementById("tooltip");

function tooltipPlugin(meta) {
  return {
    hooks: {
      setCursor: (u) => {
        const idx = u.cursor.idx;
        if (idx === null || idx === undefined || u.cursor.left < 0) {
          tooltip.hidden = true;
          return;
        }
        const lines = [`<strong>${clock(u.data[0][idx])} UTC</strong>`];
        for (const m of meta) {
          if (m.hidden) continue;
          const p = m.points[idx] || {};
          const interval = p.lower !== null && p.lower !== undefined
            ? ` [${fmt(p.lower)} – ${fmt(p.upper)}]` : "";
          const value = p.value === null || p.value === undefined
            ? "not enough data" : `${fmt(p.value, m.digits ?? 3)}${interval}`;
          lines.push(`<span style="color:${m.color}">●</span> ${m.label}: ${value}` +
            ` <span class="muted">n=${p.n ?? 0}</span>`);
        }
        tooltip.innerHTML = lines.join("<br>");
        tooltip.hidden = false;
        const box = u.over.getBoundingClientRect();
        const x = box.left + window.scrollX + u.cursor.left + 14;
        const y = box.top + window.scrollY + u.cursor.top + 14;
        tooltip.style.left = `${Math.min(x, window.scrollX + window.innerWidth - 320)}px`;
        tooltip.style.top = `${y}px`;
      },
    },
  };
}

function needsDots(points) {
  const defined = (i) => i >= 0 && i < points.length && points[i].value !== null;
  let count = 0;
  for (let i = 0; i < points.length; i += 1) {
    if (!defined(i)) continue;
    count += 1;
    if (!defined(i - 1) && !defined(i + 1)) return true;
  }
  return count < 20;
}

/* series: [{label, color, points, dash, band, digits}], options: {yRange, threshold, bars} */
function drawChart(id, series, options = {}) {
  const target = document.getElementById(id);
  const panel = target.closest(".panel");
  const times = series.length ? series[0].points.map((p) => p.t) : [];
  const defined = series.some((s) => s.points.some((p) => p.value !== null));
  const empty = panel.querySelector(".empty") || panel.appendChild(el("p", { class: "empty" }));
  empty.textContent = defined ? "" : options.emptyText || "not enough data yet";
  empty.hidden = defined;
  const data = [times];
  const uSeries = [{}];
  const bands = [];
  const meta = [];
  for (const s of series) {
    const index = data.length;
    data.push(s.points.map((p) => p.value));
    uSeries.push({
      label: s.label, stroke: s.color, width: s.width || 2, dash: s.dash,
      spanGaps: false,
      // Dots where a line cannot show a point (sparse data, a lone point between gaps).
      points: { show: needsDots(s.points), size: 5 },
    });
    meta.push(s);
    if (s.band) {
      data.push(s.points.map((p) => (p.value === null ? null : p.upper)));
      data.push(s.points.map((p) => (p.value === null ? null : p.lower)));
      uSeries.push({ label: `${s.label} upper`, stroke: "transparent", points: { show: false } });
      uSeries.push({ label: `${s.label} lower`, stroke: "transparent", points: { show: false } });
      bands.push({ series: [index + 1, index + 2], fill: `${s.color}33` });
    }
  }
  if (options.threshold !== undefined) {
    data.push(times.map(() => options.threshold));
    uSeries.push({ label: "threshold", stroke: "#dc2626", dash: [6, 4], width: 1.5,
      points: { show: false } });
  }
  const signature = JSON.stringify(uSeries.map((s) => s.label)) + JSON.stringify(options.yRange);
  const width = Math.max(280, target.clientWidth);
  let chart = state.charts[id];
  if (chart && chart.signature === signature) {
    chart.meta.splice(0, chart.meta.length, ...meta);
    chart.plot.setData(data);
  } else {
    if (chart) chart.plot.destroy();
    target.replaceChildren();
    const plot = new uPlot({
      width, height: 220, series: uSeries, bands,
      legend: { show: false },
      cursor: { points: { size: 6 } },
      scales: { x: { time: true }, y: options.yRange ? { range: options.yRange } : {} },
      axes: [
        { stroke: "#475569", grid: { stroke: "#e2e8f0" } },
        { stroke: "#475569", grid: { stroke: "#e2e8f0" }, size: 56 },
      ],
      plugins: [tooltipPlugin(meta)],
    }, data, target);
    chart = state.charts[id] = { plot, signature, meta };
  }
  drawKey(panel, series, options);
  panel.dataset.drawn = "true";
  panel.dataset.series = String(series.length);
}

function drawKey(panel, series, options) {
  const key = panel.querySelector(".key") || panel.appendChild(el("ul", { class: "key" }));
  key.replaceChildren(...series.map((s) => el("li", {},
    el("span", { class: s.dash ? "swatch dashed" : "swatch", style: `--c:${s.color}` }),
    s.label)));
  if (options.threshold !== undefined) {
    key.append(el("li", {}, el("span", { class: "swatch dashed", style: "--c:#dc2626" }),
      `threshold ${options.threshold}`));
  }
}

/* ---------- panels ---------- */

function versionColor(versions, version) {
  return VERSION_COLORS[versions.indexOf(version) % VERSION_COLORS.length];
}

function headline(task) {
  return task === "regression"
    ? { key: "mae", label: "MAE", range: null }
    : { key: "accuracy", label: "Accuracy", range: [0, 1] };
}

function drawHistory(history, snapshot) {
  const versions = Object.keys(history.versions);
  const serving = snapshot.model.version;
  const main = history.versions[serving] || history.versions[versions[0]];
  const task = snapshot.model.task;
  const head = headline(task);
  const multi = versions.length > 1;
  const tag = (v) => (multi ? ` ${v}` : "");

  drawChart("chart-traffic", versions.flatMap((v) => [
    { label: `predictions${tag(v)}`, color: versionColor(versions, v),
      points: history.versions[v].predictions, digits: 0 },
    { label: `labels${tag(v)}`, color: `${versionColor(versions, v)}99`, dash: [4, 3], width: 1.5,
      points: history.versions[v].labels, digits: 0 },
  ]));

  const quality = versions.flatMap((v) => {
    const h = history.versions[v];
    const out = [{ label: `${head.label}${tag(v)}`, color: versionColor(versions, v), band: true,
      points: h.quality[head.key] }];
    if (h.estimated && h.estimated.accuracy) {
      // One version: the estimate in a colour of its own, so that agreeing lines both show.
      const color = multi ? `${versionColor(versions, v)}aa` : "#9333ea";
      out.push({ label: `estimated${tag(v)}`, color, dash: [6, 4], width: 2, band: false,
        points: h.estimated.accuracy });
    }
    return out;
  });
  document.getElementById("quality-title").textContent = task === "regression"
    ? "Regression error (MAE) per window"
    : "Accuracy with its 95% interval, against the label-free estimate";
  drawChart("chart-quality", quality, { yRange: head.range });

  let classSeries = [];
  if (task === "regression") {
    classSeries = ["rmse", "mae"].map((name, i) => ({ label: name.toUpperCase(),
      color: SERIES_COLORS[i], points: main.quality[name] }));
    document.getElementById("classes-title").textContent = `Regression errors (${serving})`;
  } else {
    const classes = Object.keys(main.quality.recall);
    classSeries = classes.flatMap((c, i) => [
      { label: `recall ${c}`, color: SERIES_COLORS[i % SERIES_COLORS.length],
        points: main.quality.recall[c] },
      { label: `precision ${c}`, color: SERIES_COLORS[i % SERIES_COLORS.length], dash: [5, 3],
        points: main.quality.precision[c] },
    ]);
    document.getElementById("classes-title").textContent =
      `Recall and precision per class (${serving})`;
  }
  drawChart("chart-classes", classSeries, { yRange: task === "regression" ? null : [0, 1] });

  const psi = main.drift.psi || {};
  drawChart("chart-drift", Object.keys(psi).map((f, i) => ({
    label: f, color: SERIES_COLORS[i % SERIES_COLORS.length], points: psi[f] })),
  { threshold: main.drift.psi_threshold, emptyText: "no reference profile, or no data yet" });

  const fairness = main.fairness || {};
  const groupSeries = [];
  const disparitySeries = [];
  for (const [attribute, figures] of Object.entries(fairness)) {
    Object.entries(figures.groups).forEach(([group, rates]) => {
      const name = rates.selection_rate ? "selection_rate" : "mae";
      groupSeries.push({ label: `${attribute}=${group}`,
        color: SERIES_COLORS[groupSeries.length % SERIES_COLORS.length], points: rates[name] });
    });
    Object.entries(figures.disparities).forEach(([name, points]) => {
      disparitySeries.push({ label: `${name.replaceAll("_", " ")} (${attribute})`,
        color: SERIES_COLORS[disparitySeries.length % SERIES_COLORS.length], points });
    });
  }
  document.getElementById("fairness-title").textContent = task === "regression"
    ? `MAE per group (${serving})` : `Selection rate per group (${serving})`;
  drawChart("chart-fairness", groupSeries,
    { yRange: task === "regression" ? null : [0, 1], emptyText: "no sensitive attributes, or not enough labels yet" });
  drawChart("chart-disparities", disparitySeries,
    { emptyText: "not enough labelled rows per group yet" });
}

function card(label, figure, detail, flag) {
  const value = figure && figure.value !== null && figure.value !== undefined;
  return el("div", { class: `card${flag ? ` ${flag}` : ""}`, "data-card": label },
    el("div", { class: "card-label", text: label }),
    el("div", { class: value ? "card-value" : "card-value none",
      text: value ? fmt(figure.value) : "not enough data" }),
    el("div", { class: "card-detail muted", text: detail }));
}

function drawCards(snapshot) {
  const w = snapshot.windows[state.windowName];
  const task = snapshot.model.task;
  const head = headline(task);
  const q = w.quality[head.key];
  const features = Object.entries(w.drift.features || {});
  const drifted = features.filter(([, f]) => f.drifted === true).map(([name]) => name);
  const cards = [
    card(`${head.label} (${state.windowName})`, q,
      q && q.value !== null ? `95%: ${fmtInterval(q)} · n=${q.n} labels`
        : `n=${q ? q.n : 0} labels so far`),
  ];
  const compared = comparisonCard(snapshot, head);
  if (compared) cards.push(compared);
  if (w.estimated && w.estimated.accuracy) {
    const e = w.estimated.accuracy;
    cards.push(card("Estimated accuracy (no labels needed)", e,
      e.value !== null ? `95%: ${fmtInterval(e)} · n=${e.n} predictions` : "no scored predictions"));
  }
  cards.push(card("Predictions / labels", { value: w.n_predictions },
    `${w.n_labels.toLocaleString("en")} labels in ${state.windowName}`));
  cards[cards.length - 1].querySelector(".card-value").textContent =
    `${w.n_predictions.toLocaleString("en")} / ${w.n_labels.toLocaleString("en")}`;
  cards.push(card("Drifted features", { value: drifted.length },
    drifted.length ? drifted.join(", ") : `none of ${features.length} over PSI ${w.drift.psi_threshold}`,
    drifted.length ? "alert" : "ok"));
  cards[cards.length - 1].querySelector(".card-value").textContent =
    `${drifted.length} of ${features.length}`;
  const worst = worstDisparity(w.fairness || {});
  if (worst) {
    cards.push(card(`Fairness gap (${worst.label})`, worst.figure,
      worst.figure.value !== null ? `${worst.name}, n=${worst.figure.n}` : "not enough labelled rows per group"));
  }
  document.getElementById("cards").replaceChildren(...cards);
}

/* The newest version against the one before it, over every label since the rollout began,
   with the anytime-valid interval: the one figure that may be watched continuously (what
   ModelVersionRegression reads). A window's fixed interval, looked at every refresh, is not. */
function rolloutFigure(snapshot, head) {
  const c = snapshot.comparison;
  if (!c || c.error || !c.rollout || !c.rollout.figures) return null;
  const d = c.rollout.figures[head.key];
  return d ? { comparison: c, d, level: Math.round((1 - c.rollout.alpha) * 100) } : null;
}

function comparisonCard(snapshot, head) {
  const figure = rolloutFigure(snapshot, head);
  if (!figure) return null;
  const { comparison: c, d, level } = figure;
  const lowerIsBetter = head.key === "mae";
  const defined = d.value !== null && d.value !== undefined;
  let flag = "";
  if (defined && d.lower !== null) {
    const worse = lowerIsBetter ? d.lower > 0 : d.upper < 0;
    const better = lowerIsBetter ? d.upper < 0 : d.lower > 0;
    flag = worse ? "alert" : better ? "ok" : "";
  }
  const node = card(`${head.label} since the rollout: ${c.version} − ${c.baseline}`, d,
    defined ? `anytime ${level}%: ${fmtInterval(d)} · n=${d.n} / ${d.n_baseline} labels`
      : "not enough labels for both versions yet", flag);
  if (defined) {
    node.querySelector(".card-value").textContent = `${d.value >= 0 ? "+" : ""}${fmt(d.value)}`;
  }
  return node;
}

/* The widest gap between groups: demographic parity or equalized odds (MAE for a regressor). */
function worstDisparity(fairness) {
  let worst = null;
  for (const [attribute, figures] of Object.entries(fairness)) {
    const d = figures.disparities || {};
    const candidates = d.demographic_parity_difference ? [
      ["demographic parity difference", d.demographic_parity_difference.between_groups],
      ["equalized odds difference", d.equalized_odds_difference.worst_case.between_groups],
    ] : [["MAE difference", d.mae_difference]];
    for (const [name, figure] of candidates) {
      if (!figure) continue;
      if (!worst || (figure.value ?? -1) > (worst.figure.value ?? -1)) {
        worst = { label: attribute, figure, name };
      }
    }
  }
  return worst;
}

function figureRows(snapshot) {
  const rows = [];
  const task = snapshot.model.task;
  const head = headline(task);
  for (const [version, entry] of Object.entries(snapshot.versions || {})) {
    const w = entry.windows[state.windowName];
    if (!w) continue;
    rows.push(["predictions", version, { value: w.n_predictions, n: w.n_predictions }]);
    rows.push(["labels", version, { value: w.n_labels, n: w.n_labels }]);
    rows.push([head.key, version, w.quality[head.key]]);
    if (w.estimated && w.estimated.accuracy) rows.push(["estimated accuracy", version, w.estimated.accuracy]);
    if (task !== "regression") {
      for (const name of ["recall", "precision"]) {
        for (const [cls, f] of Object.entries(w.quality[name].per_class)) {
          rows.push([`${name} ${cls}`, version, f]);
        }
      }
    } else {
      for (const name of ["rmse", "mape", "r2"]) rows.push([name, version, w.quality[name]]);
    }
    for (const [feature, f] of Object.entries(w.drift.features || {})) {
      rows.push([`psi ${feature}`, version, f.psi]);
    }
    for (const [attribute, figures] of Object.entries(w.fairness || {})) {
      for (const [group, g] of Object.entries(figures.groups || {})) {
        const name = task === "regression" ? "mae" : "selection_rate";
        rows.push([`${name} ${attribute}=${group}`, version, g[name] || { value: null, n: g.n }]);
      }
      const d = figures.disparities || {};
      if (d.demographic_parity_difference) {
        rows.push([`demographic parity difference (${attribute})`, version,
          d.demographic_parity_difference.between_groups]);
        rows.push([`equalized odds difference (${attribute})`, version,
          d.equalized_odds_difference.worst_case.between_groups]);
      }
    }
  }
  return rows;
}

function drawTable(snapshot) {
  document.getElementById("figures-window").textContent = state.windowName;
  const body = document.querySelector("#figures tbody");
  body.replaceChildren(...figureRows(snapshot).map(([name, version, f]) => {
    const figure = f || { value: null, n: 0 };
    const none = figure.value === null || figure.value === undefined;
    return el("tr", { "data-figure": name, "data-version": version,
      "data-value": none ? "" : String(figure.value) },
    el("th", { scope: "row", text: name }),
    el("td", { text: version, title: version }),
    el("td", { class: none ? "none" : "num",
      text: none ? "not enough data" : fmt(figure.value, Number.isInteger(figure.value) ? 0 : 3) }),
    el("td", { class: "num", text: fmtInterval(figure) }),
    el("td", { class: "num", text: String(figure.n ?? 0) }));
  }));
}

function drawVersions(snapshot) {
  const target = document.getElementById("versions");
  const versions = Object.keys(snapshot.versions || {});
  const comparison = snapshot.comparison;
  const head = headline(snapshot.model.task);
  if (versions.length < 2) {
    target.replaceChildren(el("p", { class: "muted",
      text: `One version (${versions[0] || snapshot.model.version}) has data: deploy another to compare.` }));
    target.closest(".panel").dataset.drawn = "true";
    return;
  }
  const w = (v) => snapshot.versions[v].windows[state.windowName];
  const diff = comparison && comparison.windows ? comparison.windows[state.windowName] : null;
  const rollout = rolloutFigure(snapshot, head);
  const rows = [
    ["predictions", (v) => ({ value: w(v).n_predictions }), null],
    ["labels", (v) => ({ value: w(v).n_labels }), null],
    [head.label, (v) => w(v).quality[head.key], diff ? diff[head.key] : null],
  ];
  if (rollout) {
    const side = (v) => (v === comparison.version ? rollout.d.n : v === comparison.baseline
      ? rollout.d.n_baseline : null);
    rows.push([`labels since the rollout (${head.label}, anytime ${rollout.level}%)`,
      (v) => ({ value: side(v) }), rollout.d]);
  }
  if (w(versions[0]).estimated && w(versions[0]).estimated.accuracy) {
    rows.push(["estimated accuracy", (v) => w(v).estimated.accuracy, null]);
  }
  const header = el("tr", {}, el("th", { scope: "col", text: "figure" }),
    ...versions.map((v) => el("th", { scope: "col", text: v === snapshot.model.version ? `${v} (serving)` : v })),
    el("th", { scope: "col",
      text: comparison && !comparison.error ? `${comparison.version} − ${comparison.baseline}` : "difference" }));
  const body = rows.map(([name, get, d]) => el("tr", { "data-compare": name },
    el("th", { scope: "row", text: name }),
    ...versions.map((v) => {
      const f = get(v) || {};
      return el("td", { class: f.value === null || f.value === undefined ? "none" : "num",
        text: f.value === null || f.value === undefined ? "not enough data"
          : `${fmt(f.value, Number.isInteger(f.value) ? 0 : 3)}${f.n !== undefined && !Number.isInteger(f.value) ? ` (n=${f.n})` : ""}` });
    }),
    el("td", { class: d && d.value !== null ? "num" : "none",
      text: d ? (d.value !== null ? `${d.value >= 0 ? "+" : ""}${fmt(d.value)} [${fmtInterval(d)}]`
        : "not enough data") : "" })));
  const table = el("table", { class: "compare" }, el("thead", {}, header), el("tbody", {}, ...body));
  const note = comparison && comparison.error ? el("p", { class: "muted", text: comparison.error }) : "";
  target.replaceChildren(table, note);
  target.closest(".panel").dataset.drawn = "true";
}

/* ---------- refresh loop ---------- */

function fillWindows(snapshot) {
  const select = document.getElementById("window-select");
  const names = Object.keys(snapshot.windows);
  if (select.options.length !== names.length) {
    select.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
    state.windowName = names.includes(state.windowName) ? state.windowName : names[0];
  }
  select.value = state.windowName;
}

async function refresh() {
  if (state.refreshing) return;
  state.refreshing = true;
  const status = document.getElementById("status");
  try {
    const snapshot = await getJSON("/monitor");
    fillWindows(snapshot);
    const windowSeconds = seconds(state.windowName) || 300;
    const now = Date.now() / 1000;
    // The server picks the step: whole buckets, at most 240 points over the range.
    const url = `/monitor/history?window=${windowSeconds}s&from=${Math.floor(now - state.range)}`;
    const history = await getJSON(url);
    const m = snapshot.model;
    document.getElementById("model-name").textContent = m.name;
    document.getElementById("model-meta").textContent =
      `serving version ${m.version} · ${m.task} · ${Object.keys(snapshot.versions || {}).length} version(s) with data`;
    drawCards(snapshot);
    drawHistory(history, snapshot);
    drawVersions(snapshot);
    drawTable(snapshot);
    state.refreshes += 1;
    document.body.dataset.refreshes = String(state.refreshes);
    status.textContent = `updated ${new Date().toLocaleTimeString("en-GB")} · every ${REFRESH_MS / 1000} s`;
    status.className = "status ok";
  } catch (error) {
    status.textContent = error.message;
    status.className = "status error";
    if (error.unauthorized) askForToken();
  } finally {
    state.refreshing = false;
  }
}

const rangeSelect = document.getElementById("range-select");
if (![...rangeSelect.options].some((o) => Number(o.value) === state.range)) {
  rangeSelect.append(el("option", { value: String(state.range), text: `last ${state.range} s` }));
}
rangeSelect.value = String(state.range);

document.getElementById("window-select").addEventListener("change", (event) => {
  state.windowName = event.target.value;
  refresh();
});
document.getElementById("range-select").addEventListener("change", (event) => {
  state.range = Number(event.target.value);
  refresh();
});
window.addEventListener("resize", () => {
  for (const [id, chart] of Object.entries(state.charts)) {
    chart.plot.setSize({ width: Math.max(280, document.getElementById(id).clientWidth), height: 220 });
  }
});

refresh();
setInterval(refresh, REFRESH_MS);
