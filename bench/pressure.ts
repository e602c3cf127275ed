import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "undici";
import { type HeraldProcess, startHerald } from "./lib/herald-process.js";
import { Publisher, sleep } from "./lib/publisher.js";
import { cpuMeter, ensureFileLimit, machine, percentile, round1, startLoadavg, writeResult } from "./lib/report.js";
import { now, SseSwarm } from "./lib/sse-swarm.js";

/**
 * Bounded under pressure (three runs, each against its own server):
 *
 * - `stalled`: 1,000 subscribers that stop reading and 50 that read, while
 *   100,000 messages are published to their mailbox. The stalled ones must be
 *   cut (they resume by cursor later) and the server's RSS must stay bounded;
 *   the readers lose nothing.
 * - `flood`: a publisher floods one mailbox (32 requests always in flight)
 *   while a probe publishes to another every 20 ms: how much later its one
 *   subscriber gets each probe than without the flood.
 * - `storm`: with limits.maxConnections 2,000 held by streams, 20,000 more
 *   stream requests arrive: each is refused (503 server_full) at once, and the
 *   2,000 held streams keep receiving everything.
 *
 * `npx tsx bench/pressure.ts [stalled|flood|storm]` (all three by default).
 */
ensureFileLimit(import.meta.filename);
const chosen = process.argv.slice(2);
const runs = chosen.length > 0 ? chosen : ["stalled", "flood", "storm"];

/** Samples the server's RSS every 200 ms until stopped; resolves the samples. */
function sampleRss(herald: HeraldProcess): { stop: () => number[] } {
  const samples: number[] = [herald.rssBytes()];
  const timer = setInterval(() => samples.push(herald.rssBytes()), 200);
  return {
    stop: () => {
      clearInterval(timer);
      samples.push(herald.rssBytes());
      return samples;
    },
  };
}

