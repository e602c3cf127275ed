import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT } from "jose";
import { Pool } from "undici";
import { startHerald } from "./lib/herald-process.js";
import { sleep } from "./lib/publisher.js";
import { cpuMeter, ensureFileLimit, machine, percentile, round1, startLoadavg, writeResult } from "./lib/report.js";
import { now, SseSwarm } from "./lib/sse-swarm.js";

/**
 * The 10k fan-out of bench/fanout.ts over the Mercure hub: 10,000 EventSource-style
 * subscribers of `/.well-known/mercure?match=<topic>`, 50 updates POSTed back-to-back
 * as forms with an RFC 9068 token. Each update's data is `{"seq":n,"t":…}`, numbered by
 * this script; concurrent publishes may be stored in another order, so order is checked
 * as "every subscriber saw the same order", and loss and repeats per update number.
 */
ensureFileLimit(import.meta.filename);
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 10_000);
const MESSAGES = 50;
const TOPIC = "https://example.com/feeds/bench";
const SECRET = "bench secret of at least thirty-two bytes!";
const AUDIENCE = "https://localhost/.well-known/mercure";

const dir = tmpdir();
const configPath = join(dir, `herald-mercure-bench-${process.pid}.json`);
writeFileSync(
  configPath,
  JSON.stringify({
    mercure: { keys: [{ alg: "HS256", secret: SECRET, issuer: "https://localhost" }], audience: AUDIENCE },
  }),
);
const token = await new SignJWT({
  authorization_details: [
    { type: "https://mercure.rocks/authorization-detail", actions: ["publish"], topics: [{ match: "*" }] },
  ],
})
  .setProtectedHeader({ alg: "HS256", typ: "at+jwt" })
  .setIssuer("https://localhost")
  .setAudience(AUDIENCE)
  .setExpirationTime("1h")
  .sign(new TextEncoder().encode(SECRET));

const loadavgAtStart = startLoadavg();
const flags = ["--config", configPath];
const herald = await startHerald(flags);
const seen = new Uint8Array(SUBSCRIBERS * MESSAGES);
const orderHash = new Float64Array(SUBSCRIBERS);
const swarm = new SseSwarm({
  host: herald.host,
  port: herald.port,
  count: SUBSCRIBERS,
  path: () => `/.well-known/mercure?match=${encodeURIComponent(TOPIC)}`,
  onMessage: (i, seq) => {
    const slot = i * MESSAGES + seq - 1;
    seen[slot] = Math.min(255, (seen[slot] as number) + 1);
    orderHash[i] = ((orderHash[i] as number) * 31 + seq) % 1_000_000_007;
  },
});
const pool = new Pool(herald.url, { connections: MESSAGES, pipelining: 1 });
let failedPublishes = 0;
const publish = async (seq: number): Promise<void> => {
  const body = new URLSearchParams({ topic: TOPIC, data: `{"seq":${seq},"t":${now()}}` }).toString();
  const response = await pool.request({
    method: "POST",
    path: "/.well-known/mercure",
    headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Bearer ${token}` },
    body,
  });
  await response.body.text();
  if (response.statusCode !== 200) failedPublishes += 1;
};
try {
  const rssBefore = herald.rssBytes();
  const connectStarted = performance.now();
  await swarm.open();
  const connectMs = performance.now() - connectStarted;
  const rssConnected = herald.rssBytes();
  await sleep(200);
  const meter = cpuMeter();
  const serverCpuBefore = herald.cpuMs();
  const started = now();
  await Promise.all(Array.from({ length: MESSAGES }, (_, m) => publish(m + 1)));
  const published = now();
  const expected = SUBSCRIBERS * MESSAGES;
  const complete = await swarm.until(() => swarm.totalReceived >= expected, 60_000);
  const phase = meter();
  const serverCpuMs = herald.cpuMs() - serverCpuBefore;
  let lost = 0;
  let repeated = 0;
  for (const count of seen) {
    if (count === 0) lost += 1;
    else repeated += count - 1;
  }
  const hashes = new Map<number, number>();
  for (const hash of orderHash) hashes.set(hash, (hashes.get(hash) ?? 0) + 1);
  const commonOrder = Math.max(...hashes.values());
  const sorted = swarm.sortedLatencies();
  const spanMs = swarm.lastReceiveAt - started;
  writeResult({
    scenario: "mercure-fanout",
    description: `${SUBSCRIBERS} Mercure subscribers (GET /.well-known/mercure?match=…), ${MESSAGES} updates POSTed back-to-back`,
    date: new Date().toISOString(),
    machine: machine(),
    loadavgAtStart,
    metrics: [
      {
        name: "deliveries/s",
        value: Math.round(swarm.totalReceived / (spanMs / 1000)),
        unit: "/s",
        target: ">= 50000",
      },
      { name: "p50 latency", value: round1(percentile(sorted, 50)), unit: "ms" },
      { name: "p99 latency", value: round1(percentile(sorted, 99)), unit: "ms", target: "<= 250" },
      { name: "lost", value: lost, unit: "", target: "== 0" },
      { name: "repeated", value: repeated, unit: "", target: "== 0" },
      { name: "subscribers not in the common order", value: SUBSCRIBERS - commonOrder, unit: "", target: "== 0" },
    ],
    loadGenerator: phase,
    server: { rssBytesBefore: rssBefore, rssBytesAfter: herald.rssBytes(), flags, cpuMs: serverCpuMs },
    details: {
      subscribers: SUBSCRIBERS,
      messages: MESSAGES,
      complete,
      failedPublishes,
      deliveries: swarm.totalReceived,
      publishMs: Math.round(published - started),
      serverCpuUsPerDelivery: round1((serverCpuMs * 1000) / Math.max(1, swarm.totalReceived)),
      firstPublishToLastReceiveMs: Math.round(spanMs),
      connectMs: Math.round(connectMs),
      serverRssConnectedBytes: rssConnected,
      p90Ms: round1(percentile(sorted, 90)),
      maxMs: round1(sorted[sorted.length - 1] ?? Number.NaN),
      unexpectedCloses: swarm.unexpectedCloses,
    },
  });
} finally {
  swarm.close();
  await pool.close();
  await herald.stop();
}
