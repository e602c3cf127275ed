// Live time-series charts of a feed's numeric `data` fields, drawn with uPlot.
//
// Messages only record data; drawing happens once per animation frame, so a feed publishing 20 times a
// second costs at most one setData per chart per frame. The page reports what it received and drew as
// data- attributes on #charts and on each .chart, which the browser tests read. How it gets its messages
// (the current values at load, then live in latest mode) is in dashboard-feed.js.
import { curlExample, liveStatus, param } from "/demo/assets/common.js";
import { captions, followFeed } from "/demo/assets/dashboard-feed.js";
import { add, measureVisible, trim, yRange } from "/demo/assets/dashboard-series.js";

const uPlot = globalThis.uPlot;

/** The windows the picker offers, in seconds. Data is kept for the longest, so switching shows history. */
const WINDOWS = [30, 120, 600];
const KEEP_SECONDS = Math.max(...WINDOWS);
/** However fast a feed publishes, a chart holds at most this many points (20 a second for 10 minutes). */
const MAX_POINTS = 12_000;
const MAX_LOG = 50;
/** Charts on the page; further fields of a feed show only in the list of messages. */
const MAX_CHARTS = 12;
/** The window slides on its own between samples, and a stale chart's "last sample … ago" counts, once a second. */
const TICK_MS = 1000;
/** Animation frames stop in a hidden tab; this fallback keeps the list and readouts current there. */
const FALLBACK_FRAME_MS = 250;
/** A chart whose last sample is older than this is shown as stale. */
const STALE_SECONDS = 10;

/** What the demo feed (src/demo/demo-feed.ts) publishes; any other numeric field gets a chart too. */
const METRICS = {
  cpu: { label: "CPU", unit: "%", min: 0, max: 100 },
  memory: { label: "Memory", unit: "%", min: 0, max: 100 },
  requests: { label: "Requests", unit: "req/s", min: 0 },
};

const feed = param("feed", "demo");
const mailbox = `feed:${feed}`;
const chartsElement = document.getElementById("charts");
const caption = document.getElementById("caption");
const captionOf = captions(summary);
const latest = document.getElementById("latest");
const log = document.getElementById("messages");
const recent = document.getElementById("recent");
const empty = document.getElementById("empty");
/** The status line and notices (server down, token needed) every demo page shows. */
const live = liveStatus(document.getElementById("status"), { mailboxes: [mailbox] });

const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const tickFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 3 });
const compactFormat = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
const secondsFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit", second: "2-digit" });
const minutesFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });

/** field → chart state; insertion order is the order the fields first arrived. */
const charts = new Map();
let windowSeconds = initialWindow();
/** The right edge of every chart (seconds): now, or the newest sample if the server's clock is ahead. */
let viewEnd = Date.now() / 1000;
let newestTime = 0;
/** Colours come from dashboard.css (light or dark); read when the first chart is drawn and on a change. */
let theme;

// Counters the page reports for the tests: messages with numbers received, how many of those are on the
// charts, and frames run.
let updates = 0;
let drawn = 0;
let frames = 0;
let maxLagMs = 0;
/** When the oldest sample not yet drawn arrived (performance.now()), or undefined. */
let undrawnSince;
let slide = false;
let pendingCaption;
/** Messages for the list not yet shown, oldest first; never more than the list holds. */
let pendingLog = [];

// ---------------------------------------------------------------------------------------------------------
// Frames: everything visible changes here, at most once per animation frame.

let scheduled;

function schedule() {
  if (scheduled) return;
  const run = () => {
    cancelAnimationFrame(scheduled.frame);
    clearTimeout(scheduled.timer);
    scheduled = undefined;
    frame();
  };
  scheduled = { frame: requestAnimationFrame(run), timer: setTimeout(run, FALLBACK_FRAME_MS) };
}