async function metric(herald: HeraldProcess, name: string): Promise<number> {
  const text = await (await fetch(`${herald.url}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
}

const MIB = 1024 * 1024;

async function stalled(): Promise<void> {
  const STALLED = 1000;
  const READERS = 50;
  const MESSAGES = 100_000;
  const BATCH = 100;
  const loadavgAtStart = startLoadavg();
  const herald = await startHerald([]);
  const path = () => "/v1/mailboxes/pressure/events?cursor=now";
  // Reads its first bytes, then at most one byte a second: a consumer that stopped reading.
  const stuck = new SseSwarm({
    host: herald.host,
    port: herald.port,
    count: STALLED,
    path,
    timestamps: false,
    readBytesPerSecond: () => 1,
  });
  const readers = new SseSwarm({ host: herald.host, port: herald.port, count: READERS, path, timestamps: false });
  const pool = new Pool(herald.url, { connections: 8, pipelining: 1 });
  try {
    await stuck.open();
    await readers.open();
    const rssConnected = herald.rssBytes();
    const rss = sampleRss(herald);
    const meter = cpuMeter();
    const started = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < MESSAGES / BATCH) {
        next += 1;
        const messages = Array.from({ length: BATCH }, () => ({ mailbox: "pressure", body: "x".repeat(64) }));
        const response = await pool.request({
          method: "POST",
          path: "/v1/messages",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ messages }),
        });
        await response.body.text();
        if (response.statusCode !== 201) throw new Error(`batch publish answered ${response.statusCode}`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const publishMs = performance.now() - started;
    const complete = await readers.until(() => readers.totalReceived >= READERS * MESSAGES, 120_000);
    const samples = rss.stop();
    const phase = meter();
    const cut = await metric(herald, "herald_slow_consumers_cut_total");
    const peak = Math.max(...samples);
    writeResult({
      scenario: "pressure-stalled",
      description: `${STALLED} stalled SSE subscribers and ${READERS} readers of one mailbox while ${MESSAGES} messages are published`,
      date: new Date().toISOString(),
      machine: machine(),
      loadavgAtStart,
      metrics: [
        { name: "peak RSS above connected", value: round1((peak - rssConnected) / MIB), unit: "MiB", target: "<= 128" },
        { name: "stalled subscribers cut", value: cut, unit: "", target: `== ${STALLED}` },
        { name: "readers lost", value: readers.lost(MESSAGES), unit: "", target: "== 0" },
        { name: "readers repeated", value: readers.sum(readers.duplicates), unit: "", target: "== 0" },
      ],
      loadGenerator: phase,
      server: { rssBytesBefore: rssConnected, rssBytesAfter: samples[samples.length - 1] ?? 0, flags: [] },
      details: {
        complete,
        publishMs: Math.round(publishMs),
        publishesPerSecond: Math.round(MESSAGES / (publishMs / 1000)),
        peakRssBytes: peak,
        rssConnectedBytes: rssConnected,
        rssSamples: samples.length,
        maxQueueBytes: MIB,
        readersClosedUnexpectedly: readers.unexpectedCloses,
      },
    });
  } finally {
    stuck.close();
    readers.close();
    await pool.close();
    await herald.stop();
  }
}

/** Probes `calm` every 20 ms for `ms`, one subscriber timing each probe; resolves the latencies, sorted. */
async function probe(herald: HeraldProcess, ms: number): Promise<{ sorted: Float64Array; lost: number }> {
  const swarm = new SseSwarm({
    host: herald.host,
    port: herald.port,
    count: 1,
    path: () => "/v1/mailboxes/calm/events?cursor=now",
  });
  await swarm.open();
  const publisher = new Publisher(herald.url, 1);
  let sent = 0;
  const until = performance.now() + ms;
  while (performance.now() < until) {
    await publisher.publish("calm");
    sent += 1;
    await sleep(20);
  }
  await swarm.until(() => swarm.totalReceived >= sent, 10_000);
  const result = { sorted: swarm.sortedLatencies(), lost: swarm.lost(sent) };
  swarm.close();
  await publisher.close();
  return result;
}

async function flood(): Promise<void> {
  const SECONDS = 10;
  const loadavgAtStart = startLoadavg();
  const herald = await startHerald([]);
  const floodReaders = new SseSwarm({
    host: herald.host,
    port: herald.port,
    count: 10,
    path: () => "/v1/mailboxes/flood/events?cursor=now",
    timestamps: false,
  });
  try {
    await floodReaders.open();
    const calm = await probe(herald, SECONDS * 1000);
    const pool = new Pool(herald.url, { connections: 32, pipelining: 1 });
    let flooding = true;
    let floodPublishes = 0;
    const flooder = async () => {
      while (flooding) {
        const response = await pool.request({
          method: "POST",
          path: "/v1/mailboxes/flood/messages",
          headers: { "content-type": "application/json" },
          body: `{"data":{"t":${now()}}}`,
        });
        await response.body.text();
        floodPublishes += 1;
      }
    };
    const meter = cpuMeter();
    const flooders = Array.from({ length: 32 }, flooder);
    await sleep(500);
    const flooded = await probe(herald, SECONDS * 1000);
    flooding = false;
    await Promise.all(flooders);
    await pool.close();
    const phase = meter();
    const p99Calm = percentile(calm.sorted, 99);
    const p99Flooded = percentile(flooded.sorted, 99);
    writeResult({
      scenario: "pressure-flood",
      description: "a publisher floods one mailbox (32 in flight) while another mailbox is probed every 20 ms",
      date: new Date().toISOString(),
      machine: machine(),
      loadavgAtStart,
      metrics: [
        { name: "probe p50, no flood", value: round1(percentile(calm.sorted, 50)), unit: "ms" },
        { name: "probe p99, no flood", value: round1(p99Calm), unit: "ms" },
        { name: "probe p50, flooded", value: round1(percentile(flooded.sorted, 50)), unit: "ms" },
        { name: "probe p99, flooded", value: round1(p99Flooded), unit: "ms", target: "<= 100" },
        { name: "probes lost", value: calm.lost + flooded.lost, unit: "", target: "== 0" },
      ],
      loadGenerator: phase,
      server: { rssBytesBefore: 0, rssBytesAfter: herald.rssBytes(), flags: [] },
      details: {
        floodPublishesPerSecond: Math.round(floodPublishes / (SECONDS + 0.5)),
        floodReaders: 10,
        floodDeliveries: floodReaders.totalReceived,
        probesNoFlood: calm.sorted.length,
        probesFlooded: flooded.sorted.length,
        probeMaxFloodedMs: round1(flooded.sorted[flooded.sorted.length - 1] ?? Number.NaN),
      },
    });
  } finally {
    floodReaders.close();
    await herald.stop();
  }
}

/** One stream request that is expected to be refused: its status, or 0 when the connection failed. */
async function attempt(pool: Pool): Promise<number> {
  try {
    // A new connection each: a reconnect storm is new sockets, not requests on kept-alive ones.
    const response = await pool.request({
      method: "GET",
      path: "/v1/mailboxes/storm/events?cursor=now",
      headers: { connection: "close" },
    });
    const status = response.statusCode;
    response.body.on("error", () => {});
    // A refusal is a short JSON answer; a stream that was let in is cut at once.
    if (status === 503) await response.body.text();
    else response.body.destroy();
    return status;
  } catch {
    return 0;
  }
}

async function storm(): Promise<void> {
  const HELD = 2000;
  const ATTEMPTS = 20_000;
  const loadavgAtStart = startLoadavg();
  const configPath = join(tmpdir(), `herald-pressure-${process.pid}.json`);
  writeFileSync(configPath, JSON.stringify({ limits: { maxConnections: HELD } }));
  const herald = await startHerald(["--config", configPath]);
  const held = new SseSwarm({
    host: herald.host,
    port: herald.port,
    count: HELD,
    path: () => "/v1/mailboxes/held/events?cursor=now",
    timestamps: false,
  });
  const stormPool = new Pool(herald.url, { connections: 64, pipelining: 1 });
  const publisher = new Publisher(herald.url, 1);
  try {
    await held.open();
    const statuses = new Map<number, number>();
    let published = 0;
    let storming = true;
    const ticker = (async () => {
      while (storming) {
        await publisher.publish("held");
        published += 1;
        await sleep(100);
      }
    })();
    const meter = cpuMeter();
    const started = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < ATTEMPTS) {
        next += 1;
        const status = await attempt(stormPool);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 64 }, worker));
    const stormMs = performance.now() - started;
    storming = false;
    await ticker;
    const complete = await held.until(() => held.totalReceived >= HELD * published, 30_000);
    const phase = meter();
    writeResult({
      scenario: "pressure-storm",
      description: `${ATTEMPTS} stream requests beyond limits.maxConnections (${HELD}, all held by streams)`,
      date: new Date().toISOString(),
      machine: machine(),
      loadavgAtStart,
      metrics: [
        { name: "refused with 503", value: statuses.get(503) ?? 0, unit: "", target: `== ${ATTEMPTS}` },
        { name: "refusals/s", value: Math.round(ATTEMPTS / (stormMs / 1000)), unit: "/s" },
        { name: "held streams closed", value: held.unexpectedCloses, unit: "", target: "== 0" },
        { name: "held streams lost", value: held.lost(published), unit: "", target: "== 0" },
      ],
      loadGenerator: phase,
      server: { rssBytesBefore: 0, rssBytesAfter: herald.rssBytes(), flags: ["--config", "limits.maxConnections"] },
      details: { complete, statuses: Object.fromEntries(statuses), stormMs: Math.round(stormMs), published },
    });
  } finally {
    held.close();
    await stormPool.close();
    await publisher.close();
    await herald.stop();
  }
}

const scenarios: Record<string, () => Promise<void>> = { stalled, flood, storm };
for (const name of runs) {
  const run = scenarios[name];
  if (run === undefined) throw new Error(`unknown scenario ${name}; use stalled, flood or storm`);
  await run();
}
