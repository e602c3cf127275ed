import { cpuMeter, type Metric, machine, startLoadavg, writeResult } from "./lib/report.js";
import { fanoutAcrossWorkers } from "./lib/workers-run.js";

/**
 * 100,000 SSE subscribers on this machine: Herald with `--workers` on Redis
 * (each worker is a process with its own 20,000 open files, so at least 7),
 * the subscribers opened at once from several load-generator processes (each
 * under its own file limit and loopback source address), then 10 messages
 * published back-to-back to all of them. Writes bench/results/workers-100k.json.
 *
 *   npm run build && npx tsx bench/workers-100k.ts
 *   BENCH_SUBSCRIBERS=100000 BENCH_WORKERS=8 BENCH_GENERATORS=6 (the defaults)
 */

const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 100_000);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 8);
const GENERATORS = Number(process.env.BENCH_GENERATORS ?? 6);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 10);
const COMMAND = "npm run build && npx tsx bench/workers-100k.ts";

const loadavgAtStart = startLoadavg();
const meter = cpuMeter();
const run = await fanoutAcrossWorkers({
  workers: WORKERS,
  subscribers: SUBSCRIBERS,
  generators: GENERATORS,
  messages: MESSAGES,
});
const loadGenerator = meter();

const metrics: Metric[] = [
  { name: "subscribers connected", value: SUBSCRIBERS - run.connectFailures, unit: "", target: `>= ${SUBSCRIBERS}` },
  { name: "SSE connections accepted/s", value: run.connectsPerSecond, unit: "/s" },
  { name: "deliveries/s", value: run.deliveriesPerSecond, unit: "/s" },
  { name: "delivery p50", value: run.p50Ms, unit: "ms" },
  { name: "delivery p99", value: run.p99Ms, unit: "ms" },
  { name: "RSS per connection (all workers)", value: run.rssPerConnectionKiB, unit: "KiB" },
  { name: "RSS connected (all workers)", value: Math.round(run.rssConnectedBytes / 2 ** 20), unit: "MiB" },
  { name: "lost", value: run.lost, unit: "", target: "== 0" },
  { name: "duplicated", value: run.duplicated, unit: "", target: "== 0" },
  { name: "out of order", value: run.outOfOrder, unit: "", target: "== 0" },
  { name: "streams cut", value: run.unexpectedCloses, unit: "", target: "== 0" },
];

writeResult({
  scenario: "workers-100k",
  description:
    `${SUBSCRIBERS.toLocaleString("en-US")} SSE subscribers of one mailbox on herald serve --workers ${WORKERS} ` +
    `(Redis store, request log on), opened at once from ${GENERATORS} load-generator processes; ` +
    `then ${MESSAGES} messages published back-to-back to all of them`,
  date: new Date().toISOString(),
  machine: machine(),
  loadavgAtStart,
  metrics,
  loadGenerator,
  server: {
    rssBytesBefore: run.rssBeforeBytes,
    rssBytesAfter: run.rssConnectedBytes,
    flags: run.flags,
    cpuMs: run.serverCpuMs,
  },
  details: { command: COMMAND, ...run },
});
