/**
 * Draws the soak's per-second samples as an SVG: one panel per series, one
 * line per server node, time along the bottom. No dependencies: the file is
 * plain text a browser or GitHub shows as it is.
 */

export interface ChartSeries {
  readonly title: string;
  readonly unit: string;
  /** One line per node: [seconds since start, value] points. */
  readonly lines: readonly (readonly (readonly [number, number])[])[];
}

const PANEL_WIDTH = 460;
const PANEL_HEIGHT = 180;
const MARGIN = { left: 58, right: 16, top: 28, bottom: 30 };
const COLUMNS = 2;
const COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700"];

function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * magnitude) return step * magnitude;
  return 10 * magnitude;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function label(value: number): string {
  return value >= 100
    ? value.toFixed(0)
    : value >= 10
      ? value.toFixed(1).replace(/\.0$/, "")
      : String(+value.toFixed(2));
}

function panel(series: ChartSeries, x0: number, y0: number, duration: number): string {
  const width = PANEL_WIDTH - MARGIN.left - MARGIN.right;
  const height = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const max = niceMax(Math.max(0, ...series.lines.flatMap((line) => line.map(([, value]) => value))));
  const px = (t: number) => x0 + MARGIN.left + (t / Math.max(1, duration)) * width;
  const py = (value: number) => y0 + MARGIN.top + height - (value / max) * height;
  const parts = [
    `<text x="${x0 + MARGIN.left}" y="${y0 + 18}" font-weight="bold">${escapeXml(series.title)} (${escapeXml(series.unit)})</text>`,
    `<rect x="${x0 + MARGIN.left}" y="${y0 + MARGIN.top}" width="${width}" height="${height}" fill="none" stroke="#d0d7de"/>`,
  ];
  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const y = py(max * fraction);
    parts.push(
      `<line x1="${x0 + MARGIN.left}" x2="${x0 + MARGIN.left + width}" y1="${y}" y2="${y}" stroke="#eaeef2"/>`,
      `<text x="${x0 + MARGIN.left - 6}" y="${y + 4}" text-anchor="end">${label(max * fraction)}</text>`,
    );
  }
  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const t = duration * fraction;
    parts.push(
      `<text x="${px(t)}" y="${y0 + PANEL_HEIGHT - 10}" text-anchor="middle">${Math.round(t / 6) / 10} min</text>`,
    );
  }
  series.lines.forEach((line, index) => {
    if (line.length === 0) return;
    const points = line.map(([t, value]) => `${px(t).toFixed(1)},${py(value).toFixed(1)}`).join(" ");
    parts.push(
      `<polyline points="${points}" fill="none" stroke="${COLORS[index % COLORS.length]}" stroke-width="1.5"/>`,
    );
  });
  return parts.join("\n");
}

/** The chart as SVG text: `title` above, panels in two columns, a legend naming each node's colour. */
export function soakChart(title: string, nodes: readonly string[], series: readonly ChartSeries[]): string {
  const duration = Math.max(1, ...series.flatMap((s) => s.lines.flatMap((line) => line.map(([t]) => t))));
  const rows = Math.ceil(series.length / COLUMNS);
  const width = PANEL_WIDTH * COLUMNS;
  const height = 48 + rows * PANEL_HEIGHT;
  const legend = nodes
    .map(
      (node, index) =>
        `<text x="${width - 16 - (nodes.length - 1 - index) * 110}" y="22" text-anchor="end" fill="${COLORS[index % COLORS.length]}">— ${escapeXml(node)}</text>`,
    )
    .join("\n");
  const panels = series.map((s, index) =>
    panel(s, (index % COLUMNS) * PANEL_WIDTH, 40 + Math.floor(index / COLUMNS) * PANEL_HEIGHT, duration),
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11" fill="#1f2328">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="16" y="22" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    legend,
    ...panels,
    "</svg>",
    "",
  ].join("\n");
}
