import { deleteKeys } from "../test/helpers/redis.js";
import { type HeraldProcess, startHerald } from "./lib/herald-process.js";
import { INGEST_CONNECTIONS, postLoad } from "./lib/post-load.js";
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
 * The Redis store next to the memory store: publish throughput on one node
 * (autocannon, many connections), and fan-out of one mailbox to many SSE
 * subscribers on one memory node versus the same subscribers spread over
 * three nodes sharing one Redis (published on the first). Writes
 * bench/results/redis.json. Redis: REDIS_URL, else 127.0.0.1:6379.
 */

ensureFileLimit(import.meta.filename);

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const SECONDS = Number(process.env.BENCH_COMPARE_SECONDS ?? 5);
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 3000);
const MESSAGES = 50;
const NODES = 3;
const SETTLE_TIMEOUT_MS = 60_000;

async function ingest(node: HeraldProcess): Promise<{ perSecond: number; p99Ms: number; failed: number }> {
  const result = await postLoad(node.url, "bench:ingest", SECONDS);
  return {
    perSecond: result.publishesPerSecond,
    p99Ms: result.p99Ms,
    failed: result.non2xx + result.errors,
  };
}

interface FanoutRun {
  readonly deliveriesPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly lost: number;
  readonly duplicated: number;
}

async function fanout(nodes: readonly HeraldProcess[]): Promise<FanoutRun> {
  const mailbox = `bench:fanout:${Date.now()}`;
  const swarms = nodes.map(
    (node, n) =>
      new SseSwarm({
        host: node.host,
        port: node.port,
        count: Math.floor(SUBSCRIBERS / nodes.length) + (n < SUBSCRIBERS % nodes.length ? 1 : 0),
        path: () => `/v1/mailboxes/${mailbox}/events?cursor=now`,
      }),
  );
  for (const swarm of swarms) await swarm.open();
  await sleep(500);
  const publisher = new Publisher((nodes[0] as HeraldProcess).url, MESSAGES);
  try {
    const started = now();
    await Promise.all(Array.from({ length: MESSAGES }, () => publisher.publish(mailbox)));
    const total = () => swarms.reduce((sum, swarm) => sum + swarm.totalReceived, 0);
    await swarms[0]?.until(() => total() >= SUBSCRIBERS * MESSAGES, SETTLE_TIMEOUT_MS);
    const last = Math.max(...swarms.map((swarm) => swarm.lastReceiveAt));
    const latencies = Float64Array.from(swarms.flatMap((swarm) => Array.from(swarm.sortedLatencies()))).sort();
    return {
      deliveriesPerSecond: Math.round(total() / ((last - started) / 1000)),
      p50Ms: round1(percentile(latencies, 50)),
      p99Ms: round1(percentile(latencies, 99)),
      lost: swarms.reduce((sum, swarm) => sum + swarm.lost(MESSAGES), 0),
      duplicated: swarms.reduce((sum, swarm) => sum + swarm.sum(swarm.duplicates), 0),
    };
  } finally {
    for (const swarm of swarms) swarm.close();
    await publisher.close();
  }
}

const loadavgAtStart = startLoadavg();
const meter = cpuMeter();
const prefix = `herald-bench:${Date.now()}:`;
const redisFlags = ["--store", "redis", "--redis-url", REDIS_URL, "--redis-prefix", prefix];
const results: Record<string, unknown> = {};
try {
  const memory = await startHerald([]);
  results.memoryIngest = await ingest(memory);
  results.memoryFanout = await fanout([memory]);
  await memory.stop();

  const nodes: HeraldProcess[] = [];
  for (let n = 0; n < NODES; n++) nodes.push(await startHerald(redisFlags));
  results.redisIngest = await ingest(nodes[0] as HeraldProcess);
  results.redisFanout = await fanout(nodes);
  for (const node of nodes) await node.stop();
} finally {
  await deleteKeys(REDIS_URL, prefix);
}

const mi = results.memoryIngest as Awaited<ReturnType<typeof ingest>>;
const ri = results.redisIngest as Awaited<ReturnType<typeof ingest>>;
const mf = results.memoryFanout as FanoutRun;
const rf = results.redisFanout as FanoutRun;
const metrics: Metric[] = [
  { name: "publishes/s, memory, 1 node", value: mi.perSecond, unit: "/s" },
  { name: "publishes/s, redis, 1 node", value: ri.perSecond, unit: "/s" },
  { name: "publish p99, redis", value: round1(ri.p99Ms), unit: "ms" },
  { name: "fan-out deliveries/s, memory, 1 node", value: mf.deliveriesPerSecond, unit: "/s" },
  { name: `fan-out deliveries/s, redis, ${NODES} nodes`, value: rf.deliveriesPerSecond, unit: "/s" },
  // A share, not ">= <memory's rate>": the summary takes medians over runs, and a target built from one
  // run's memory rate would be compared with another run's median.
  {
    name: `redis ${NODES}-node fan-out, % of memory 1-node`,
    value: round1((rf.deliveriesPerSecond / Math.max(1, mf.deliveriesPerSecond)) * 100),
    unit: "%",
    target: ">= 100",
  },
  { name: `fan-out p99, redis, ${NODES} nodes`, value: rf.p99Ms, unit: "ms" },
  { name: "lost, redis fan-out", value: rf.lost, unit: "", target: "== 0" },
  { name: "duplicated, redis fan-out", value: rf.duplicated, unit: "", target: "== 0" },
  { name: "failed publishes", value: mi.failed + ri.failed, unit: "", target: "== 0" },
];
const cpu = meter();
writeResult({
  scenario: "redis",
  description: `memory vs redis: ingest (autocannon, ${INGEST_CONNECTIONS} connections, ${SECONDS} s) on one node; fan-out of ${MESSAGES} back-to-back messages to ${SUBSCRIBERS} SSE subscribers on one memory node vs spread over ${NODES} nodes on one Redis`,
  date: new Date().toISOString(),
  machine: machine(),
  loadavgAtStart,
  metrics,
  loadGenerator: cpu,
  server: { rssBytesBefore: 0, rssBytesAfter: 0, flags: redisFlags },
  details: results,
});
