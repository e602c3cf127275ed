import { ConfigError } from "../errors.js";
import type { WorkerRole } from "../serve-process.js";
import { createWorkerMetricsSharing } from "./cluster-metrics.js";

/** Set by the primary on each worker it forks: which worker this is. */
export const WORKER_INDEX_ENV = "HERALD_WORKER_INDEX";

/** This process's role, when the primary forked it. */
export function workerRole(): WorkerRole {
  const index = Number(process.env[WORKER_INDEX_ENV]);
  if (!Number.isInteger(index) || index < 0) {
    throw new ConfigError(`a worker needs ${WORKER_INDEX_ENV}; start workers with herald serve --workers N`);
  }
  return { index, metricsSharing: createWorkerMetricsSharing() };
}
