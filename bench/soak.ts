import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Pool } from "undici";
import { freePort, type HeraldProcess, startHerald } from "./lib/herald-process.js";
import { sleep } from "./lib/publisher.js";
import {
  cpuMeter,
  ensureFileLimit,
  ensureSendBufferCap,
  machine,
  percentile,
  RESULTS_DIR,
  round1,
  sendBufferMax,
  startLoadavg,
  writeResult,
} from "./lib/report.js";
import { type ChartSeries, soakChart } from "./lib/soak-chart.js";
import { createSubscriber, type SoakSubscriber, type StreamSubscriber, type Transport } from "./lib/soak-clients.js";

/**
 * The soak (`npm run soak -- --store memory|sqlite|redis`, 10 minutes unless
 * SOAK_MINUTES says otherwise): subscribers on every transport with constant
 * churn, each resuming from its cursor; stalled consumers that never read
 * until late; a steady publish rate over many mailboxes plus bursts. Every
 * subscriber checks every seq. The servers' RSS, heap, event-loop lag and
 * open handles are sampled every second. Redis runs two nodes on a private
 * redis-server; subscribers and publishes alternate between them.
 *
 * Writes bench/results/soak-<store>.json and soak-<store>.svg.
 */

/** Kernel send buffer per connection at most, as over a real network, so stalled readers back up into the server. */
const SEND_BUFFER_MAX = 64 * 1024;
/** Redis runs use an Ethernet-sized loopback MTU (see ensureSendBufferCap); memory and SQLite ran with loopback's own. */
const REDIS_LOOPBACK_MTU = 1500;
ensureSendBufferCap(
  import.meta.filename,
  SEND_BUFFER_MAX,
  process.argv.includes("redis") ? REDIS_LOOPBACK_MTU : undefined,
);
ensureFileLimit(import.meta.filename);

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const MINUTES = env("SOAK_MINUTES", 10);
const SUBSCRIBERS = env("SOAK_SUBSCRIBERS", 5000);
const STALLED = env("SOAK_STALLED", 500);
const RATE = env("SOAK_RATE", 2000);
const MAILBOXES = env("SOAK_MAILBOXES", 1000);
/** Reconnects per second, spread over 10 ticks a second. */
const CHURN = env("SOAK_CHURN", 250);
const MAX_MESSAGES = env("SOAK_MAX_MESSAGES", 300);
const BURST = env("SOAK_BURST", 2000);
const BURST_EVERY_MS = env("SOAK_BURST_EVERY_S", 15) * 1000;
/** The mailboxes bursts go to; the stalled consumers listen there, so bursts are what cuts them. */
const BURST_MAILBOXES = 10;
/** 200 bodies of 2 KiB per mailbox a burst: ~480 KB, more than a stalled connection's buffers hold, so it is cut. */
const BURST_BODY = "b".repeat(2048);
const MAX_QUEUE_BYTES = 64 * 1024;
/**
 * Shorter than the 10 s after which the first half of the stalled consumers resumes, so that
 * one caught in a catch-up from the store (on Redis, most of them) is cut as on the live path.
 */
const SEND_TIMEOUT_S = env("SOAK_SEND_TIMEOUT_S", 5);
const PUBLISH_TICK_MS = 50;
const PUBLISH_BATCH_MAX = 100;
/** A burst batch stays under the server's 64 KiB body limit with its 2 KiB bodies. */
const BURST_BATCH_MAX = 25;
/** Publish requests in flight at most; a tick that finds them all busy is counted as behind. */
const PUBLISHES_IN_FLIGHT = 16;
/** New connections opened at once while subscribers first connect: more overflow the listen backlog. */
const CONNECT_RAMP = 250;
const DRAIN_TIMEOUT_MS = 60_000;
/** Transport of healthy subscriber i by i % 10: long-polls answer once a message, so they are fewer. */
const TRANSPORT_MIX: readonly Transport[] = [
  "sse",
  "sse",
  "sse",
  "ndjson",
  "ndjson",
  "ndjson",
  "ws",
  "ws",
  "ws",
  "long-poll",
];

