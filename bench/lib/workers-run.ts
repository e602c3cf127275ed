import { deleteKeys } from "../../test/helpers/redis.js";
import { type HeraldProcess, startHerald } from "./herald-process.js";
import { Publisher, sleep } from "./publisher.js";
import { percentile, round1 } from "./report.js";
import { now } from "./sse-swarm.js";
import { SwarmFleet } from "./swarm-fleet.js";

export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const MAILBOX = "bench:workers";
/** Longest the run waits for every delivery after the last publish. */
const SETTLE_TIMEOUT_MS = 180_000;

export interface WorkersFanoutOptions {
  readonly workers: number;
  readonly subscribers: number;
  /** Load-generator processes. */
  readonly generators: number;
  /** Published back-to-back once every subscriber is connected. */
  readonly messages: number;
}

export interface WorkersFanout {
  readonly flags: string[];
  readonly connectsPerSecond: number;
  readonly connectMs: number;
  readonly connectFailures: number;
  readonly firstConnectError: string | undefined;
  readonly deliveriesPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly outOfOrder: number;
  readonly gaps: number;
  readonly unexpectedCloses: number;
  readonly complete: boolean;
  readonly rssBeforeBytes: number;
  readonly rssConnectedBytes: number;
  readonly rssPerConnectionKiB: number;
  readonly serverCpuMs: number;
  /** CPU of the load-generator processes over the whole run, connecting included. */
  readonly generatorCpuMs: number;
  readonly wallMs: number;
}

/** Herald on Redis with `--workers` (request log on, as by default) plus `extra` flags; stopped by the caller. */
export async function startWorkers(workers: number, prefix: string, extra: string[] = []): Promise<HeraldProcess> {
  const flags = ["--store", "redis", "--redis-url", REDIS_URL, "--redis-prefix", prefix, "--workers", `${workers}`];
  return startHerald([...flags, ...extra]);
}

export function uniqueBenchPrefix(label: string): string {
  return `bench-${label}-${process.pid}-${Date.now()}:`;
}

/**
 * One mailbox on Herald with `workers` workers on Redis, `subscribers` SSE
 * subscribers over `generators` processes, `messages` published at once:
 * connect rate, RSS per connection, deliveries/s and latency, and the
 * delivery contract (every subscriber gets every message once, in order).
 */
export async function fanoutAcrossWorkers(options: WorkersFanoutOptions): Promise<WorkersFanout> {
  const prefix = uniqueBenchPrefix(`w${options.workers}`);
  const server = await startWorkers(options.workers, prefix);
  const fleet = await SwarmFleet.start({
    host: server.host,
    port: server.port,
    path: `/v1/mailboxes/${MAILBOX}/events`,
    subscribers: options.subscribers,
    processes: options.generators,
  });
  const publisher = new Publisher(server.url, options.messages);
  try {
    await sleep(1000);
    const rssBeforeBytes = server.rssBytes();
    const opened = await fleet.open();
    // Let the accept backlog and the workers' bookkeeping settle before reading memory.
    await sleep(2000);
    const rssConnectedBytes = server.rssBytes();
    const cpuBefore = server.cpuMs();
    const wallStarted = performance.now();
    const started = now();
    await Promise.all(Array.from({ length: options.messages }, () => publisher.publish(MAILBOX)));
    const report = await fleet.report(options.messages, SETTLE_TIMEOUT_MS);
    const serverCpuMs = server.cpuMs() - cpuBefore;
    const connected = options.subscribers - opened.failed;
    return {
      flags: ["--store", "redis", "--workers", `${options.workers}`],
      connectsPerSecond: Math.round(connected / (opened.connectMs / 1000)),
      connectMs: Math.round(opened.connectMs),
      connectFailures: opened.failed,
      firstConnectError: opened.firstError,
      deliveriesPerSecond: Math.round(report.received / ((report.lastReceiveAt - started) / 1000)),
      p50Ms: round1(percentile(report.latencies, 50)),
      p99Ms: round1(percentile(report.latencies, 99)),
      lost: report.lost,
      duplicated: report.duplicated,
      outOfOrder: report.outOfOrder,
      gaps: report.gaps,
      unexpectedCloses: report.unexpectedCloses,
      complete: report.complete,
      rssBeforeBytes,
      rssConnectedBytes,
      rssPerConnectionKiB: round1((rssConnectedBytes - rssBeforeBytes) / Math.max(1, connected) / 1024),
      serverCpuMs: Math.round(serverCpuMs),
      generatorCpuMs: report.cpuMs,
      wallMs: Math.round(performance.now() - wallStarted),
    };
  } finally {
    fleet.close();
    await publisher.pool.close();
    await server.stop();
    await deleteKeys(REDIS_URL, prefix);
  }
}