function frame() {
  frames++;
  viewEnd = Math.max(Date.now() / 1000, newestTime);
  let everyChartDrawn = true;
  for (const chart of charts.values()) {
    if (!chart.card) buildCard(chart);
    if (!chart.plot) buildPlot(chart);
    if (
      chart.plot &&
      chart.size &&
      (chart.size.width !== chart.plot.width || chart.size.height !== chart.plot.height)
    ) {
      chart.plot.setSize(chart.size);
    }
    if (chart.dirty || slide) draw(chart);
    if (!chart.plot) everyChartDrawn = false;
    markStale(chart);
  }
  slide = false;
  if (everyChartDrawn) drawn = updates;
  if (charts.size > 0 && !empty.hidden) empty.hidden = true;
  if (pendingCaption !== undefined) {
    caption.textContent = pendingCaption;
    latest.hidden = false;
    pendingCaption = undefined;
  }
  flushLog();
  if (undrawnSince !== undefined) {
    maxLagMs = Math.max(maxLagMs, performance.now() - undrawnSince);
    undrawnSince = undefined;
  }
  chartsElement.dataset.updates = String(updates);
  chartsElement.dataset.drawn = String(drawn);
  chartsElement.dataset.frames = String(frames);
  chartsElement.dataset.maxLagMs = String(Math.round(maxLagMs));
}

// ---------------------------------------------------------------------------------------------------------
// Data

function receive(message) {
  live.onMessage(message);
  const parsed = Date.parse(message.time);
  const time = Number.isFinite(parsed) ? parsed / 1000 : Date.now() / 1000;
  pendingCaption = captionOf(message);
  pendingLog.push(message);
  if (pendingLog.length > MAX_LOG) pendingLog = pendingLog.slice(-MAX_LOG);
  const data = message.data;
  let numeric = false;
  if (data !== null && typeof data === "object" && !Array.isArray(data)) {
    for (const [field, value] of Object.entries(data)) {
      if (typeof value !== "number" || !Number.isFinite(value)) continue;
      if (!charts.has(field) && charts.size >= MAX_CHARTS) continue;
      add(chartFor(field), time, value);
      numeric = true;
    }
  }
  if (numeric) {
    updates++;
    newestTime = Math.max(newestTime, time);
    undrawnSince ??= performance.now();
  }
  schedule();
}

/** A caption for a message without a body: its numbers, as `cpu=42 · memory=61`. */
function summary(data) {
  if (data === null || typeof data !== "object") return "";
  return Object.entries(data)
    .filter(([, value]) => typeof value === "number")
    .map(([field, value]) => `${field}=${numberFormat.format(value)}`)
    .join(" · ");
}

function chartFor(field) {
  let chart = charts.get(field);
  if (!chart) {
    chart = {
      field,
      spec: specFor(field),
      colorIndex: charts.size,
      xs: [],
      ys: [],
      dirty: true,
      draws: 0,
      hi: undefined,
      visible: { min: Number.NaN, max: Number.NaN, count: 0 },
    };
    charts.set(field, chart);
  }
  return chart;
}

function specFor(field) {
  if (Object.hasOwn(METRICS, field)) return METRICS[field];
  if (/(^|_)(pct|percent)$/i.test(field)) return { label: field, unit: "%", min: 0, max: 100 };
  return { label: field, unit: "", min: 0 };
}

// ---------------------------------------------------------------------------------------------------------
// Drawing

function unitSuffix(unit) {
  if (!unit) return "";
  return unit === "%" ? "%" : ` ${unit}`;
}

function formatTick(value) {
  return Math.abs(value) >= 10_000 ? compactFormat.format(value) : tickFormat.format(value);
}

function formatTime(seconds, withSeconds = true) {
  return (withSeconds ? secondsFormat : minutesFormat).format(new Date(seconds * 1000));
}

function formatWindow(seconds) {
  return seconds < 60 ? `${seconds} s` : `${seconds / 60} min`;
}

function readTheme() {
  const style = getComputedStyle(document.body);
  const read = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return {
    axis: read("--chart-axis", "#6b7280"),
    grid: read("--chart-grid", "rgba(128, 128, 128, 0.18)"),
    font: read("--chart-font", "12px system-ui, sans-serif"),
    card: read("--surface", "#fff"),
    series: [1, 2, 3, 4, 5, 6].map((n) => read(`--series-${n}`, "#3a6df0")),
  };
}

function currentTheme() {
  theme ??= readTheme();
  return theme;
}

function colorOf(chart) {
  const { series } = currentTheme();
  return series[chart.colorIndex % series.length];
}

