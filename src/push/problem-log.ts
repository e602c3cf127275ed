import type { Logger } from "../log.js";
import type { PushProblem } from "./push-dispatcher.js";

/** A push service that is down fails every push of a burst: one line per interval, with the count, not one per push. */
const LOG_INTERVAL_MS = 10_000;

/** Logs push problems at warn, at most one line per kind per interval (herald_push_* metrics count them all). */
export function pushProblemLogger(logger: Logger): (problem: PushProblem) => void {
  const last = new Map<string, { atMs: number; suppressed: number }>();
  return (problem) => {
    const now = Date.now();
    const seen = last.get(problem.what);
    if (seen !== undefined && now - seen.atMs < LOG_INTERVAL_MS) {
      seen.suppressed += 1;
      return;
    }
    const suppressed = seen?.suppressed ?? 0;
    last.set(problem.what, { atMs: now, suppressed: 0 });
    const { error, ...fields } = problem;
    logger.warn(
      { ...fields, ...(error === undefined ? {} : { err: error }), ...(suppressed > 0 ? { suppressed } : {}) },
      `web push: ${problem.what}`,
    );
  };
}
