import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type HeraldProcess, startHerald } from "./lib/herald-process.js";
import { INGEST_BODY, INGEST_CONNECTIONS, postLoad } from "./lib/post-load.js";
import { Publisher, sleep } from "./lib/publisher.js";
import {
  cpuMeter,
  ensureFileLimit,
  type Metric,
  machine,
  percentile,
  round1,
  startLoadavg,
  writeResult,
} from "./lib/report.js";
import { now, SseSwarm } from "./lib/sse-swarm.js";

/**
 * The SQLite store next to the memory store, in one session so the ratio is
 * not skewed by whatever else the shared machine did earlier: autocannon
 * ingest on memory, SQLite `--sync full` and `--sync normal` (each its own
 * server and fresh data directory), then a small fan-out on SQLite (default
 * sync). Writes bench/results/sqlite.json.
 */

ensureFileLimit(import.meta.filename);

const DURATION_S = Number(process.env.BENCH_INGEST_SECONDS ?? 10);
const MAILBOX = "bench:ingest";
const FANOUT_SUBSCRIBERS = 1000;
const FANOUT_MESSAGES = 50;
const FANOUT_MAILBOX = "bench:fanout";
/** Longest the fan-out waits for every delivery after the last publish. */
const SETTLE_TIMEOUT_MS = 30_000;
/** SQLite ingest as a share of memory ingest that issue 6 asks for. */
const MIN_SHARE_PERCENT = 50;

interface IngestRun {
  readonly publishesPerSecond: number;
  readonly p99Ms: number;
  readonly failed: number;
  readonly serverCpuMs: number;
  readonly serverCpuUsPerPublish: number;
  readonly rssAfter: number;
  readonly loadavgAtStart: number[];
}

interface FanoutRun {
  readonly deliveriesPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly outOfOrder: number;
  readonly serverCpuMs: number;
  readonly complete: boolean;
}

