import cluster, { type Worker } from "node:cluster";
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from "prom-client";
import type { MetricsSharing } from "../http/metrics.js";

/**
 * /metrics across workers: the worker that is scraped asks the primary, the
 * primary collects every worker's registry over IPC and answers the sum.
 */

/** Longest a scrape waits for the primary's answer. */
const GATHER_TIMEOUT_MS = 5000;
/** Longest the primary waits for one worker's part; a stuck worker is left out of that scrape, not the scrape. */
const PART_TIMEOUT_MS = 2000;

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

type ClusterMessage =
  | { readonly herald: "metrics-request"; readonly id: number }
  | { readonly herald: "metrics-result"; readonly id: number; readonly text?: string; readonly error?: string }
  | { readonly herald: "metrics-collect"; readonly id: number }
  | { readonly herald: "metrics-part"; readonly id: number; readonly metrics: MetricsJson };

function isClusterMessage(message: unknown): message is ClusterMessage {
  return typeof message === "object" && message !== null && "herald" in message && "id" in message;
}

/** A worker's side: answers the primary's collections and asks it for the sum. */
export function createWorkerMetricsSharing(): MetricsSharing {
  let local: Registry | undefined;
  let nextId = 0;
  const waiting = new Map<
    number,
    { resolve: (text: string) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }
  >();
  const send = (message: ClusterMessage) => process.send?.(message);
  process.on("message", (message: unknown) => {
    if (!isClusterMessage(message)) return;
    if (message.herald === "metrics-collect") {
      const registry = local;
      void (registry === undefined ? Promise.resolve([]) : registry.getMetricsAsJSON()).then(
        (metrics) => send({ herald: "metrics-part", id: message.id, metrics }),
        () => send({ herald: "metrics-part", id: message.id, metrics: [] }),
      );
    } else if (message.herald === "metrics-result") {
      const pending = waiting.get(message.id);
      if (pending === undefined) return;
      waiting.delete(message.id);
      clearTimeout(pending.timer);
      if (message.text !== undefined) pending.resolve(message.text);
      else pending.reject(new Error(message.error ?? "the primary could not gather metrics"));
    }
  });
  return {
    share(registry) {
      local = registry;
    },
    gather() {
      const id = nextId++;
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error("the primary did not answer the metrics request"));
        }, GATHER_TIMEOUT_MS);
        waiting.set(id, { resolve, reject, timer });
        send({ herald: "metrics-request", id });
      });
    },
  };
}

function workersLine(count: number): string {
  return (
    "# HELP herald_workers Worker processes whose metrics this scrape adds up\n" +
    `# TYPE herald_workers gauge\nherald_workers ${count}\n`
  );
}

/** The primary's side: answers each worker's request with every connected worker's metrics added up. */
export function serveClusterMetrics(): void {
  let nextCollection = 0;
  const collections = new Map<number, (worker: Worker, metrics: MetricsJson) => void>();
  const collect = async (): Promise<string> => {
    const id = nextCollection++;
    const workers = Object.values(cluster.workers ?? {}).filter((worker) => worker?.isConnected()) as Worker[];
    const parts: MetricsJson[] = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, PART_TIMEOUT_MS);
      const answered = new Set<Worker>();
      collections.set(id, (worker, metrics) => {
        if (answered.has(worker)) return;
        answered.add(worker);
        parts.push(metrics);
        if (answered.size === workers.length) {
          clearTimeout(timer);
          resolve();
        }
      });
      for (const worker of workers) worker.send({ herald: "metrics-collect", id } satisfies ClusterMessage);
      if (workers.length === 0) resolve();
    });
    collections.delete(id);
    const text = await AggregatorRegistry.aggregate(parts).metrics();
    return `${text}${workersLine(parts.length)}`;
  };
  cluster.on("message", (worker: Worker, message: unknown) => {
    if (!isClusterMessage(message)) return;
    if (message.herald === "metrics-part") collections.get(message.id)?.(worker, message.metrics);
    if (message.herald !== "metrics-request") return;
    const reply = (result: ClusterMessage) => {
      if (worker.isConnected()) worker.send(result);
    };
    collect().then(
      (text) => reply({ herald: "metrics-result", id: message.id, text }),
      (error: unknown) => reply({ herald: "metrics-result", id: message.id, error: String(error) }),
    );
  });
}
