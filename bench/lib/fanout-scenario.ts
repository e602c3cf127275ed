import { request } from "node:http";
import { nchanAvailable } from "./nchan-process.js";
import { Publisher, sleep } from "./publisher.js";
import { cpuMeter, type Metric, machine, percentile, round1, startLoadavg, writeResult } from "./report.js";
import { now, SseSwarm } from "./sse-swarm.js";
import { HERALD, NCHAN, type Target } from "./targets.js";

export interface FanoutOptions {
  readonly scenario: string;
  readonly description: string;
  readonly subscribers: number;
  readonly messages: number;
  /** Messages per second; undefined publishes them back-to-back (all in flight at once). */
  readonly rate?: number;
  readonly minDeliveriesPerSecond?: number;
  readonly maxP99Ms: number;
  /** Longest the run waits for every delivery after the last publish. */
  readonly settleTimeoutMs: number;
  /** Every subscriber names itself (`reader=viewer-i`) and asks for presence events. */
  readonly presence?: boolean;
  /** Runs Nchan under the same load too, compared by deliveries/s (a burst) or by p99 latency. */
  readonly nchan?: "deliveries" | "p99";
}

const MAILBOX = "bench:fanout";
/** BENCH_ADMIN_STREAM=1: the admin console is open during the run (scenario name gets "-admin"). */
const ADMIN_OPEN = process.env.BENCH_ADMIN_STREAM === "1";
/** How often the admin page asks for the busiest mailboxes. */
const ADMIN_POLL_MS = 2000;

/**
 * What an open admin console costs the server: its stats stream (GET
 * /v1/admin/stats/events, a sample a second) and, like the page, the busiest
 * mailboxes every two seconds. Counts the samples it received.
 */
function openAdminConsole(base: string): { samples: () => number; close: () => void } {
  let samples = 0;
  const stream = request(`${base}/v1/admin/stats/events`, (response) => {
    if (response.statusCode !== 200) throw new Error(`admin stream answered ${response.statusCode}`);
    response.setEncoding("utf8");
    response.on("data", (chunk: string) => {
      samples += chunk.split("event: sample\n").length - 1;
    });
    response.on("error", () => {});
  });
  stream.on("error", () => {});
  stream.end();
  const poll = setInterval(() => {
    fetch(`${base}/v1/admin/mailboxes?limit=20`)
      .then((response) => response.arrayBuffer())
      .catch(() => {});
  }, ADMIN_POLL_MS);
  return {
    samples: () => samples,
    close: () => {
      clearInterval(poll);
      stream.destroy();
    },
  };
}
/** Presence has settled when no presence event arrived for this long (longer than the count interval). */
const PRESENCE_QUIET_MS = 1500;
const PRESENCE_SETTLE_LIMIT_MS = 60_000;

/** Waits until presence events stop arriving; resolves how long that took. */
async function settlePresence(swarm: SseSwarm): Promise<number> {
  const started = performance.now();
  let seen = swarm.presenceEvents;
  let quietSince = performance.now();
  while (performance.now() - quietSince < PRESENCE_QUIET_MS && performance.now() - started < PRESENCE_SETTLE_LIMIT_MS) {
    await sleep(100);
    if (swarm.presenceEvents !== seen) {
      seen = swarm.presenceEvents;
      quietSince = performance.now();
    }
  }
  return quietSince - started;
}

interface FanoutRun {
  readonly deliveriesPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly outOfOrder: number;
  readonly phase: { cpuMs: number; wallMs: number; cpuPercent: number };
  readonly serverCpuMs: number;
  readonly rssBefore: number;
  readonly rssAfter: number;
  readonly details: Record<string, unknown>;
}

