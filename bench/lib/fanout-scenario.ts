import { request } from "node:http";
import { startHerald } from "./herald-process.js";
import { Publisher, sleep } from "./publisher.js";
import { cpuMeter, type Metric, machine, percentile, round1, startLoadavg, writeResult } from "./report.js";
import { now, SseSwarm } from "./sse-swarm.js";

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

/** One mailbox, many SSE subscribers, timestamps in the payload; counts every delivery. */
export async function runFanout(options: FanoutOptions): Promise<void> {
  const loadavgAtStart = startLoadavg();
  const flags: string[] = [];
  const herald = await startHerald(flags);
  const admin = ADMIN_OPEN ? openAdminConsole(herald.url) : undefined;
  const swarm = new SseSwarm({
    host: herald.host,
    port: herald.port,
    count: options.subscribers,
    path: (i) =>
      `/v1/mailboxes/${MAILBOX}/events?cursor=now${options.presence ? `&presence=1&reader=viewer-${i}` : ""}`,
  });
  // Back-to-back: one connection per message, so each timestamp is taken as its request goes out, not in a client queue.
  const publisher = new Publisher(herald.url, options.rate === undefined ? options.messages : 4);
  try {
    const rssBefore = herald.rssBytes();
    const connectStarted = performance.now();
    await swarm.open();
    const connectMs = performance.now() - connectStarted;
    // Presence events of the arrivals (joins, then counts) are still in flight: measure fan-out once they stop.
    const presenceSettleMs = options.presence ? await settlePresence(swarm) : 0;
    const rssConnected = herald.rssBytes();
    await sleep(200);
    const meter = cpuMeter();
    const serverCpuBefore = herald.cpuMs();
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
    const serverCpuMs = herald.cpuMs() - serverCpuBefore;
    const rssAfter = herald.rssBytes();
    const sorted = swarm.sortedLatencies();
    const spanMs = swarm.lastReceiveAt - started;
    const deliveriesPerSecond = Math.round(swarm.totalReceived / (spanMs / 1000));
    const lost = swarm.lost(options.messages);
    const metrics: Metric[] = [];
    if (options.minDeliveriesPerSecond !== undefined) {
      metrics.push({
        name: "deliveries/s",
        value: deliveriesPerSecond,
        unit: "/s",
        target: `>= ${options.minDeliveriesPerSecond}`,
      });
    }
    metrics.push(
      { name: "p50 latency", value: round1(percentile(sorted, 50)), unit: "ms" },
      { name: "p99 latency", value: round1(percentile(sorted, 99)), unit: "ms", target: `<= ${options.maxP99Ms}` },
      { name: "lost", value: lost, unit: "", target: "== 0" },
      { name: "duplicated", value: swarm.sum(swarm.duplicates), unit: "", target: "== 0" },
      { name: "out of order", value: swarm.sum(swarm.outOfOrder), unit: "", target: "== 0" },
    );
    writeResult({
      scenario: ADMIN_OPEN ? `${options.scenario}-admin` : options.scenario,
      description: options.description,
      date: new Date().toISOString(),
      machine: machine(),
      loadavgAtStart,
      metrics,
      loadGenerator: phase,
      server: { rssBytesBefore: rssBefore, rssBytesAfter: rssAfter, flags, cpuMs: serverCpuMs },
      details: {
        subscribers: options.subscribers,
        messages: options.messages,
        rate: options.rate ?? "back-to-back",
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
        presence: options.presence === true,
        presenceEvents: swarm.presenceEvents,
        adminConsoleOpen: ADMIN_OPEN,
        adminSamples: admin?.samples() ?? 0,
      },
    });
  } finally {
    admin?.close();
    swarm.close();
    await publisher.close();
    await herald.stop();
  }
}