/** `#rrggbb` at the given opacity, for the area under the line. */
function translucent(color, alpha) {
  return /^#[0-9a-f]{6}$/i.test(color)
    ? `${color}${Math.round(alpha * 255)
        .toString(16)
        .padStart(2, "0")}`
    : color;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function buildCard(chart) {
  const { field, spec } = chart;
  const card = element("figure", "chart");
  card.dataset.field = field;
  card.style.setProperty("--series", colorOf(chart));
  const head = element("figcaption", "chart-head");
  const name = element("span", "chart-name", spec.label);
  if (spec.unit) name.append(element("span", "chart-unit", spec.unit));
  const value = element("output", "value");
  const stats = element("span", "chart-stats");
  head.append(name, value, stats);
  const plotBox = element("div", "plot");
  card.append(head, plotBox);
  chartsElement.append(card);
  Object.assign(chart, { card, value, stats, plotBox });
  resizeObserver.observe(plotBox);
}

function buildPlot(chart) {
  if (!uPlot) return;
  const { spec, plotBox } = chart;
  const color = colorOf(chart);
  const palette = currentTheme();
  const width = Math.max(plotBox.clientWidth, 100);
  const height = Math.max(plotBox.clientHeight, 80);
  const axis = {
    stroke: palette.axis,
    font: palette.font,
    labelFont: palette.font,
    grid: { stroke: palette.grid, width: 1 },
    ticks: { stroke: palette.grid, width: 1, size: 4 },
  };
  const longUnit = spec.unit && spec.unit !== "%";
  const plot = new uPlot(
    {
      width,
      height,
      legend: { show: false },
      cursor: {
        sync: { key: "herald-dashboard" },
        y: false,
        drag: { x: false, y: false, setScale: false },
        points: { size: 9, width: 2, stroke: color, fill: palette.card },
      },
      scales: {
        x: { time: true, range: () => [viewEnd - windowSeconds, viewEnd] },
        y: { range: () => yRange(chart) },
      },
      axes: [
        {
          ...axis,
          size: 34,
          space: 70,
          values: (_plot, splits, _axis, _space, increment) => splits.map((v) => formatTime(v, increment < 60)),
        },
        {
          ...axis,
          size: 52,
          space: 28,
          values: (_plot, splits) => splits.map((v) => `${formatTick(v)}${spec.unit === "%" ? "%" : ""}`),
          ...(longUnit ? { label: spec.unit, labelSize: 18, labelGap: 2 } : {}),
        },
      ],
      series: [
        {},
        {
          label: spec.label,
          stroke: color,
          width: 2,
          fill: translucent(color, 0.14),
          points: { size: 5, space: 10 },
        },
      ],
      hooks: { setCursor: [(self) => showHover(chart, self)] },
    },
    [chart.xs, chart.ys],
    plotBox,
  );
  const hover = element("div", "hover");
  hover.hidden = true;
  plot.over.append(hover);
  chart.plot = plot;
  chart.hover = hover;
  chart.dirty = true;
}

function draw(chart) {
  trim(chart, viewEnd - KEEP_SECONDS, MAX_POINTS);
  measureVisible(chart, viewEnd - windowSeconds);
  const { card, plot, xs, ys, spec } = chart;
  if (plot) {
    plot.setData([xs, ys]);
    chart.draws++;
    card.dataset.draws = String(chart.draws);
    card.dataset.yMin = String(plot.scales.y.min);
    card.dataset.yMax = String(plot.scales.y.max);
    card.dataset.xSpan = String(Math.round(plot.scales.x.max - plot.scales.x.min));
  }
  chart.dirty = false;
  card.dataset.points = String(xs.length);
  if (ys.length === 0) return;
  const last = ys[ys.length - 1];
  card.dataset.last = String(last);
  chart.value.textContent = `${numberFormat.format(last)}${unitSuffix(spec.unit)}`;
  const { min, max, count } = chart.visible;
  chart.stats.textContent =
    count > 0
      ? `min ${numberFormat.format(min)} · max ${numberFormat.format(max)} · ${formatWindow(windowSeconds)}`
      : `nothing in the last ${formatWindow(windowSeconds)}`;
}

function markStale(chart) {
  const newest = chart.xs[chart.xs.length - 1];
  const stale = newest !== undefined && viewEnd - newest > STALE_SECONDS;
  if (stale !== chart.card.classList.contains("is-stale")) chart.card.classList.toggle("is-stale", stale);
  if (stale) chart.stats.textContent = `last sample ${Math.round(viewEnd - newest)} s ago`;
}

function showHover(chart, plot) {
  const { hover } = chart;
  if (!hover) return;
  const index = plot.cursor.idx;
  const y = index == null ? undefined : plot.data[1][index];
  if (y == null || plot.cursor.left == null || plot.cursor.left < 0) {
    hover.hidden = true;
    delete hover.dataset.value;
    return;
  }
  const x = plot.data[0][index];
  hover.replaceChildren(
    element("strong", "", `${numberFormat.format(y)}${unitSuffix(chart.spec.unit)}`),
    element("span", "hover-time", formatTime(x)),
  );
  hover.dataset.value = String(y);
  hover.hidden = false;
  const left = plot.valToPos(x, "x");
  const top = plot.valToPos(y, "y");
  const overWidth = plot.over.clientWidth;
  hover.classList.toggle("is-left", left > overWidth / 2);
  hover.style.left = `${left}px`;
  hover.style.top = `${Math.max(top, 0)}px`;
}

function flushLog() {
  if (pendingLog.length === 0) return;
  const fragment = document.createDocumentFragment();
  for (let i = pendingLog.length - 1; i >= 0; i--) fragment.append(logItem(pendingLog[i]));
  pendingLog = [];
  log.prepend(fragment);
  recent.hidden = false;
  while (log.children.length > MAX_LOG) log.lastElementChild.remove();
}

function logItem(message) {
  const item = document.createElement("li");
  item.dataset.id = message.id;
  const parsed = Date.parse(message.time);
  item.append(element("span", "time", Number.isFinite(parsed) ? formatTime(parsed / 1000) : ""));
  item.append(element("span", "body", message.body ?? ""));
  if (message.body === undefined && message.data !== undefined) {
    item.append(element("span", "data", JSON.stringify(message.data)));
  }
  return item;
}

// ---------------------------------------------------------------------------------------------------------
// Page

const resizeObserver = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const chart = charts.get(entry.target.parentElement?.dataset.field);
    if (!chart) continue;
    const { width, height } = entry.contentRect;
    chart.size = { width: Math.max(Math.floor(width), 100), height: Math.max(Math.floor(height), 80) };
  }
  schedule();
});

