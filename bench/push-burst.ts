import { createECDH, createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "undici";
import { createVapidKeys } from "../src/push/vapid.js";
import { type HeraldProcess, startHerald } from "./lib/herald-process.js";
import { Publisher, sleep } from "./lib/publisher.js";
import { type PushSink, type SinkStats, startPushSink } from "./lib/push-sink.js";
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
 * Web Push burst: does a burst of pushes cost the SSE fan-out its latency?
 * 10,000 SSE subscribers and 10,000 push subscriptions on one mailbox; the
 * same publishes on two fresh servers, first with no push subscriptions
 * (baseline), then with them (burst). Three processes: this load generator
 * (the SSE swarm), Herald, and the push sink (bench/lib/push-sink.ts).
 */
ensureFileLimit(import.meta.filename);

const MAILBOX = "bench:push";
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 10_000);
const PUSH_SUBSCRIPTIONS = Number(process.env.BENCH_PUSH_SUBSCRIPTIONS ?? 10_000);
/**
 * 5 × 10,000 = 50,000 pushes, about a minute of sending here. At most 10 fit: 100,000 is push.maxQueue's
 * default, and a burst beyond it is dropped (counted in herald_push_dropped_total).
 */
const MESSAGES = Number(process.env.BENCH_PUSH_MESSAGES ?? 5);
/** While the pushes drain: this many messages (`"push":false`, so no more pushes) at DRAIN_RATE a second. */
const DRAIN_MESSAGES = Number(process.env.BENCH_PUSH_DRAIN_MESSAGES ?? 30);
const DRAIN_RATE = 10;
/** push.concurrency; unset keeps Herald's default (50). */
const CONCURRENCY =
  process.env.BENCH_PUSH_CONCURRENCY === undefined ? undefined : Number(process.env.BENCH_PUSH_CONCURRENCY);
const SUBSCRIBE_IN_FLIGHT = 50;
/**
 * /metrics every second: a scrape with 10,000 connections open costs the server ~20 ms of CPU (the default
 * process metrics list /proc/self/fd and every active handle), so scraping every 200 ms took 17% of its CPU.
 */
const SAMPLE_MS = 1000;
const SSE_SETTLE_MS = 60_000;
const PUSH_SETTLE_MS = 150_000;

interface Sample {
  /** ms since the first publish. */
  readonly t: number;
  readonly sent: number;
  readonly failed: number;
  readonly dropped: number;
  readonly retried: number;
  readonly queued: number;
  readonly rssBytes: number;
  readonly serverCpuMs: number;
}

