import cluster, { type Worker } from "node:cluster";
import type { ServeConfig } from "../config.js";
import { listeningUrl } from "../startup-banner.js";
import { serveClusterMetrics } from "./cluster-metrics.js";
import { WORKER_INDEX_ENV } from "./worker.js";

/** Pause before a worker that died is replaced, so a crash loop does not spin a core. */
const RESTART_DELAY_MS = 1000;
/** Beyond the workers' own drain deadline, how long the primary waits before killing one that hangs. */
const DRAIN_MARGIN_MS = 10_000;

function exitDescription(code: number | null, signal: string | null): string {
  return signal ? `signal ${signal}` : `code ${code}`;
}

/**
 * `herald serve --workers N`: forks N workers that share the port (node:cluster
 * hands each new connection to the next worker) and the mailboxes (Redis). The
 * primary serves nothing itself: it announces the server once every worker
 * listens, replaces a worker that dies, adds up /metrics, and on SIGTERM or
 * SIGINT has every worker drain, exiting 0 when all drained cleanly.
 */
export async function runPrimary(config: ServeConfig, announce: (url: string) => void): Promise<void> {
  serveClusterMetrics();
  const byWorker = new Map<Worker, { index: number; listened: boolean }>();
  let stopping = false;
  let worstExit = 0;
  const fork = (index: number) =>
    byWorker.set(cluster.fork({ [WORKER_INDEX_ENV]: String(index) }), {
      index,
      listened: false,
    });

  const everyoneListening = new Promise<number>((resolve) => {
    cluster.on("listening", (worker, address) => {
      const slot = byWorker.get(worker);
      if (slot) slot.listened = true;
      if ([...byWorker.values()].every((each) => each.listened)) resolve(address.port);
    });
  });

  const stop = (reason: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${reason}: draining ${byWorker.size} worker${byWorker.size === 1 ? "" : "s"}`);
    for (const worker of byWorker.keys()) worker.process.kill("SIGTERM");
    setTimeout(
      () => {
        for (const worker of byWorker.keys()) worker.process.kill("SIGKILL");
      },
      config.drainTimeoutSeconds * 1000 + DRAIN_MARGIN_MS,
    ).unref();
  };

  cluster.on("exit", (worker, code, signal) => {
    const slot = byWorker.get(worker);
    byWorker.delete(worker);
    if (slot === undefined) return;
    const how = exitDescription(code, signal);
    if (stopping) {
      if (code !== 0) worstExit = 1;
      if (byWorker.size > 0) return;
      console.log(
        `Herald stopped: every worker drained${worstExit === 0 ? "" : ", not all cleanly"}; exit ${worstExit}`,
      );
      process.exit(worstExit);
    }
    if (!slot.listened) {
      // It could not start (Redis refused, a port taken): its siblings would fail the same way.
      console.error(`herald: worker ${slot.index} exited (${how}) before listening; stopping`);
      worstExit = 1;
      stop("Startup failed");
      if (byWorker.size === 0) process.exit(1);
      return;
    }
    console.error(`herald: worker ${slot.index} (pid ${worker.process.pid}) exited (${how}); starting another`);
    setTimeout(() => {
      if (!stopping) fork(slot.index);
    }, RESTART_DELAY_MS);
  });

  process.on("SIGTERM", () => stop("SIGTERM received"));
  process.on("SIGINT", () => stop("SIGINT received"));
  for (let index = 0; index < config.workers; index++) fork(index);
  const port = await everyoneListening;
  if (stopping) return;
  announce(listeningUrl(config.host, port));
  const pids = [...byWorker.keys()].map((worker) => worker.process.pid).join(", ");
  console.log(`Workers: ${config.workers} sharing the port (pids ${pids}); primary pid ${process.pid}`);
}
