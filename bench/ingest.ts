import { INGEST_BODY, INGEST_CONNECTIONS, postLoad } from "./lib/post-load.js";
import { sleep } from "./lib/publisher.js";
import { cpuMeter, ensureFileLimit, type Metric, machine, round1, startLoadavg, writeResult } from "./lib/report.js";
import { SseSwarm } from "./lib/sse-swarm.js";
import { HERALD, NCHAN, references, type Target } from "./lib/targets.js";

ensureFileLimit(import.meta.filename);

const DURATION_S = Number(process.env.BENCH_INGEST_SECONDS ?? 10);
const MAILBOX = "bench:ingest";
const SUBSCRIBERS = 100;
/** Longest subscribers may take to receive every acknowledged message after the load stops. */
const SETTLE_TIMEOUT_MS = 30_000;

interface IngestRun {
  readonly publishesPerSecond: number;
  readonly acknowledged: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly p99Ms: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly outOfOrder: number;
  readonly cpu: { cpuMs: number; wallMs: number; cpuPercent: number };
  readonly serverCpuMs: number;
  readonly serverCpuUsPerPublish: number;
  readonly rssBefore: number;
  readonly rssAfter: number;
}

async function run(target: Target, subscribers: number): Promise<IngestRun> {
  const server = await target.start();
  try {
    const swarm = new SseSwarm({
      host: server.host,
      port: server.port,
      count: subscribers,
      path: () => target.ssePath(MAILBOX),
      timestamps: false,
      // autocannon sends one body over and over: only the server can number it.
      countDataLines: !target.numbers,
    });
    if (subscribers > 0) await swarm.open();
    await sleep(200);
    const rssBefore = server.rssBytes();
    const meter = cpuMeter();
    const serverCpuBefore = server.cpuMs();
    const result = await postLoad(server.url, MAILBOX, DURATION_S, target);
    const { acknowledged } = result;
    // Per subscriber: requests in flight when autocannon stopped may be stored (and delivered) without
    // being counted as acknowledged, so a total would be reached while a slow subscriber still lags.
    if (subscribers > 0) await swarm.until(() => swarm.allHave(acknowledged), SETTLE_TIMEOUT_MS);
    const cpu = meter();
    const serverCpuMs = server.cpuMs() - serverCpuBefore;
    const rssAfter = server.rssBytes();
    const lost = subscribers > 0 ? swarm.lost(acknowledged) : 0;
    swarm.close();
    return {
      publishesPerSecond: result.publishesPerSecond,
      acknowledged,
      non2xx: result.non2xx,
      errors: result.errors,
      p99Ms: result.p99Ms,
      lost,
      duplicated: swarm.sum(swarm.duplicates),
      outOfOrder: swarm.sum(swarm.outOfOrder),
      cpu,
      serverCpuMs,
      serverCpuUsPerPublish: round1((serverCpuMs * 1000) / Math.max(1, acknowledged)),
      rssBefore,
      rssAfter,
    };
  } finally {
    await server.stop();
  }
}

const loadavgAtStart = startLoadavg();
const alone = await run(HERALD, 0);
const loadavgSecond = startLoadavg();
const watched = await run(HERALD, SUBSCRIBERS);
const reference: Record<string, { alone: IngestRun; watched?: IngestRun }> = {};
for (const target of references()) {
  reference[target.name] = {
    alone: await run(target, 0),
    // The bare baseline's fan-out is a loop over sockets, not a product's: only Nchan is compared there.
    ...(target === NCHAN ? { watched: await run(target, SUBSCRIBERS) } : {}),
  };
}
const bare = reference.bare?.alone;
const nchan = reference.nchan;
const percentOf = (value: number, of: number) => round1((value / Math.max(1, of)) * 100);
const metrics: Metric[] = [
  { name: "publishes/s, 0 subscribers", value: alone.publishesPerSecond, unit: "/s", target: ">= 20000" },
  { name: "publish p99, 0 subscribers", value: round1(alone.p99Ms), unit: "ms" },
  { name: "server CPU per publish, 0 subscribers", value: alone.serverCpuUsPerPublish, unit: "µs" },
  { name: "publishes/s, 100 subscribers", value: watched.publishesPerSecond, unit: "/s", target: ">= 3000" },
  { name: "publish p99, 100 subscribers", value: round1(watched.p99Ms), unit: "ms" },
  { name: "server CPU per publish, 100 subscribers", value: watched.serverCpuUsPerPublish, unit: "µs" },
  { name: "lost, 100 subscribers", value: watched.lost, unit: "", target: "== 0" },
];
if (bare) {
  metrics.push(
    { name: "bare node:http: publishes/s, 0 subscribers", value: bare.publishesPerSecond, unit: "/s" },
    { name: "bare node:http: server CPU per publish", value: bare.serverCpuUsPerPublish, unit: "µs" },
    // A share of the same run's baseline: medians over runs of a share, not a target from one run's rate.
    {
      name: "publishes/s, 0 subscribers, % of bare node:http",
      value: percentOf(alone.publishesPerSecond, bare.publishesPerSecond),
      unit: "%",
      target: ">= 60",
    },
  );
}
if (nchan?.watched) {
  metrics.push(
    { name: "Nchan: publishes/s, 0 subscribers", value: nchan.alone.publishesPerSecond, unit: "/s" },
    { name: "Nchan: publishes/s, 100 subscribers", value: nchan.watched.publishesPerSecond, unit: "/s" },
    { name: "Nchan: server CPU per publish, 100 subscribers", value: nchan.watched.serverCpuUsPerPublish, unit: "µs" },
    { name: "Nchan: lost, 100 subscribers", value: nchan.watched.lost, unit: "" },
    {
      name: "publishes/s, 100 subscribers, % of Nchan",
      value: percentOf(watched.publishesPerSecond, nchan.watched.publishesPerSecond),
      unit: "%",
      target: ">= 120",
    },
  );
}
const all = [alone, watched, ...Object.values(reference).flatMap((runs) => [runs.alone, runs.watched ?? []].flat())];
metrics.push({
  name: "failed publishes",
  value: all.reduce((sum, run) => sum + run.non2xx + run.errors, 0),
  unit: "",
  target: "== 0",
});
const generatorCpuMs = all.reduce((sum, run) => sum + run.cpu.cpuMs, 0);
const generatorWallMs = all.reduce((sum, run) => sum + run.cpu.wallMs, 0);
writeResult({
  scenario: "ingest",
  description: `autocannon, ${INGEST_CONNECTIONS} connections, ${DURATION_S} s, 64-byte POSTs; with 0 and with ${SUBSCRIBERS} SSE subscribers; Herald (request log on), the bare node:http baseline and Nchan (1 worker) in the same run`,
  date: new Date().toISOString(),
  machine: machine(),
  loadavgAtStart,
  metrics,
  loadGenerator: {
    cpuMs: generatorCpuMs,
    wallMs: generatorWallMs,
    cpuPercent: Math.round((generatorCpuMs / generatorWallMs) * 100),
  },
  server: {
    rssBytesBefore: watched.rssBefore,
    rssBytesAfter: watched.rssAfter,
    flags: [],
    cpuMs: alone.serverCpuMs + watched.serverCpuMs,
  },
  details: {
    bodyBytes: INGEST_BODY.length,
    loadavgAtSecondRun: loadavgSecond,
    withoutSubscribers: alone,
    withSubscribers: watched,
    reference,
  },
});