interface PhaseLatency {
  readonly deliveries: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

interface RunResult {
  readonly label: string;
  readonly pushSubscriptions: number;
  readonly subscribeMs: number;
  readonly connectMs: number;
  readonly burst: PhaseLatency & {
    readonly deliveriesPerSecond: number;
    readonly publishMs: number;
    readonly firstPublishToLastReceiveMs: number;
    readonly complete: boolean;
    readonly serverCpuMs: number;
    readonly pushesArrivedMeanwhile: number;
  };
  readonly drain: PhaseLatency & {
    readonly complete: boolean;
    readonly pushesArrivedMeanwhile: number;
    readonly pushesQueuedAtStart: number;
    readonly pushesStillQueuedAtEnd: number;
  };
  readonly lost: number;
  readonly duplicated: number;
  readonly outOfOrder: number;
  readonly unexpectedCloses: number;
  readonly gapEvents: number;
  readonly push: {
    readonly expected: number;
    readonly complete: boolean;
    readonly received: number;
    readonly duplicates: number;
    readonly refused: number;
    readonly refusals: Record<string, number>;
    readonly endpointsComplete: number;
    readonly endpointsShort: number;
    readonly endpointsOver: number;
    readonly publishToFirstPushMs: number;
    readonly publishToLastPushMs: number;
    readonly pushesPerSecond: number;
    /** First and last arrival of each message's pushes, ms from the first publish. */
    readonly perMessage: { readonly message: number; count: number; firstMs: number; lastMs: number }[];
    readonly bodyBytes: { readonly min: number; readonly max: number; readonly mean: number };
    readonly sinkConnections: number;
    readonly sinkCpuMs: number;
    readonly metricsAtEnd: Omit<Sample, "t" | "rssBytes" | "serverCpuMs">;
    readonly maxQueued: number;
    /** Pushes sent per SAMPLE_MS and the queue, over time (every sample). */
    readonly timeline: Sample[];
    /** Arrivals at the sink per 250 ms from the first publish. */
    readonly arrivalsPer250Ms: number[];
  };
  readonly serverCpuMs: number;
  readonly serverRssBytesConnected: number;
  readonly serverRssBytesPeak: number;
  readonly serverRssBytesAfter: number;
  readonly loadGenerator: { cpuMs: number; wallMs: number; cpuPercent: number };
}

/** The Topic header Herald sends for a keyed message (src/push/push-payload.ts). */
function topicOf(key: string): string {
  return createHash("sha256").update(`${MAILBOX}\n${key}`).digest("base64url").slice(0, 32);
}

function metricValue(text: string, name: string): number {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  return match ? Number(match[1]) : Number.NaN;
}

async function readMetrics(herald: HeraldProcess): Promise<Omit<Sample, "t" | "rssBytes" | "serverCpuMs">> {
  const text = await (await fetch(`${herald.url}/metrics`)).text();
  return {
    sent: metricValue(text, "herald_push_sent_total"),
    failed: metricValue(text, "herald_push_failed_total"),
    dropped: metricValue(text, "herald_push_dropped_total"),
    retried: metricValue(text, "herald_push_retries_total"),
    queued: metricValue(text, "herald_push_queued"),
  };
}

/** Samples /metrics, RSS and CPU every SAMPLE_MS until stopped. */
function startSampler(
  herald: HeraldProcess,
  since: number,
): { latest: () => Sample | undefined; stop: () => Promise<Sample[]> } {
  const samples: Sample[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const t = now() - since;
      try {
        const metrics = await readMetrics(herald);
        samples.push({ t: Math.round(t), ...metrics, rssBytes: herald.rssBytes(), serverCpuMs: herald.cpuMs() });
      } catch {
        // A sample lost to a busy server is a gap in the timeline, not a failure.
      }
      await sleep(SAMPLE_MS);
    }
  })();
  return {
    latest: () => samples[samples.length - 1],
    stop: async () => {
      stopped = true;
      await loop;
      return samples;
    },
  };
}

