import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deleteKeys } from "../test/helpers/redis.js";
import { type HeraldProcess, startHerald } from "./lib/herald-process.js";
import { sleep } from "./lib/publisher.js";
import { cpuMeter, ensureFileLimit, type Metric, machine, startLoadavg, writeResult } from "./lib/report.js";
import { SseSwarm } from "./lib/sse-swarm.js";

/**
 * Many subscribers replaying at once, as after a deploy or the soak's stalled
 * consumers resuming together: RESUMERS SSE subscribers connect at the same
 * time to MAILBOXES full mailboxes and each replays all of it. Per store: how
 * long until every one holds everything, and the server's heap and RSS peak
 * (sampled every SAMPLE_MS) and worst event-loop lag. A store whose reads are
 * asynchronous (Redis) holds every reply it has asked for at once.
 */

ensureFileLimit(import.meta.filename);

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const RESUMERS = Number(process.env.BENCH_RESUMERS ?? 250);
const MAILBOXES = 10;
const RETAINED = 300;
const BODY = "x".repeat(2000);
/** Messages per publish request: 25 bodies of 2 KB stay under the 64 KiB body limit. */
const BATCH = 25;
const SAMPLE_MS = 50;
const SETTLE_TIMEOUT_MS = 60_000;

interface HerdRun {
  readonly ms: number;
  readonly heapBeforeMiB: number;
  readonly peakHeapMiB: number;
  readonly peakRssMiB: number;
  readonly worstLagP99Ms: number;
  readonly lost: number;
}

async function gauges(herald: HeraldProcess): Promise<{ heapMiB: number; lagMs: number }> {
  const text = await (await fetch(`${herald.url}/metrics`)).text();
  const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
  return {
    heapMiB: Math.round(gauge("herald_nodejs_heap_size_used_bytes") / 1048576),
    lagMs: Math.round(gauge("herald_nodejs_eventloop_lag_p99_seconds") * 1000),
  };
}

async function run(flags: string[]): Promise<HerdRun> {
  const herald = await startHerald(["--max-messages", String(RETAINED), ...flags]);
  try {
    for (let m = 0; m < MAILBOXES; m++) {
      for (let i = 0; i < RETAINED; i += BATCH) {
        const messages = Array.from({ length: BATCH }, () => ({ mailbox: `herd:${m}`, body: BODY }));
        const response = await fetch(`${herald.url}/v1/messages`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ messages }),
        });
        if (response.status >= 300) throw new Error(`publish: ${response.status} ${await response.text()}`);
      }
    }
    await sleep(1000);
    const heapBeforeMiB = (await gauges(herald)).heapMiB;
    let peakHeapMiB = 0;
    let peakRssMiB = 0;
    let worstLagP99Ms = 0;
    const sampler = setInterval(() => {
      peakRssMiB = Math.max(peakRssMiB, Math.round(herald.rssBytes() / 1048576));
      gauges(herald).then(
        ({ heapMiB, lagMs }) => {
          peakHeapMiB = Math.max(peakHeapMiB, heapMiB);
          worstLagP99Ms = Math.max(worstLagP99Ms, lagMs);
        },
        () => {},
      );
    }, SAMPLE_MS);
    const started = performance.now();
    const swarm = new SseSwarm({
      host: herald.host,
      port: herald.port,
      count: RESUMERS,
      path: (i) => `/v1/mailboxes/herd:${i % MAILBOXES}/events`,
      timestamps: false,
    });
    await swarm.open();
    await swarm.until(() => swarm.allHave(RETAINED), SETTLE_TIMEOUT_MS);
    const ms = Math.round(performance.now() - started);
    clearInterval(sampler);
    const lost = swarm.lost(RETAINED);
    swarm.close();
    return { ms, heapBeforeMiB, peakHeapMiB, peakRssMiB, worstLagP99Ms, lost };
  } finally {
    await herald.stop();
  }
}

const loadavgAtStart = startLoadavg();
const meter = cpuMeter();
const prefix = `herald-bench-herd:${Date.now()}:`;
const dataDir = join(tmpdir(), `herald-bench-herd-${process.pid}`);
const runs: Record<string, HerdRun> = {};
try {
  runs.memory = await run([]);
  runs.sqlite = await run(["--store", "sqlite", "--data-dir", dataDir]);
  runs.redis = await run(["--store", "redis", "--redis-url", REDIS_URL, "--redis-prefix", prefix]);
} finally {
  rmSync(dataDir, { recursive: true, force: true });
  await deleteKeys(REDIS_URL, prefix);
}

const metrics: Metric[] = [];
for (const [store, herd] of Object.entries(runs)) {
  metrics.push(
    { name: `all replayed, ${store}`, value: herd.ms, unit: "ms" },
    { name: `heap peak over before, ${store}`, value: herd.peakHeapMiB - herd.heapBeforeMiB, unit: "MiB" },
    { name: `worst event-loop lag p99, ${store}`, value: herd.worstLagP99Ms, unit: "ms" },
    { name: `lost, ${store}`, value: herd.lost, unit: "", target: "== 0" },
  );
}
writeResult({
  scenario: "replay-herd",
  description: `${RESUMERS} SSE subscribers connect at once and each replays one of ${MAILBOXES} mailboxes of ${RETAINED} 2-KB messages; memory, SQLite and Redis (one node)`,
  date: new Date().toISOString(),
  machine: machine(),
  loadavgAtStart,
  metrics,
  loadGenerator: meter(),
  server: { rssBytesBefore: 0, rssBytesAfter: 0, flags: ["--max-messages", String(RETAINED)] },
  details: runs,
});
