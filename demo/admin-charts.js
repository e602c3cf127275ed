// The admin console's small time-series charts, drawn with uPlot from the server's one-a-second samples.

const uPlot = globalThis.uPlot;
/** Ten minutes of samples, as the server keeps. */
const KEEP = 600;

/** What each chart shows: one or more series read from a sample. */
export const CHARTS = [
  {
    id: "connections",
    label: "Connections",
    series: [
      { label: "SSE", read: (s) => s.connections.sse },
      { label: "ndjson", read: (s) => s.connections.ndjson },
      { label: "WS", read: (s) => s.connections.ws },
      { label: "long-poll", read: (s) => s.connections.longPoll },
    ],
  },
  { id: "publishes", label: "Publishes", unit: "/s", series: [{ label: "publishes/s", read: (s) => s.publishes }] },
  { id: "deliveries", label: "Deliveries", unit: "/s", series: [{ label: "deliveries/s", read: (s) => s.deliveries }] },
  { id: "gaps", label: "Gaps", unit: "/s", series: [{ label: "gaps/s", read: (s) => s.gaps }] },
  {
    id: "slow",
    label: "Slow consumers cut",
    unit: "/s",
    series: [{ label: "cut/s", read: (s) => s.slowConsumersCut }],
  },
  {
    id: "limited",
    label: "Rate-limited",
    unit: "/s",
    series: [
      { label: "429/s", read: (s) => s.rateLimited },
      { label: "503 full/s", read: (s) => s.serverFull },
    ],
  },
];

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function cssVar(name) {
  return getComputedStyle(document.body).getPropertyValue(name).trim();
}

/** `06:55:15`: the x axis's labels, on one line. */
function clockTime(seconds) {
  return new Date(seconds * 1000).toTimeString().slice(0, 8);
}

export function formatNumber(value) {
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  if (value >= 100 || Number.isInteger(value)) return String(Math.round(value));
  return value.toFixed(1);
}

/** The charts in `container`; `push(samples)` adds samples and redraws on the next frame. */
export function createCharts(container) {
  const xs = [];
  const charts = CHARTS.map((spec, index) => {
    const card = element("figure", "chart");
    card.dataset.metric = spec.id;
    card.style.setProperty("--series", cssVar(`--series-${index + 1}`));
    const head = element("figcaption", "chart-head");
    const name = element("span", "chart-name", spec.label);
    if (spec.unit) name.append(element("span", "chart-unit", spec.unit));
    const value = element("output", "value", "–");
    const legend = element("span", "chart-stats", spec.series.length > 1 ? "" : spec.series[0].label);
    head.append(name, value, legend);
    const plotBox = element("div", "plot");
    card.append(head, plotBox);
    container.append(card);
    return { spec, card, value, legend, plotBox, ys: spec.series.map(() => []), plot: undefined };
  });
  let dirty = false;

  function build(chart, index) {
    if (!uPlot || chart.plot) return;
    const colors = chart.spec.series.map((_, i) => cssVar(`--series-${((index + i) % 6) + 1}`));
    const axis = {
      stroke: cssVar("--chart-axis"),
      font: cssVar("--chart-font"),
      grid: { stroke: cssVar("--chart-grid"), width: 1 },
      ticks: { show: false },
    };
    chart.plot = new uPlot(
      {
        width: Math.max(chart.plotBox.clientWidth, 100),
        height: Math.max(chart.plotBox.clientHeight, 60),
        legend: { show: false },
        cursor: { sync: { key: "herald-admin" }, y: false, drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.15)] } },
        axes: [
          { ...axis, size: 22, space: 70, values: (_u, splits) => splits.map(clockTime) },
          { ...axis, size: 40, space: 24, values: (_u, splits) => splits.map(formatNumber) },
        ],
        series: [
          {},
          ...chart.spec.series.map((series, i) => ({
            label: series.label,
            stroke: colors[i],
            width: 1.5,
            ...(chart.spec.series.length === 1 ? { fill: `${colors[i]}22` } : {}),
            points: { show: false },
          })),
        ],
      },
      [xs, ...chart.ys],
      chart.plotBox,
    );
    if (chart.spec.series.length > 1) {
      chart.legend.replaceChildren(
        ...chart.spec.series.map((series, i) => {
          const key = element("span", "legend-key", series.label);
          key.style.setProperty("--key", colors[i]);
          return key;
        }),
      );
    }
  }

  function draw() {
    dirty = false;
    charts.forEach((chart, index) => {
      build(chart, index);
      chart.plot?.setData([xs, ...chart.ys]);
    });
  }

  const resize = new ResizeObserver(() => {
    for (const chart of charts) {
      chart.plot?.setSize({ width: Math.max(chart.plotBox.clientWidth, 100), height: chart.plotBox.clientHeight });
    }
  });
  for (const chart of charts) resize.observe(chart.plotBox);

  return {
    push(samples) {
      for (const sample of samples) {
        xs.push(sample.t / 1000);
        for (const chart of charts) {
          chart.spec.series.forEach((series, i) => {
            chart.ys[i].push(series.read(sample));
          });
        }
      }
      if (xs.length > KEEP) {
        const drop = xs.length - KEEP;
        xs.splice(0, drop);
        for (const chart of charts) for (const ys of chart.ys) ys.splice(0, drop);
      }
      const last = samples.at(-1);
      if (last) {
        for (const chart of charts) {
          const total = chart.spec.series.reduce((sum, series) => sum + series.read(last), 0);
          chart.value.textContent = formatNumber(total);
          chart.card.dataset.value = String(total);
          chart.card.dataset.peak = String(Math.max(Number(chart.card.dataset.peak ?? 0), total));
        }
      }
      container.dataset.samples = String(xs.length);
      if (!dirty) {
        dirty = true;
        requestAnimationFrame(draw);
      }
    },
  };
}