/** POST /v1/push/subscriptions `count` times, SUBSCRIBE_IN_FLIGHT at once, endpoint /push/<i> on the sink. */
async function subscribeAll(herald: HeraldProcess, sink: PushSink, count: number): Promise<void> {
  // One real P-256 point (the server checks it is on the curve) and one auth secret, shared by all.
  const ecdh = createECDH("prime256v1");
  const p256dh = ecdh.generateKeys().toString("base64url");
  const auth = randomBytes(16).toString("base64url");
  const pool = new Pool(herald.url, { connections: SUBSCRIBE_IN_FLIGHT, pipelining: 1 });
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const response = await pool.request({
        method: "POST",
        path: "/v1/push/subscriptions",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ endpoint: `${sink.url}/push/${i}`, keys: { p256dh, auth }, mailboxes: [MAILBOX] }),
      });
      const text = await response.body.text();
      if (response.statusCode !== 201) throw new Error(`push subscription ${i}: ${response.statusCode} ${text}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(SUBSCRIBE_IN_FLIGHT, count) }, worker));
  } finally {
    await pool.close();
  }
}

function latencyOf(latencies: Float64Array, from: number, to: number): PhaseLatency {
  const sorted = latencies.slice(from, to).sort();
  return {
    deliveries: sorted.length,
    p50Ms: round1(percentile(sorted, 50)),
    p90Ms: round1(percentile(sorted, 90)),
    p99Ms: round1(percentile(sorted, 99)),
    maxMs: round1(sorted[sorted.length - 1] ?? Number.NaN),
  };
}

async function runOnce(
  label: string,
  configPath: string,
  sink: PushSink,
  pushSubscriptions: number,
): Promise<RunResult> {
  console.log(`\n--- ${label}: ${SUBSCRIBERS} SSE subscribers, ${pushSubscriptions} push subscriptions`);
  const herald = await startHerald(["--config", configPath]);
  const swarm = new SseSwarm({
    host: herald.host,
    port: herald.port,
    count: SUBSCRIBERS,
    path: () => `/v1/mailboxes/${MAILBOX}/events?cursor=now`,
  });
  const publisher = new Publisher(herald.url, MESSAGES);
  try {
    await sink.reset(pushSubscriptions, MESSAGES);
    const subscribeStarted = performance.now();
    await subscribeAll(herald, sink, pushSubscriptions);
    const subscribeMs = performance.now() - subscribeStarted;
    const connectStarted = performance.now();
    await swarm.open();
    const connectMs = performance.now() - connectStarted;
    const rssConnected = herald.rssBytes();
    await sleep(200);

    const meter = cpuMeter();
    const serverCpuBefore = herald.cpuMs();
    const sinkCpuBefore = sink.cpuMs();
    const started = now();
    const sampler = startSampler(herald, started);

    // The burst: every message in flight at once, as fanout.ts; each keyed, so its pushes carry a Topic of their own.
    const keys = Array.from({ length: MESSAGES }, (_, m) => `burst-${m + 1}`);
    await Promise.all(keys.map((key) => publisher.publish(MAILBOX, "", `"key":"${key}",`)));
    const published = now();
    const burstExpected = SUBSCRIBERS * MESSAGES;
    const burstComplete = await swarm.until(() => swarm.totalReceived >= burstExpected, SSE_SETTLE_MS);
    const burstSamples = swarm.samples;
    const burstSpanMs = swarm.lastReceiveAt - started;
    const burstServerCpu = herald.cpuMs() - serverCpuBefore;
    const pushesAfterBurst = await sink.count();

    // While the pushes drain: a steady trickle that pushes nothing, to see what the drain costs the streams.
    const drainQueuedBefore = (await readMetrics(herald)).queued;
    const t0 = performance.now();
    const inFlight: Promise<number>[] = [];
    for (let m = 0; m < DRAIN_MESSAGES; m++) {
      const due = t0 + (m * 1000) / DRAIN_RATE - performance.now();
      if (due > 0) await sleep(due);
      inFlight.push(publisher.publish(MAILBOX, "", '"push":false,'));
    }
    await Promise.all(inFlight);
    const drainComplete = await swarm.until(() => swarm.allHave(MESSAGES + DRAIN_MESSAGES), SSE_SETTLE_MS);
    const drainSamples = swarm.samples;
    const pushesAfterDrain = await sink.count();
    const queuedAfterDrain = (await readMetrics(herald)).queued;

    // Then every push: all at the sink, or Herald has given up the rest (its sampled counters say so).
    const expectedPushes = pushSubscriptions * MESSAGES;
    let pushesComplete = true;
    if (expectedPushes > 0) {
      const deadline = performance.now() + PUSH_SETTLE_MS;
      for (;;) {
        const arrived = await sink.count();
        if (arrived >= expectedPushes) break;
        const sample = sampler.latest();
        if (sample !== undefined && sample.sent + sample.failed >= expectedPushes && arrived >= sample.sent) break;
        if (performance.now() > deadline) {
          pushesComplete = false;
          break;
        }
        await sleep(100);
      }
    }
    const phase = meter();
    const serverCpuMs = herald.cpuMs() - serverCpuBefore;
    const timeline = await sampler.stop();
    const metricsAtEnd = await readMetrics(herald);
    const stats: SinkStats = await sink.stats(started, 250);
    const rssAfter = herald.rssBytes();
    const byTopic = new Map(keys.map((key, m) => [topicOf(key), m + 1]));
    const perMessage = Object.entries(stats.topics)
      .map(([topic, entry]) => ({
        message: byTopic.get(topic) ?? -1,
        count: entry.count,
        firstMs: Math.round(entry.firstAt - started),
        lastMs: Math.round(entry.lastAt - started),
      }))
      .sort((a, b) => a.message - b.message);
    const burst = latencyOf(swarm.latencies, 0, burstSamples);
    const drain = latencyOf(swarm.latencies, burstSamples, drainSamples);
    const firstPushMs = stats.received === 0 ? Number.NaN : stats.firstAt - started;
    const lastPushMs = stats.received === 0 ? Number.NaN : stats.lastAt - started;
    const result: RunResult = {
      label,
      pushSubscriptions,
      subscribeMs: Math.round(subscribeMs),
      connectMs: Math.round(connectMs),
      burst: {
        ...burst,
        deliveriesPerSecond: Math.round(burstExpected / (burstSpanMs / 1000)),
        publishMs: Math.round(published - started),
        firstPublishToLastReceiveMs: Math.round(burstSpanMs),
        complete: burstComplete,
        serverCpuMs: burstServerCpu,
        pushesArrivedMeanwhile: pushesAfterBurst,
      },
      drain: {
        ...drain,
        complete: drainComplete,
        pushesArrivedMeanwhile: pushesAfterDrain - pushesAfterBurst,
        pushesQueuedAtStart: drainQueuedBefore,
        pushesStillQueuedAtEnd: queuedAfterDrain,
      },
      lost: swarm.lost(MESSAGES + DRAIN_MESSAGES),
      duplicated: swarm.sum(swarm.duplicates),
      outOfOrder: swarm.sum(swarm.outOfOrder),
      unexpectedCloses: swarm.unexpectedCloses,
      gapEvents: swarm.gapEvents,
      push: {
        expected: expectedPushes,
        complete: pushesComplete,
        received: stats.received,
        duplicates: stats.duplicates,
        refused: stats.refused,
        refusals: stats.refusals,
        endpointsComplete: stats.endpointsComplete,
        endpointsShort: stats.endpointsShort,
        endpointsOver: stats.endpointsOver,
        publishToFirstPushMs: round1(firstPushMs),
        publishToLastPushMs: Math.round(lastPushMs),
        pushesPerSecond: stats.received === 0 ? 0 : Math.round(stats.received / (lastPushMs / 1000)),
        perMessage,
        bodyBytes: {
          min: stats.bodyBytesMin,
          max: stats.bodyBytesMax,
          mean: stats.received === 0 ? 0 : round1(stats.bodyBytesTotal / stats.received),
        },
        sinkConnections: stats.connections,
        sinkCpuMs: Math.round(stats.cpuMs - sinkCpuBefore),
        metricsAtEnd,
        maxQueued: Math.max(0, ...timeline.map((sample) => sample.queued).filter((q) => !Number.isNaN(q))),
        timeline,
        arrivalsPer250Ms: stats.bins ?? [],
      },
      serverCpuMs,
      serverRssBytesConnected: rssConnected,
      serverRssBytesPeak: Math.max(rssAfter, ...timeline.map((sample) => sample.rssBytes)),
      serverRssBytesAfter: rssAfter,
      loadGenerator: phase,
    };
    printRun(result);
    return result;
  } finally {
    swarm.close();
    await publisher.close();
    await herald.stop();
  }
}

function printRun(run: RunResult): void {
  const b = run.burst;
  const d = run.drain;
  const p = run.push;
  console.log(
    `  burst SSE: p50 ${b.p50Ms} ms, p99 ${b.p99Ms} ms, max ${b.maxMs} ms, ${b.deliveriesPerSecond}/s, server CPU ${b.serverCpuMs} ms, pushes meanwhile ${b.pushesArrivedMeanwhile}`,
  );
  console.log(
    `  during drain SSE: p50 ${d.p50Ms} ms, p99 ${d.p99Ms} ms, max ${d.maxMs} ms, pushes meanwhile ${d.pushesArrivedMeanwhile}, queued ${d.pushesQueuedAtStart} → ${d.pushesStillQueuedAtEnd}`,
  );
  console.log(
    `  lost ${run.lost}, duplicated ${run.duplicated}, out of order ${run.outOfOrder}, closes ${run.unexpectedCloses}`,
  );
  if (p.expected > 0) {
    console.log(
      `  push: ${p.received}/${p.expected} at the sink, dup ${p.duplicates}, refused ${p.refused}, first ${p.publishToFirstPushMs} ms, last ${p.publishToLastPushMs} ms, ${p.pushesPerSecond}/s, max queued ${p.maxQueued}, sink CPU ${p.sinkCpuMs} ms, connections ${p.sinkConnections}`,
    );
    console.log(`  push metrics at end: ${JSON.stringify(p.metricsAtEnd)}`);
  }
  console.log(
    `  server CPU ${run.serverCpuMs} ms, RSS connected ${(run.serverRssBytesConnected / 1048576).toFixed(0)} MiB, peak ${(run.serverRssBytesPeak / 1048576).toFixed(0)} MiB; load generator ${run.loadGenerator.cpuPercent}%`,
  );
}

const loadavgAtStart = startLoadavg();
const vapid = { ...createVapidKeys(), subject: "mailto:bench@example.com" };
const sink = await startPushSink(vapid.publicKey);
const configDir = mkdtempSync(join(tmpdir(), "herald-bench-push-"));
const configPath = join(configDir, "herald.json");
writeFileSync(
  configPath,
  JSON.stringify({
    push: {
      vapid,
      allowedHosts: [new URL(sink.url).host],
      maxSubscriptionsPerUser: 20_000,
      ...(CONCURRENCY === undefined ? {} : { concurrency: CONCURRENCY }),
    },
  }),
);
// Herald (a child of this process) trusts the sink's throwaway CA; this process reads the variable only at start.
process.env.NODE_EXTRA_CA_CERTS = sink.caFile;
try {
  const baseline = await runOnce("baseline (no push subscriptions)", configPath, sink, 0);
  const burst = await runOnce("burst (push subscriptions)", configPath, sink, PUSH_SUBSCRIPTIONS);
  const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
  const metrics: Metric[] = [
    { name: "SSE p99, no push", value: baseline.burst.p99Ms, unit: "ms" },
    { name: "SSE p99, push burst", value: burst.burst.p99Ms, unit: "ms" },
    {
      name: "SSE p99 push/no-push",
      value: ratio(burst.burst.p99Ms, baseline.burst.p99Ms),
      unit: "×",
      target: "<= 1.25",
    },
    { name: "SSE p99 while draining, no push", value: baseline.drain.p99Ms, unit: "ms" },
    { name: "SSE p99 while draining, push", value: burst.drain.p99Ms, unit: "ms" },
    { name: "SSE deliveries/s, push burst", value: burst.burst.deliveriesPerSecond, unit: "/s" },
    { name: "SSE lost", value: baseline.lost + burst.lost, unit: "", target: "== 0" },
    { name: "SSE duplicated", value: baseline.duplicated + burst.duplicated, unit: "", target: "== 0" },
    { name: "SSE out of order", value: baseline.outOfOrder + burst.outOfOrder, unit: "", target: "== 0" },
    { name: "pushes missing", value: burst.push.expected - burst.push.received, unit: "", target: "== 0" },
    { name: "pushes duplicated", value: burst.push.duplicates, unit: "", target: "== 0" },
    { name: "pushes/s", value: burst.push.pushesPerSecond, unit: "/s" },
    { name: "publish to last push", value: burst.push.publishToLastPushMs, unit: "ms" },
    { name: "herald_push_failed_total", value: burst.push.metricsAtEnd.failed, unit: "", target: "== 0" },
    {
      name: "herald_push_queued max",
      value: burst.push.maxQueued,
      unit: "",
    },
  ];
  writeResult({
    scenario: CONCURRENCY === undefined ? "push-burst" : `push-burst-c${CONCURRENCY}`,
    description: `${SUBSCRIBERS} SSE subscribers and ${PUSH_SUBSCRIPTIONS} Web Push subscriptions on one mailbox, ${MESSAGES} messages back-to-back, then ${DRAIN_MESSAGES} at ${DRAIN_RATE}/s while the pushes drain; against the same without push subscriptions`,
    date: new Date().toISOString(),
    machine: machine(),
    loadavgAtStart,
    metrics,
    loadGenerator: burst.loadGenerator,
    server: {
      rssBytesBefore: burst.serverRssBytesConnected,
      rssBytesAfter: burst.serverRssBytesAfter,
      flags: ["--config <push section>"],
      cpuMs: burst.serverCpuMs,
    },
    details: {
      subscribers: SUBSCRIBERS,
      pushSubscriptions: PUSH_SUBSCRIPTIONS,
      messages: MESSAGES,
      drainMessages: DRAIN_MESSAGES,
      drainRate: DRAIN_RATE,
      concurrency: CONCURRENCY ?? "default (50)",
      baseline,
      burst,
    },
  });
} finally {
  await sink.close();
  rmSync(configDir, { recursive: true, force: true });
}
