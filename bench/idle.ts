import { sleep } from "./lib/publisher.js";
import { cpuMeter, ensureFileLimit, type Metric, machine, round1, startLoadavg, writeResult } from "./lib/report.js";
import { SseSwarm } from "./lib/sse-swarm.js";
import { HERALD, references, type Target } from "./lib/targets.js";

ensureFileLimit(import.meta.filename);

const CONNECTIONS = Number(process.env.BENCH_SUBSCRIBERS ?? 10_000);
const MAILBOX = "bench:idle";
/** Time left for the server's heap and buffers to settle before RSS is read. */
const SETTLE_MS = 3000;
const WARMUP_CONNECTIONS = 200;

interface IdleRun {
  /** RSS of the process once it listens, before any request. */
  readonly rssAtStart: number;
  readonly rssBefore: number;
  readonly rssAfter: number;
  readonly perConnectionBytes: number;
  readonly connectsPerSecond: number;
  readonly unexpectedCloses: number;
  readonly serverCpuMs: number;
  readonly cpu: { cpuMs: number; wallMs: number; cpuPercent: number };
}

async function run(target: Target): Promise<IdleRun> {
  const server = await target.start();
  try {
    await sleep(SETTLE_MS);
    const rssAtStart = server.rssBytes();
    const swarmOf = (count: number) =>
      new SseSwarm({ host: server.host, port: server.port, count, path: () => target.ssePath(MAILBOX) });
    // A first batch warms up code and pools, so the per-connection figure counts only what each costs.
    const warm = swarmOf(WARMUP_CONNECTIONS);
    await warm.open();
    warm.close();
    await sleep(SETTLE_MS);
    const rssBefore = server.rssBytes();
    const meter = cpuMeter();
    const serverCpuBefore = server.cpuMs();
    const swarm = swarmOf(CONNECTIONS);
    const connecting = performance.now();
    await swarm.open();
    const connectsPerSecond = Math.round(CONNECTIONS / ((performance.now() - connecting) / 1000));
    await sleep(SETTLE_MS);
    const rssAfter = server.rssBytes();
    const cpu = meter();
    const serverCpuMs = server.cpuMs() - serverCpuBefore;
    swarm.close();
    return {
      rssAtStart,
      rssBefore,
      rssAfter,
      perConnectionBytes: (rssAfter - rssBefore) / CONNECTIONS,
      connectsPerSecond,
      unexpectedCloses: swarm.unexpectedCloses,
      serverCpuMs,
      cpu,
    };
  } finally {
    await server.stop();
  }
}

const loadavgAtStart = startLoadavg();
const herald = await run(HERALD);
const reference: Record<string, IdleRun> = {};
for (const target of references()) reference[target.name] = await run(target);
const kib = (bytes: number) => round1(bytes / 1024);
const mib = (bytes: number) => Math.round(bytes / 1048576);
const metrics: Metric[] = [
  { name: "RSS per connection", value: kib(herald.perConnectionBytes), unit: "KiB", target: "<= 8" },
  { name: "RSS with connections", value: mib(herald.rssAfter), unit: "MiB" },
  { name: "RSS before any connection", value: mib(herald.rssAtStart), unit: "MiB", target: "<= 60" },
  { name: "SSE connections accepted/s", value: herald.connectsPerSecond, unit: "/s", target: ">= 8000" },
];
for (const [name, run] of Object.entries(reference)) {
  const label = name === "bare" ? "bare node:http" : "Nchan";
  metrics.push(
    { name: `${label}: RSS per connection`, value: kib(run.perConnectionBytes), unit: "KiB" },
    { name: `${label}: RSS before any connection`, value: mib(run.rssAtStart), unit: "MiB" },
    { name: `${label}: SSE connections accepted/s`, value: run.connectsPerSecond, unit: "/s" },
  );
}
writeResult({
  scenario: "idle",
  description: `${CONNECTIONS.toLocaleString("en-US")} idle SSE connections opened (${WARMUP_CONNECTIONS} first to warm up): accept rate, server RSS before and after; Herald, the bare node:http baseline and Nchan (1 worker) in the same run`,
  date: new Date().toISOString(),
  machine: machine(),
  loadavgAtStart,
  metrics,
  loadGenerator: herald.cpu,
  server: { rssBytesBefore: herald.rssBefore, rssBytesAfter: herald.rssAfter, flags: [], cpuMs: herald.serverCpuMs },
  details: { connections: CONNECTIONS, settleMs: SETTLE_MS, herald, reference },
});