function initialWindow() {
  const asked = Number(param("window", ""));
  return WINDOWS.includes(asked) ? asked : 120;
}

function showWindow() {
  chartsElement.dataset.window = String(windowSeconds);
  for (const button of document.querySelectorAll(".window-picker button")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.window) === windowSeconds));
  }
}

function setWindow(seconds) {
  windowSeconds = seconds;
  showWindow();
  const url = new URL(location.href);
  url.searchParams.set("window", String(seconds));
  history.replaceState(null, "", url);
  slide = true;
  schedule();
}

function rebuildForTheme() {
  theme = undefined;
  for (const chart of charts.values()) {
    chart.plot?.destroy();
    chart.plot = undefined;
    chart.hover = undefined;
    chart.card?.style.setProperty("--series", colorOf(chart));
  }
  schedule();
}

function showEmptyState() {
  document.getElementById("feed").textContent = feed;
  document.title = `${mailbox} · Herald dashboard`;
  document.getElementById("empty-mailbox").textContent = mailbox;
  if (feed === "demo") {
    document.getElementById("empty-demo").hidden = false;
  } else {
    document.getElementById("empty-custom").hidden = false;
    curlExample(
      document.getElementById("empty-curl"),
      mailbox,
      `-H 'Content-Type: application/json' -d '{"body":"load 0.7","data":{"load":0.7}}'`,
    );
  }
}

showEmptyState();
showWindow();
for (const button of document.querySelectorAll(".window-picker button")) {
  button.addEventListener("click", () => setWindow(Number(button.dataset.window)));
}
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", rebuildForTheme);
setInterval(() => {
  slide = true;
  schedule();
}, TICK_MS);
if (!uPlot) {
  const warning = element("p", "hint", "The charting library did not load; the values are listed below.");
  chartsElement.before(warning);
}

followFeed(
  mailbox,
  { onMessage: receive, onStatus: live.onStatus, onError: live.onError },
  { report: chartsElement, note: document.getElementById("skipped") },
);
