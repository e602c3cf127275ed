import { clientOptions, messageItem, param, span, statusRenderer, subscribe, timeOf } from "/demo/assets/common.js";

/** Points drawn per chart and messages listed: the page's memory stays flat however long it runs. */
const MAX_POINTS = 60;
const MAX_LOG = 50;
const SVG = "http://www.w3.org/2000/svg";
const feed = param("feed", "demo");
const caption = document.getElementById("caption");
const chartsElement = document.getElementById("charts");
const log = document.getElementById("messages");
const errorLine = document.getElementById("error");
const charts = new Map();
document.getElementById("feed").textContent = feed;

function chartFor(field) {
  let chart = charts.get(field);
  if (chart) return chart;
  const box = document.createElement("div");
  box.className = "chart";
  box.dataset.field = field;
  const title = document.createElement("div");
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${MAX_POINTS - 1} 100`);
  svg.setAttribute("preserveAspectRatio", "none");
  const line = document.createElementNS(SVG, "polyline");
  svg.append(line);
  box.append(title, svg);
  chartsElement.append(box);
  chart = { title, line, values: [] };
  charts.set(field, chart);
  return chart;
}

function draw(field, value) {
  const chart = chartFor(field);
  chart.values.push(value);
  if (chart.values.length > MAX_POINTS) chart.values.shift();
  const min = Math.min(...chart.values);
  const max = Math.max(...chart.values);
  const range = max - min || 1;
  chart.line.setAttribute("points", chart.values.map((v, i) => `${i},${100 - ((v - min) / range) * 96 - 2}`).join(" "));
  chart.title.textContent = `${field}: ${value}`;
}

subscribe(
  [`feed:${feed}`],
  {
    onMessage(message) {
      caption.textContent = message.body ?? "";
      const data = message.data;
      if (data !== null && typeof data === "object") {
        for (const [field, value] of Object.entries(data)) {
          if (typeof value === "number" && Number.isFinite(value)) draw(field, value);
        }
      }
      log.prepend(messageItem(message, span("time", timeOf(message))));
      while (log.children.length > MAX_LOG) log.lastElementChild.remove();
    },
    onStatus: statusRenderer(document.getElementById("status")),
    onError(error) {
      errorLine.textContent = error.message;
    },
  },
  clientOptions({ cursorStore: null }),
);