async function withHerald<T>(flags: readonly string[], body: (herald: HeraldProcess) => Promise<T>): Promise<T> {
  const dataDir = mkdtempSync(join(tmpdir(), "herald-bench-sqlite-"));
  const herald = await startHerald([...flags, "--data-dir", dataDir]);
  try {
    return await body(herald);
  } finally {
    await herald.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function ingest(herald: HeraldProcess): Promise<IngestRun> {
  const loadavgAtStart = startLoadavg();
  await sleep(200);
  const serverCpuBefore = herald.cpuMs();
  const result = await postLoad(herald.url, MAILBOX, DURATION_S);
  const serverCpuMs = herald.cpuMs() - serverCpuBefore;
  const { acknowledged } = result;
  return {
    publishesPerSecond: result.publishesPerSecond,
    p99Ms: result.p99Ms,
    failed: result.non2xx + result.errors,
    serverCpuMs,
    serverCpuUsPerPublish: round1((serverCpuMs * 1000) / Math.max(1, acknowledged)),
    rssAfter: herald.rssBytes(),
    loadavgAtStart,
  };
}

async function fanout(herald: HeraldProcess): Promise<FanoutRun> {
  const swarm = new SseSwarm({
    host: herald.host,
    port: herald.port,
    count: FANOUT_SUBSCRIBERS,
    path: () => `/v1/mailboxes/${FANOUT_MAILBOX}/events?cursor=now`,
  });
  const publisher = new Publisher(herald.url, FANOUT_MESSAGES);
  try {
    await swarm.open();
    await sleep(200);
    const serverCpuBefore = herald.cpuMs();
    const started = now();
    await Promise.all(Array.from({ length: FANOUT_MESSAGES }, () => publisher.publish(FANOUT_MAILBOX)));
    const expected = FANOUT_SUBSCRIBERS * FANOUT_MESSAGES;
    const complete = await swarm.until(() => swarm.totalReceived >= expected, SETTLE_TIMEOUT_MS);
    const sorted = swarm.sortedLatencies();
    return {
      deliveriesPerSecond: Math.round(swarm.totalReceived / ((swarm.lastReceiveAt - started) / 1000)),
      p50Ms: round1(percentile(sorted, 50)),
      p99Ms: round1(percentile(sorted, 99)),
      lost: swarm.lost(FANOUT_MESSAGES),
      duplicated: swarm.sum(swarm.duplicates),
      outOfOrder: swarm.sum(swarm.outOfOrder),
      serverCpuMs: herald.cpuMs() - serverCpuBefore,
      complete,
    };
  } finally {
    swarm.close();
    await publisher.close();
  }
}

const loadavgAtStart = startLoadavg();
const meter = cpuMeter();
const memory = await withHerald([], ingest);
const full = await withHerald(["--store", "sqlite", "--sync", "full"], ingest);
const normal = await withHerald(["--store", "sqlite", "--sync", "normal"], ingest);
const fan = await withHerald(["--store", "sqlite"], fanout);
const cpu = meter();

const share = (run: IngestRun) => round1((run.publishesPerSecond / Math.max(1, memory.publishesPerSecond)) * 100);
const metrics: Metric[] = [
  { name: "publishes/s, memory", value: memory.publishesPerSecond, unit: "/s" },
  { name: "publishes/s, sqlite sync full", value: full.publishesPerSecond, unit: "/s" },
  {
    name: "sqlite sync full ingest, % of memory",
    value: share(full),
    unit: "%",
    target: `>= ${MIN_SHARE_PERCENT}`,
  },
  { name: "publish p99, sqlite sync full", value: round1(full.p99Ms), unit: "ms" },
  { name: "server CPU per publish, sqlite sync full", value: full.serverCpuUsPerPublish, unit: "µs" },
  { name: "publishes/s, sqlite sync normal", value: normal.publishesPerSecond, unit: "/s" },
  {
    name: "sqlite sync normal ingest, % of memory",
    value: share(normal),
    unit: "%",
    target: `>= ${MIN_SHARE_PERCENT}`,
  },
  { name: "publish p99, sqlite sync normal", value: round1(normal.p99Ms), unit: "ms" },
  {
    name: `fan-out deliveries/s, sqlite, ${FANOUT_SUBSCRIBERS} subscribers`,
    value: fan.deliveriesPerSecond,
    unit: "/s",
  },
  { name: "fan-out p99, sqlite", value: fan.p99Ms, unit: "ms" },
  { name: "lost, sqlite fan-out", value: fan.lost, unit: "", target: "== 0" },
  { name: "duplicated, sqlite fan-out", value: fan.duplicated, unit: "", target: "== 0" },
  { name: "out of order, sqlite fan-out", value: fan.outOfOrder, unit: "", target: "== 0" },
  { name: "failed publishes", value: memory.failed + full.failed + normal.failed, unit: "", target: "== 0" },
];
writeResult({
  scenario: "sqlite",
  description: `memory vs sqlite (sync full, sync normal): ingest (autocannon, ${INGEST_CONNECTIONS} connections, ${DURATION_S} s, 64-byte POSTs, fresh server and data directory each); fan-out of ${FANOUT_MESSAGES} back-to-back messages to ${FANOUT_SUBSCRIBERS} SSE subscribers on sqlite (default sync)`,
  date: new Date().toISOString(),
  machine: machine(),
  loadavgAtStart,
  metrics,
  loadGenerator: cpu,
  server: {
    rssBytesBefore: 0,
    rssBytesAfter: full.rssAfter,
    flags: ["--store", "sqlite", "--data-dir", "<tmp>"],
    cpuMs: memory.serverCpuMs + full.serverCpuMs + normal.serverCpuMs + fan.serverCpuMs,
  },
  details: { bodyBytes: INGEST_BODY.length, memory, sqliteSyncFull: full, sqliteSyncNormal: normal, sqliteFanout: fan },
});
