import { startHerald } from "./lib/herald-process.js";
import { INGEST_BODY, INGEST_CONNECTIONS, postLoad } from "./lib/post-load.js";
import { sleep } from "./lib/publisher.js";
import { cpuMeter, ensureFileLimit, type Metric, machine, round1, startLoadavg, writeResult } from "./lib/report.js";
import { SseSwarm } from "./lib/sse-swarm.js";

ensureFileLimit(import.meta.filename);

const DURATION_S = Number(process.env.BENCH_INGEST_SECONDS ?? 10);
const MAILBOX = "bench:ingest";
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

async function run(subscribers: number): Promise<IngestRun> {
  const herald = await startHerald([]);
  try {
    const swarm = new SseSwarm({
      host: herald.host,
      port: herald.port,
      count: subscribers,
      path: () => `/v1/mailboxes/${MAILBOX}/events?cursor=now`,
      timestamps: false,
    });
    if (subscribers > 0) await swarm.open();
    await sleep(200);
    const rssBefore = herald.rssBytes();
    const meter = cpuMeter();
    const serverCpuBefore = herald.cpuMs();
    const result = await postLoad(herald.url, MAILBOX, DURATION_S);
    const { acknowledged } = result;
    // Per subscriber: requests in flight when autocannon stopped may be stored (and delivered) without
    // being counted as acknowledged, so a total would be reached while a slow subscriber still lags.
    if (subscribers > 0) await swarm.until(() => swarm.allHave(acknowledged), SETTLE_TIMEOUT_MS);
    const cpu = meter();
    const serverCpuMs = herald.cpuMs() - serverCpuBefore;
    const rssAfter = herald.rssBytes();
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
    await herald.stop();
  }
}

const loadavgAtStart = startLoadavg();
const bare = await run(0);
const loadavgSecond = startLoadavg();
const watched = await run(100);
const metrics: Metric[] = [
  { name: "publishes/s, 0 subscribers", value: bare.publishesPerSecond, unit: "/s", target: ">= 20000" },
  { name: "publish p99, 0 subscribers", value: round1(bare.p99Ms), unit: "ms" },
  { name: "server CPU per publish, 0 subscribers", value: bare.serverCpuUsPerPublish, unit: "µs" },
  { name: "publishes/s, 100 subscribers", value: watched.publishesPerSecond, unit: "/s", target: ">= 3000" },
  { name: "publish p99, 100 subscribers", value: round1(watched.p99Ms), unit: "ms" },
  { name: "server CPU per publish, 100 subscribers", value: watched.serverCpuUsPerPublish, unit: "µs" },
  { name: "lost, 100 subscribers", value: watched.lost, unit: "", target: "== 0" },
  {
    name: "failed publishes",
    value: bare.non2xx + bare.errors + watched.non2xx + watched.errors,
    unit: "",
    target: "== 0",
  },
];
writeResult({
  scenario: "ingest",
  description: `autocannon, ${INGEST_CONNECTIONS} connections, ${DURATION_S} s, 64-byte POSTs; with 0 and with 100 SSE subscribers`,
  date: new Date().toISOString(),
  machine: machine(),
  loadavgAtStart,
  metrics,
  loadGenerator: {
    cpuMs: bare.cpu.cpuMs + watched.cpu.cpuMs,
    wallMs: bare.cpu.wallMs + watched.cpu.wallMs,
    cpuPercent: Math.round(((bare.cpu.cpuMs + watched.cpu.cpuMs) / (bare.cpu.wallMs + watched.cpu.wallMs)) * 100),
  },
  server: {
    rssBytesBefore: watched.rssBefore,
    rssBytesAfter: watched.rssAfter,
    flags: [],
    cpuMs: bare.serverCpuMs + watched.serverCpuMs,
  },
  details: {
    bodyBytes: INGEST_BODY.length,
    loadavgAtSecondRun: loadavgSecond,
    withoutSubscribers: bare,
    withSubscribers: watched,
  },
});