const storeArg = process.argv.indexOf("--store");
const store = storeArg === -1 ? "memory" : (process.argv[storeArg + 1] ?? "memory");
if (!["memory", "sqlite", "redis"].includes(store)) throw new Error(`--store must be memory, sqlite or redis`);

const mailboxName = (k: number) => `soak:${k}`;

/** A redis-server of the soak's own, nothing on disk: the machine's shared one is left alone. */
async function startRedis(): Promise<{ url: string; stop: () => void }> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  process.once("exit", () => child.kill("SIGKILL"));
  const url = `redis://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 100; attempt++) {
    const answered = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (answered) return { url, stop: () => child.kill("SIGKILL") };
    await sleep(50);
  }
  throw new Error(`redis-server did not start on ${url}`);
}

const flags = [
  "--max-messages",
  String(MAX_MESSAGES),
  "--max-queue-bytes",
  String(MAX_QUEUE_BYTES),
  "--send-timeout",
  String(SEND_TIMEOUT_S),
];
const loadavgAtStart = startLoadavg();
const nodes: HeraldProcess[] = [];
let redis: { url: string; stop: () => void } | undefined;
let dataDir: string | undefined;
if (store === "memory") nodes.push(await startHerald(flags));
if (store === "sqlite") {
  dataDir = mkdtempSync(join(tmpdir(), "herald-soak-"));
  nodes.push(await startHerald([...flags, "--store", "sqlite", "--data-dir", dataDir]));
}
if (store === "redis") {
  redis = await startRedis();
  for (let n = 0; n < 2; n++) nodes.push(await startHerald([...flags, "--store", "redis", "--redis-url", redis.url]));
}

// Subscribers alternate between nodes, and a reconnect goes to the next one: a resume crosses nodes.
const pickNode = (subscriber: SoakSubscriber) => {
  const node = nodes[(subscriber.index + subscriber.connects) % nodes.length] as HeraldProcess;
  return { host: node.host, port: node.port };
};
const healthy: SoakSubscriber[] = [];
for (let i = 0; i < SUBSCRIBERS; i++) {
  healthy.push(
    createSubscriber(i, TRANSPORT_MIX[i % TRANSPORT_MIX.length] as Transport, mailboxName(i % MAILBOXES), pickNode),
  );
}
const stalled: StreamSubscriber[] = [];
for (let i = 0; i < STALLED; i++) {
  stalled.push(
    createSubscriber(SUBSCRIBERS + i, "sse", mailboxName(i % BURST_MAILBOXES), pickNode) as StreamSubscriber,
  );
}

async function until(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

// Connect everyone (cursor frames first, so every subscriber starts anchored at seq 0), then stall the stalled.
const everyone = [...healthy, ...stalled];
for (let from = 0; from < everyone.length; from += CONNECT_RAMP) {
  const wave = everyone.slice(from, from + CONNECT_RAMP);
  for (const subscriber of wave) subscriber.open();
  await until(() => wave.every((s) => s.cursor !== undefined || s.transport === "long-poll"), 30_000);
}
for (const subscriber of stalled) subscriber.pause();
console.log(`${everyone.length} subscribers connected to ${nodes.length} ${store} node(s)`);

// Publishing: a batch every tick, mailboxes round-robin; the head of each mailbox is its highest acknowledged seq.
const head = new Map<string, number>();
const publishFailures = new Map<string, number>();
let published = 0;
let publishesBehind = 0;
let inFlight = 0;
let nextMailbox = 0;
let batchCount = 0;
const pools = nodes.map((node) => new Pool(node.url, { connections: PUBLISHES_IN_FLIGHT, pipelining: 1 }));
const publishLatencies: number[] = [];

async function publishBatch(messages: { mailbox: string; body: string }[]): Promise<void> {
  const pool = pools[batchCount++ % pools.length] as Pool;
  inFlight += 1;
  const started = performance.now();
  try {
    const response = await pool.request({
      method: "POST",
      path: "/v1/messages",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages }),
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    const text = await response.body.text();
    if (response.statusCode !== 201) {
      const key = String(response.statusCode);
      publishFailures.set(key, (publishFailures.get(key) ?? 0) + 1);
      return;
    }
    publishLatencies.push(performance.now() - started);
    for (const message of (JSON.parse(text) as { messages: { mailbox: string; seq: number }[] }).messages) {
      if (message.seq > (head.get(message.mailbox) ?? 0)) head.set(message.mailbox, message.seq);
      published += 1;
    }
  } catch (error) {
    const key = (error as { code?: string }).code ?? "error";
    publishFailures.set(key, (publishFailures.get(key) ?? 0) + 1);
  } finally {
    inFlight -= 1;
  }
}

const perTick = Math.max(1, Math.round((RATE * PUBLISH_TICK_MS) / 1000));
function publishTick(): void {
  let remaining = perTick;
  while (remaining > 0) {
    if (inFlight >= PUBLISHES_IN_FLIGHT) {
      publishesBehind += remaining;
      return;
    }
    const count = Math.min(remaining, PUBLISH_BATCH_MAX);
    remaining -= count;
    const messages = Array.from({ length: count }, () => ({
      mailbox: mailboxName(nextMailbox++ % MAILBOXES),
      body: "soak",
    }));
    void publishBatch(messages);
  }
}

let bursts = 0;
async function burst(): Promise<void> {
  bursts += 1;
  const batches: Promise<void>[] = [];
  for (let sent = 0; sent < BURST; sent += BURST_BATCH_MAX) {
    const messages = Array.from({ length: Math.min(BURST_BATCH_MAX, BURST - sent) }, (_, k) => ({
      mailbox: mailboxName((sent + k) % BURST_MAILBOXES),
      body: BURST_BODY,
    }));
    batches.push(publishBatch(messages));
  }
  await Promise.all(batches);
}

let churned = 0;
const churnPerTick = CHURN / 10;
let churnCarry = 0;
function churnTick(): void {
  churnCarry += churnPerTick;
  for (; churnCarry >= 1; churnCarry -= 1) {
    healthy[Math.floor(Math.random() * healthy.length)]?.churn();
    churned += 1;
  }
}

// Samples: every second, per node, from /proc and the node's /metrics.
interface Sample {
  t: number;
  node: number;
  rssMiB: number;
  heapUsedMiB: number;
  lagP99Ms: number;
  handles: number;
  openFds: number;
  connections: number;
}
const samples: Sample[] = [];
function gauge(text: string, name: string): number {
  let total = 0;
  let found = false;
  for (const match of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "gm"))) {
    total += Number(match[1]);
    found = true;
  }
  return found ? total : Number.NaN;
}
const runStarted = performance.now();
async function sample(): Promise<void> {
  const t = round1((performance.now() - runStarted) / 1000);
  await Promise.all(
    nodes.map(async (node, index) => {
      try {
        const text = await (await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
        samples.push({
          t,
          node: index,
          rssMiB: round1(node.rssBytes() / 1048576),
          heapUsedMiB: round1(gauge(text, "herald_nodejs_heap_size_used_bytes") / 1048576),
          lagP99Ms: round1(gauge(text, "herald_nodejs_eventloop_lag_p99_seconds") * 1000),
          handles: gauge(text, "herald_nodejs_active_handles_total"),
          openFds: gauge(text, "herald_process_open_fds"),
          connections: gauge(text, "herald_connections"),
        });
      } catch {
        samples.push({
          t,
          node: index,
          rssMiB: round1(node.rssBytes() / 1048576),
          heapUsedMiB: Number.NaN,
          lagP99Ms: Number.NaN,
          handles: Number.NaN,
          openFds: Number.NaN,
          connections: Number.NaN,
        });
      }
    }),
  );
}

/**
 * A resumed stalled consumer is checked until it holds everything acknowledged when it resumed,
 * then stopped with its verdict kept: left on, each burst would cut it again and the load
 * generator would spend the run reading bursts for it.
 */
const stalledVerdicts = new Map<
  StreamSubscriber,
  { late: boolean; cut: boolean; exact: boolean; toldOfGap: boolean; violations: number }
>();
const stalledTargets = new Map<StreamSubscriber, number>();
function settleStalled(): void {
  for (const [subscriber, target] of stalledTargets) {
    if (subscriber.ledger.last < target) continue;
    const { ledger } = subscriber;
    stalledVerdicts.set(subscriber, {
      late: (subscriber.index - SUBSCRIBERS) % 2 === LATE_PARITY,
      cut: subscriber.endedByServer > 0,
      exact: ledger.gaps === 0 && ledger.skipped === 0 && ledger.repeated === 0,
      toldOfGap: ledger.gaps > 0 && ledger.skipped === 0 && ledger.repeated === 0,
      violations: ledger.skipped + ledger.repeated,
    });
    stalledTargets.delete(subscriber);
    subscriber.stop();
  }
}
const generatorLag = monitorEventLoopDelay({ resolution: 10 });
generatorLag.enable();
const meter = cpuMeter();
const rssBefore = nodes.map((node) => node.rssBytes());
const durationMs = MINUTES * 60_000;
// Half the stalled consumers resume shortly after the first burst (they should find what they missed
// still retained), the other half near the end (far past retention: they should be told of a gap).
const earlyResumeMs = BURST_EVERY_MS + 10_000;
/** Stalled consumer k (from 0) resumes late when k % 2 is this. */
const LATE_PARITY = 1;
const lateCount = Math.floor(STALLED / 2);
const lateResumeMs = Math.max(earlyResumeMs + 1000, durationMs * 0.8);
function resumeStalled(parity: number): void {
  for (const subscriber of stalled) {
    if ((subscriber.index - SUBSCRIBERS) % 2 !== parity) continue;
    stalledTargets.set(subscriber, head.get(subscriber.mailbox) ?? 0);
    subscriber.resume();
  }
}

const timers = [
  setInterval(publishTick, PUBLISH_TICK_MS),
  setInterval(churnTick, 100),
  setInterval(() => void burst(), BURST_EVERY_MS),
  setInterval(() => void sample(), 1000),
  setInterval(settleStalled, 1000),
  setInterval(() => {
    const s = samples.filter((x) => x.node === 0).at(-1);
    const elapsed = Math.round((performance.now() - runStarted) / 1000);
    console.log(
      `${elapsed}s published ${published} behind ${publishesBehind} churned ${churned} rss ${s?.rssMiB} MiB heap ${s?.heapUsedMiB} MiB lag p99 ${s?.lagP99Ms} ms conns ${s?.connections}`,
    );
  }, 30_000),
];
const early = setTimeout(() => resumeStalled(1 - LATE_PARITY), earlyResumeMs);
const late = setTimeout(() => resumeStalled(LATE_PARITY), lateResumeMs);
await sleep(durationMs);
for (const timer of timers) clearInterval(timer);
clearTimeout(early);
clearTimeout(late);
await until(() => inFlight === 0, 60_000);
const phase = meter();
await sample();

// Drain: every subscriber should reach its mailbox's head.
const all = [...healthy, ...stalled];
const caughtUp = (s: SoakSubscriber) => s.ledger.last >= (head.get(s.mailbox) ?? 0);
const drainStarted = performance.now();
const drained = await until(() => {
  settleStalled();
  return healthy.every(caughtUp) && stalledTargets.size === 0;
}, DRAIN_TIMEOUT_MS);
const drainMs = Math.round(performance.now() - drainStarted);
generatorLag.disable();
for (const subscriber of all) subscriber.stop();

interface Tally {
  subscribers: number;
  received: number;
  lost: number;
  skipped: number;
  repeated: number;
  excused: number;
  gaps: number;
  connects: number;
  endedByServer: number;
  failures: number;
  notCaughtUp: number;
  gapReasons: Record<string, number>;
}
function tally(group: readonly SoakSubscriber[]): Tally {
  const t: Tally = {
    subscribers: group.length,
    received: 0,
    lost: 0,
    skipped: 0,
    repeated: 0,
    excused: 0,
    gaps: 0,
    connects: 0,
    endedByServer: 0,
    failures: 0,
    notCaughtUp: 0,
    gapReasons: {},
  };
  for (const s of group) {
    const h = head.get(s.mailbox) ?? 0;
    t.received += s.ledger.received;
    t.lost += s.ledger.lost(h);
    t.skipped += s.ledger.skipped;
    t.repeated += s.ledger.repeated;
    t.excused += s.ledger.excused;
    t.gaps += s.ledger.gaps;
    t.connects += s.connects;
    t.endedByServer += s.endedByServer;
    t.failures += s.failures;
    if (!caughtUp(s)) t.notCaughtUp += 1;
    for (const [reason, count] of Object.entries(s.ledger.gapReasons)) {
      t.gapReasons[reason] = (t.gapReasons[reason] ?? 0) + count;
    }
  }
  return t;
}
const byTransport: Record<string, Tally> = {};
for (const transport of ["sse", "ndjson", "ws", "long-poll"] as const) {
  byTransport[transport] = tally(healthy.filter((s) => s.transport === transport));
}
const healthyTally = tally(healthy);
const stalledTally = tally(stalled);
const verdicts = [...stalledVerdicts.values()];
const stalledCut = verdicts.filter((v) => v.cut).length;
const lateCut = verdicts.filter((v) => v.late && v.cut).length;
// An early consumer may resume before its send timeout runs out, and is then rightly not cut.
const stalledExact = verdicts.filter((v) => v.exact).length;
const stalledWithGap = verdicts.filter((v) => v.toldOfGap).length;
const stalledViolations = verdicts.reduce((sum, v) => sum + v.violations, 0);

/** Growth of the median of the last quarter over the median of the second quarter, in percent. */
function growth(values: readonly number[]): number {
  const finite = values.filter(Number.isFinite);
  const quarter = Math.floor(finite.length / 4);
  if (quarter === 0) return Number.NaN;
  const median = (part: number[]) => part.sort((a, b) => a - b)[Math.floor(part.length / 2)] as number;
  const second = median(finite.slice(quarter, 2 * quarter));
  const last = median(finite.slice(3 * quarter));
  return round1(((last - second) / second) * 100);
}
/** The heap's floor each minute (its lowest sample, after a collection): what stays live, without the GC's slack. */
function minuteFloors(series: readonly Sample[]): number[] {
  const floors: number[] = [];
  for (const sample of series) {
    if (!Number.isFinite(sample.heapUsedMiB)) continue;
    const minute = Math.floor(sample.t / 60);
    floors[minute] = Math.min(floors[minute] ?? Number.POSITIVE_INFINITY, sample.heapUsedMiB);
  }
  return floors.filter(Number.isFinite);
}
const perNode = nodes.map((_, index) => samples.filter((s) => s.node === index && s.t <= durationMs / 1000));
const worst = (pick: (series: Sample[]) => number) => Math.max(...perNode.map(pick));
const lagValues = perNode
  .flatMap((series) => series.map((s) => s.lagP99Ms))
  .filter(Number.isFinite)
  .sort((a, b) => a - b);
const latencies = publishLatencies.sort((a, b) => a - b);

const svgPath = join(RESULTS_DIR, `soak-${store}.svg`);
const nodeNames = nodes.map((_, index) => (nodes.length > 1 ? `node ${index + 1}` : store));
const line = (series: Sample[], pick: (s: Sample) => number) =>
  series.filter((s) => Number.isFinite(pick(s))).map((s) => [s.t, pick(s)] as const);
const chartSeries: ChartSeries[] = [
  { title: "RSS", unit: "MiB", lines: perNode.map((series) => line(series, (s) => s.rssMiB)) },
  { title: "Heap used", unit: "MiB", lines: perNode.map((series) => line(series, (s) => s.heapUsedMiB)) },
  { title: "Event-loop lag p99", unit: "ms", lines: perNode.map((series) => line(series, (s) => s.lagP99Ms)) },
  { title: "Active handles", unit: "count", lines: perNode.map((series) => line(series, (s) => s.handles)) },
];
writeFileSync(
  svgPath,
  soakChart(
    `Soak, ${store}: ${SUBSCRIBERS} subscribers + ${STALLED} stalled, ${RATE} msg/s over ${MAILBOXES} mailboxes, ${CHURN} reconnects/s, ${MINUTES} min`,
    nodeNames,
    chartSeries,
  ),
);

// A stalled consumer that never settled did not get what was acknowledged before it resumed.
const totalLost = healthyTally.lost + stalledViolations + (STALLED - verdicts.length);
writeResult({
  scenario: `soak-${store}`,
  description: `${MINUTES} min: ${SUBSCRIBERS} subscribers (SSE, ndjson, WebSocket, long-poll) with ${CHURN} reconnects/s, ${STALLED} stalled SSE consumers, ${RATE} messages/s over ${MAILBOXES} mailboxes plus ${BURST} every ${BURST_EVERY_MS / 1000} s; ${nodes.length} ${store} node(s)`,
  date: new Date().toISOString(),
  machine: machine(),
  loadavgAtStart,
  metrics: [
    { name: "lost (acknowledged, never delivered, no gap)", value: totalLost, unit: "", target: "== 0" },
    { name: "skipped without a gap", value: healthyTally.skipped + stalledTally.skipped, unit: "", target: "== 0" },
    {
      name: "repeated or out of order",
      value: healthyTally.repeated + stalledTally.repeated,
      unit: "",
      target: "== 0",
    },
    { name: "stalled consumers cut", value: stalledCut, unit: "" },
    {
      name: "late stalled consumers cut (stalled for most of the run)",
      value: lateCut,
      unit: "",
      target: `== ${lateCount}`,
    },
    {
      name: "stalled resumed exactly or told of a gap",
      value: stalledExact + stalledWithGap,
      unit: "",
      target: `== ${STALLED}`,
    },
    {
      name: "RSS growth, last quarter over second",
      value: worst((s) => growth(s.map((x) => x.rssMiB))),
      unit: "%",
      target: "<= 10",
    },
    {
      name: "heap growth (median sample), last quarter over second",
      value: worst((s) => growth(s.map((x) => x.heapUsedMiB))),
      unit: "%",
    },
    {
      name: "heap floor growth (lowest each minute), last quarter over second",
      value: worst((s) => growth(minuteFloors(s))),
      unit: "%",
      target: "<= 10",
    },
    {
      name: "handles growth, last quarter over second",
      value: worst((s) => growth(s.map((x) => x.handles))),
      unit: "%",
      target: "<= 10",
    },
    { name: "peak RSS", value: worst((s) => Math.max(...s.map((x) => x.rssMiB))), unit: "MiB" },
    { name: "event-loop lag p99, median second", value: percentile(lagValues, 50), unit: "ms" },
    { name: "event-loop lag p99, worst second", value: percentile(lagValues, 100), unit: "ms" },
    { name: "published", value: published, unit: "messages" },
    { name: "reconnects", value: healthyTally.connects + stalledTally.connects - all.length, unit: "" },
  ],
  loadGenerator: phase,
  server: {
    rssBytesBefore: rssBefore[0] ?? 0,
    rssBytesAfter: nodes[0]?.rssBytes() ?? 0,
    flags,
    cpuMs: nodes.reduce((sum, node) => sum + node.cpuMs(), 0),
  },
  details: {
    store,
    nodes: nodes.length,
    minutes: MINUTES,
    sendBufferMax: sendBufferMax(),
    maxQueueBytes: MAX_QUEUE_BYTES,
    sendTimeoutSeconds: SEND_TIMEOUT_S,
    maxMessagesPerMailbox: MAX_MESSAGES,
    drained,
    drainMs,
    publishesPerSecond: Math.round(published / (durationMs / 1000)),
    publishesBehind,
    publishFailures: Object.fromEntries(publishFailures),
    publishLatencyMs: {
      p50: round1(percentile(latencies, 50)),
      p99: round1(percentile(latencies, 99)),
      max: round1(percentile(latencies, 100)),
    },
    bursts,
    churned,
    healthy: healthyTally,
    byTransport,
    stalled: {
      ...stalledTally,
      lost: stalledViolations,
      settled: verdicts.length,
      cut: stalledCut,
      lateCut,
      exact: stalledExact,
      withGap: stalledWithGap,
    },
    loadGeneratorLagP99Ms: round1(generatorLag.percentile(99) / 1e6),
    chart: `soak-${store}.svg`,
    samples: perNode,
  },
});

for (const pool of pools) await pool.close();
for (const node of nodes) await node.stop();
redis?.stop();
if (dataDir) rmSync(dataDir, { recursive: true, force: true });
process.exit(0);
