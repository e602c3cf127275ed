import { spawnSync } from "node:child_process";
import { deleteKeys } from "../test/helpers/redis.js";
import { cpuMsOf } from "./lib/herald-process.js";
import { postLoad } from "./lib/post-load.js";
import { sleep } from "./lib/publisher.js";
import { cpuMeter, type Metric, machine, startLoadavg, writeResult } from "./lib/report.js";
import {
  fanoutAcrossWorkers,
  REDIS_URL,
  startWorkers,
  uniqueBenchPrefix,
  type WorkersFanout,
} from "./lib/workers-run.js";

/**
 * What a second worker buys on this machine: the same Redis-backed Herald at
 * --workers 1 and --workers 2, under publish load (autocannon) and a fan-out
 * burst with its connection storm (load generators in their own processes).
 * Writes bench/results/workers-scaling.json.
 *
 *   npm run build && npx tsx bench/workers-scaling.ts
 */

const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 10_000);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 20);
const INGEST_SECONDS = Number(process.env.BENCH_INGEST_SECONDS ?? 10);
const GENERATORS = 2;
const COMMAND = "npm run build && npx tsx bench/workers-scaling.ts";

/** The Redis server's pid when it runs on this machine, to count its CPU too. */
function redisPid(): number | undefined {
  const found = spawnSync("pgrep", ["-x", "redis-server"], { encoding: "utf8" }).stdout.trim().split("\n")[0];
  return found ? Number(found) : undefined;
}

interface Ingest {
  readonly publishesPerSecond: number;
  readonly p99Ms: number;
  /** Herald's CPU (primary and workers) per publish. */
  readonly heraldCpuUsPerPublish: number;
  /** Redis's CPU per publish, when its process is on this machine. */
  readonly redisCpuUsPerPublish: number | undefined;
}

async function ingest(workers: number): Promise<Ingest> {
  const prefix = uniqueBenchPrefix(`ingest${workers}`);
  const server = await startWorkers(workers, prefix);
  const redis = redisPid();
  try {
    await sleep(1000);
    const cpu = server.cpuMs();
    const redisCpu = redis === undefined ? 0 : cpuMsOf(redis);
    const load = await postLoad(server.url, "bench:ingest", INGEST_SECONDS);
    if (load.non2xx > 0 || load.errors > 0) throw new Error(`ingest: ${load.non2xx} non-2xx, ${load.errors} errors`);
    const perPublish = (ms: number) => Math.round((ms * 1000) / load.acknowledged);
    return {
      publishesPerSecond: load.publishesPerSecond,
      p99Ms: load.p99Ms,
      heraldCpuUsPerPublish: perPublish(server.cpuMs() - cpu),
      redisCpuUsPerPublish: redis === undefined ? undefined : perPublish(cpuMsOf(redis) - redisCpu),
    };
  } finally {
    await server.stop();
    await deleteKeys(REDIS_URL, prefix);
  }
}

const loadavgAtStart = startLoadavg();
const meter = cpuMeter();
const ingests = [await ingest(1), await ingest(2)];
const fanouts: WorkersFanout[] = [];
for (const workers of [1, 2]) {
  fanouts.push(
    await fanoutAcrossWorkers({ workers, subscribers: SUBSCRIBERS, generators: GENERATORS, messages: MESSAGES }),
  );
}
const loadGenerator = meter();
const [i1, i2] = ingests as [(typeof ingests)[0], (typeof ingests)[0]];
const [f1, f2] = fanouts as [WorkersFanout, WorkersFanout];
const share = (two: number, one: number) => Math.round((two / one) * 100);

const metrics: Metric[] = [
  { name: "publishes/s, 1 worker", value: i1.publishesPerSecond, unit: "/s" },
  { name: "publishes/s, 2 workers", value: i2.publishesPerSecond, unit: "/s" },
  { name: "publishes/s, 2 workers as % of 1", value: share(i2.publishesPerSecond, i1.publishesPerSecond), unit: "%" },
  { name: "Herald CPU per publish, 1 worker", value: i1.heraldCpuUsPerPublish, unit: "µs" },
  { name: "Redis CPU per publish", value: i1.redisCpuUsPerPublish ?? Number.NaN, unit: "µs" },
  { name: "SSE connections accepted/s, 1 worker", value: f1.connectsPerSecond, unit: "/s" },
  { name: "SSE connections accepted/s, 2 workers", value: f2.connectsPerSecond, unit: "/s" },
  { name: "fan-out deliveries/s, 1 worker", value: f1.deliveriesPerSecond, unit: "/s" },
  { name: "fan-out deliveries/s, 2 workers", value: f2.deliveriesPerSecond, unit: "/s" },
  {
    name: "Herald CPU per delivery, 1 worker",
    value: Math.round((f1.serverCpuMs * 10_000) / (SUBSCRIBERS * MESSAGES)) / 10,
    unit: "µs",
  },
  { name: "fan-out p99, 1 worker", value: f1.p99Ms, unit: "ms" },
  { name: "fan-out p99, 2 workers", value: f2.p99Ms, unit: "ms" },
  { name: "lost", value: f1.lost + f2.lost, unit: "", target: "== 0" },
  { name: "duplicated", value: f1.duplicated + f2.duplicated, unit: "", target: "== 0" },
];

writeResult({
  scenario: "workers-scaling",
  description:
    `Redis store at --workers 1 and 2: ingest (autocannon, 50 connections, ${INGEST_SECONDS} s, one mailbox); ` +
    `${SUBSCRIBERS.toLocaleString("en-US")} SSE subscribers from ${GENERATORS} load-generator processes, ` +
    `then ${MESSAGES} messages published back-to-back`,
  date: new Date().toISOString(),
  machine: machine(),
  loadavgAtStart,
  metrics,
  loadGenerator,
  server: { rssBytesBefore: f2.rssBeforeBytes, rssBytesAfter: f2.rssConnectedBytes, flags: f2.flags },
  details: { command: COMMAND, ingest: { oneWorker: i1, twoWorkers: i2 }, fanout: { oneWorker: f1, twoWorkers: f2 } },
});
