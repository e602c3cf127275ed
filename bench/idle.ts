import { startHerald } from "./lib/herald-process.js";
import { sleep } from "./lib/publisher.js";
import { cpuMeter, ensureFileLimit, machine, round1, startLoadavg, writeResult } from "./lib/report.js";
import { SseSwarm } from "./lib/sse-swarm.js";

ensureFileLimit(import.meta.filename);

const CONNECTIONS = Number(process.env.BENCH_SUBSCRIBERS ?? 10_000);
/** Idle connections are spread over the mailboxes of a realistic deployment, one user each. */
const MAILBOX = "bench:idle";
/** Time left for the server's heap and buffers to settle before RSS is read. */
const SETTLE_MS = 3000;
const WARMUP_CONNECTIONS = 200;

const loadavgAtStart = startLoadavg();
const flags: string[] = [];
const herald = await startHerald(flags);
try {
  // A first batch warms up code and pools, so the per-connection figure counts only what each costs.
  const warm = new SseSwarm({
    host: herald.host,
    port: herald.port,
    count: WARMUP_CONNECTIONS,
    path: () => `/v1/mailboxes/${MAILBOX}/events`,
  });
  await warm.open();
  warm.close();
  await sleep(SETTLE_MS);
  const rssBefore = herald.rssBytes();
  const meter = cpuMeter();
  const serverCpuBefore = herald.cpuMs();
  const swarm = new SseSwarm({
    host: herald.host,
    port: herald.port,
    count: CONNECTIONS,
    path: () => `/v1/mailboxes/${MAILBOX}/events`,
  });
  await swarm.open();
  await sleep(SETTLE_MS);
  const rssAfter = herald.rssBytes();
  const phase = meter();
  const serverCpuMs = herald.cpuMs() - serverCpuBefore;
  const perConnection = (rssAfter - rssBefore) / CONNECTIONS;
  writeResult({
    scenario: "idle",
    description: `${CONNECTIONS.toLocaleString("en-US")} idle SSE connections; server RSS before and after`,
    date: new Date().toISOString(),
    machine: machine(),
    loadavgAtStart,
    metrics: [
      { name: "RSS per connection", value: round1(perConnection / 1024), unit: "KiB", target: "<= 8" },
      { name: "RSS with connections", value: Math.round(rssAfter / 1048576), unit: "MiB" },
    ],
    loadGenerator: phase,
    server: { rssBytesBefore: rssBefore, rssBytesAfter: rssAfter, flags, cpuMs: serverCpuMs },
    details: { connections: CONNECTIONS, unexpectedCloses: swarm.unexpectedCloses, settleMs: SETTLE_MS },
  });
  swarm.close();
} finally {
  await herald.stop();
}