/** One mailbox, many SSE subscribers, timestamps in the payload; counts every delivery. */
async function measure(target: Target, options: FanoutOptions): Promise<FanoutRun> {
  const server = await target.start();
  const admin = ADMIN_OPEN && target === HERALD ? openAdminConsole(server.url) : undefined;
  const presence = options.presence && target === HERALD;
  const swarm = new SseSwarm({
    host: server.host,
    port: server.port,
    count: options.subscribers,
    path: (i) => `${target.ssePath(MAILBOX)}${presence ? `&presence=1&reader=viewer-${i}` : ""}`,
    // Publishes in flight at once reach Nchan in any order, numbered by the publisher.
    countDataLines: !target.numbers,
  });
  // Back-to-back: one connection per message, so each timestamp is taken as its request goes out, not in a client queue.
  const publisher = new Publisher(server.url, options.rate === undefined ? options.messages : 4, target);
  try {
    const rssBefore = server.rssBytes();
    const connectStarted = performance.now();
    await swarm.open();
    const connectMs = performance.now() - connectStarted;
    // Presence events of the arrivals (joins, then counts) are still in flight: measure fan-out once they stop.
    const presenceSettleMs = presence ? await settlePresence(swarm) : 0;
    const rssConnected = server.rssBytes();
    await sleep(200);
    const meter = cpuMeter();
    const serverCpuBefore = server.cpuMs();
    const started = now();
    if (options.rate === undefined) {
      await Promise.all(Array.from({ length: options.messages }, () => publisher.publish(MAILBOX)));
    } else {
      const interval = 1000 / options.rate;
      const t0 = performance.now();
      const inFlight: Promise<number>[] = [];
      for (let m = 0; m < options.messages; m++) {
        const due = t0 + m * interval - performance.now();
        if (due > 0) await sleep(due);
        inFlight.push(publisher.publish(MAILBOX));
      }
      await Promise.all(inFlight);
    }
    const published = now();
    const expected = options.subscribers * options.messages;
    const complete = await swarm.until(() => swarm.totalReceived >= expected, options.settleTimeoutMs);
    const phase = meter();
    const serverCpuMs = server.cpuMs() - serverCpuBefore;
    const sorted = swarm.sortedLatencies();
    const spanMs = swarm.lastReceiveAt - started;
    return {
      deliveriesPerSecond: Math.round(swarm.totalReceived / (spanMs / 1000)),
      p50Ms: round1(percentile(sorted, 50)),
      p99Ms: round1(percentile(sorted, 99)),
      lost: swarm.lost(options.messages),
      duplicated: swarm.sum(swarm.duplicates),
      outOfOrder: swarm.sum(swarm.outOfOrder),
      phase,
      serverCpuMs,
      rssBefore,
      rssAfter: server.rssBytes(),
      details: {
        complete,
        expectedDeliveries: expected,
        deliveries: swarm.totalReceived,
        publishMs: Math.round(published - started),
        serverCpuUsPerDelivery: round1((serverCpuMs * 1000) / Math.max(1, swarm.totalReceived)),
        firstPublishToLastReceiveMs: Math.round(spanMs),
        connectMs: Math.round(connectMs),
        presenceSettleMs: Math.round(presenceSettleMs),
        serverRssConnectedBytes: rssConnected,
        p90Ms: round1(percentile(sorted, 90)),
        maxMs: round1(sorted[sorted.length - 1] ?? Number.NaN),
        unexpectedCloses: swarm.unexpectedCloses,
        gapEvents: swarm.gapEvents,
        presence: presence === true,
        presenceEvents: swarm.presenceEvents,
        adminConsoleOpen: admin !== undefined,
        adminSamples: admin?.samples() ?? 0,
      },
    };
  } finally {
    admin?.close();
    swarm.close();
    await publisher.close();
    await server.stop();
  }
}

/** Herald's fan-out, and with `nchan` Nchan's under the same load in the same run, as ratios. */
export async function runFanout(options: FanoutOptions): Promise<void> {
  const loadavgAtStart = startLoadavg();
  const herald = await measure(HERALD, options);
  const available = options.nchan === undefined ? undefined : nchanAvailable();
  if (available && !available.ok) console.warn(`Nchan skipped: ${available.reason}`);
  const nchan = available?.ok ? await measure(NCHAN, options) : undefined;
  const metrics: Metric[] = [];
  if (options.minDeliveriesPerSecond !== undefined) {
    metrics.push({
      name: "deliveries/s",
      value: herald.deliveriesPerSecond,
      unit: "/s",
      target: `>= ${options.minDeliveriesPerSecond}`,
    });
  }
  metrics.push(
    { name: "p50 latency", value: herald.p50Ms, unit: "ms" },
    { name: "p99 latency", value: herald.p99Ms, unit: "ms", target: `<= ${options.maxP99Ms}` },
    { name: "lost", value: herald.lost, unit: "", target: "== 0" },
    { name: "duplicated", value: herald.duplicated, unit: "", target: "== 0" },
    { name: "out of order", value: herald.outOfOrder, unit: "", target: "== 0" },
  );
  if (nchan) {
    metrics.push(
      { name: "Nchan: deliveries/s", value: nchan.deliveriesPerSecond, unit: "/s" },
      { name: "Nchan: p99 latency", value: nchan.p99Ms, unit: "ms" },
      { name: "Nchan: lost", value: nchan.lost, unit: "" },
    );
    if (options.nchan === "deliveries") {
      metrics.push({
        name: "deliveries/s, × Nchan",
        value: round1(herald.deliveriesPerSecond / Math.max(1, nchan.deliveriesPerSecond)),
        unit: "×",
        target: ">= 3",
      });
    } else {
      metrics.push({
        name: "p99 latency, % of Nchan's",
        value: round1((herald.p99Ms / Math.max(0.1, nchan.p99Ms)) * 100),
        unit: "%",
        target: "<= 100",
      });
    }
  }
  writeResult({
    scenario: ADMIN_OPEN ? `${options.scenario}-admin` : options.scenario,
    description: `${options.description}${nchan ? "; Nchan (1 worker) under the same load in the same run" : ""}`,
    date: new Date().toISOString(),
    machine: machine(),
    loadavgAtStart,
    metrics,
    loadGenerator: herald.phase,
    server: { rssBytesBefore: herald.rssBefore, rssBytesAfter: herald.rssAfter, flags: [], cpuMs: herald.serverCpuMs },
    details: {
      subscribers: options.subscribers,
      messages: options.messages,
      rate: options.rate ?? "back-to-back",
      ...herald.details,
      ...(nchan ? { nchan: { ...nchan, phase: undefined } } : {}),
    },
  });
}
