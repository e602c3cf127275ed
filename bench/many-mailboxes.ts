import { startHerald } from "./lib/herald-process.js";
import { Publisher, sleep } from "./lib/publisher.js";
import { cpuMeter, ensureFileLimit, machine, percentile, round1, startLoadavg, writeResult } from "./lib/report.js";
import { SseSwarm } from "./lib/sse-swarm.js";

ensureFileLimit(import.meta.filename);

const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 10_000);
const PUBLISHES = 10_000;
/** Publishes in flight at once. */
const CONCURRENCY = 50;
const SETTLE_TIMEOUT_MS = 60_000;

const loadavgAtStart = startLoadavg();
const herald = await startHerald([]);
const swarm = new SseSwarm({
  host: herald.host,
  port: herald.port,
  count: SUBSCRIBERS,
  path: (i) => `/v1/mailboxes/user:${i}/events?cursor=now`,
});
const publisher = new Publisher(herald.url, CONCURRENCY);
try {
  const rssBefore = herald.rssBytes();
  await swarm.open();
  await sleep(200);
  // A fixed seed, so every run publishes to the same users.
  let state = 42;
  const random = () => {
    state = (state * 1_103_515_245 + 12_345) & 0x7fffffff;
    return state / 0x80000000;
  };
  const targets = Array.from({ length: PUBLISHES }, () => Math.floor(random() * SUBSCRIBERS));
  const expected = new Int32Array(SUBSCRIBERS);
  for (const user of targets) expected[user] = (expected[user] as number) + 1;
  const meter = cpuMeter();
  const serverCpuBefore = herald.cpuMs();
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < PUBLISHES) await publisher.publish(`user:${targets[next++]}`);
    }),
  );
  const publishMs = performance.now() - started;
  const complete = await swarm.until(() => swarm.totalReceived >= PUBLISHES, SETTLE_TIMEOUT_MS);
  const phase = meter();
  const serverCpuMs = herald.cpuMs() - serverCpuBefore;
  const sorted = swarm.sortedLatencies();
  writeResult({
    scenario: "many-mailboxes",
    description: `${SUBSCRIBERS.toLocaleString("en-US")} SSE subscribers each on its own user:N mailbox, ${PUBLISHES.toLocaleString("en-US")} publishes to random users (${CONCURRENCY} in flight)`,
    date: new Date().toISOString(),
    machine: machine(),
    loadavgAtStart,
    metrics: [
      { name: "publishes/s", value: Math.round(PUBLISHES / (publishMs / 1000)), unit: "/s" },
      { name: "p50 latency", value: round1(percentile(sorted, 50)), unit: "ms" },
      { name: "p99 latency", value: round1(percentile(sorted, 99)), unit: "ms" },
      { name: "lost", value: swarm.lost((i) => expected[i] as number), unit: "", target: "== 0" },
      { name: "duplicated", value: swarm.sum(swarm.duplicates), unit: "", target: "== 0" },
      { name: "out of order", value: swarm.sum(swarm.outOfOrder), unit: "", target: "== 0" },
    ],
    loadGenerator: phase,
    server: { rssBytesBefore: rssBefore, rssBytesAfter: herald.rssBytes(), flags: [], cpuMs: serverCpuMs },
    details: {
      subscribers: SUBSCRIBERS,
      publishes: PUBLISHES,
      concurrency: CONCURRENCY,
      complete,
      publishMs: Math.round(publishMs),
      unexpectedCloses: swarm.unexpectedCloses,
    },
  });
} finally {
  swarm.close();
  await publisher.close();
  await herald.stop();
}
