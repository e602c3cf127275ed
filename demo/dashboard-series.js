// A chart's samples and scales, kept on the chart object (xs and ys in time order, its metric's spec, what
// is visible), which dashboard.js draws with uPlot.

/** Samples are kept in time order (uPlot needs ascending x); one from the past is put in its place. */
export function add(chart, time, value) {
  const { xs, ys } = chart;
  if (xs.length === 0 || xs[xs.length - 1] <= time) {
    xs.push(time);
    ys.push(value);
  } else {
    const at = firstIndexAfter(xs, time);
    xs.splice(at, 0, time);
    ys.splice(at, 0, value);
  }
  chart.dirty = true;
}

/** The first index whose x is greater than `time` (binary search). */
function firstIndexAfter(xs, time) {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid] <= time) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The first index whose x is at or after `time`. */
function firstIndexFrom(xs, time) {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid] < time) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Drops samples before `since` and beyond the newest `maxPoints`, but never the last one: an old current value
 * is still the current one.
 */
export function trim(chart, since, maxPoints) {
  const old = firstIndexFrom(chart.xs, since);
  const drop = Math.min(Math.max(old, chart.xs.length - maxPoints), chart.xs.length - 1);
  if (drop > 0) {
    chart.xs.splice(0, drop);
    chart.ys.splice(0, drop);
  }
}

/** The lowest and highest value from `since` on, and how many there are, as `chart.visible`. */
export function measureVisible(chart, since) {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  const from = firstIndexFrom(chart.xs, since);
  for (let i = from; i < chart.ys.length; i++) {
    const value = chart.ys[i];
    if (value < min) min = value;
    if (value > max) max = value;
  }
  chart.visible = { min, max, count: chart.ys.length - from };
}

// ---------------------------------------------------------------------------------------------------------
// Scales: fixed where the metric has a natural range, otherwise from zero to a round number above the
// data that grows at once and shrinks only when the data falls well below it (no jumping on every sample).

function niceCeil(value) {
  if (value <= 0) return 0;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    if (step * power >= value - power * 1e-9) return step * power;
  }
  return 10 * power;
}

export function yRange(chart) {
  const { spec, visible } = chart;
  const has = visible.count > 0;
  let lo = spec.min ?? 0;
  if (has && visible.min < lo) lo = -niceCeil(-visible.min * 1.1);
  if (spec.max !== undefined) {
    const hi = has && visible.max > spec.max ? niceCeil(visible.max) : spec.max;
    return [lo, hi];
  }
  const top = has ? Math.max(visible.max, lo) : lo + 1;
  let wanted = niceCeil(top + (top - lo) * 0.05);
  if (wanted <= lo) wanted = lo + 1;
  if (chart.hi === undefined || wanted > chart.hi || wanted < chart.hi / 3 || chart.hi <= lo) chart.hi = wanted;
  return [lo, chart.hi];
}
