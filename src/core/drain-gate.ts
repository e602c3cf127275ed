import { HeraldError } from "../errors.js";

/** Seconds a client is told to wait before retrying, on another instance or this one once restarted. */
export const DRAINING_RETRY_AFTER_SECONDS = 1;

export function drainingError(): HeraldError {
  return new HeraldError("draining", undefined, { "Retry-After": String(DRAINING_RETRY_AFTER_SECONDS) });
}

/**
 * Admission and drain. While the server runs, work is admitted and counted;
 * once a drain begins, new work is refused with 503 `draining`, and work
 * admitted before completes: a publish whose body was still arriving stores.
 */
export interface DrainGate {
  readonly draining: boolean;
  /** Throws `draining` once a drain began. */
  assertOpen(): void;
  /** Admits one piece of work, refused once draining; returns its release (idempotent). */
  admit(): () => void;
  /** Counts work that must finish before drain resolves, even if it began during the drain. */
  hold(): () => void;
  /** Begins draining; resolves once nothing admitted or held remains. */
  drain(): Promise<void>;
}

export function createDrainGate(): DrainGate {
  let draining = false;
  let inFlight = 0;
  let idleWaiters: (() => void)[] = [];
  const hold = () => {
    inFlight += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      inFlight -= 1;
      if (inFlight === 0) {
        for (const resolve of idleWaiters) resolve();
        idleWaiters = [];
      }
    };
  };
  const assertOpen = () => {
    if (draining) throw drainingError();
  };
  return {
    get draining() {
      return draining;
    },
    assertOpen,
    admit() {
      assertOpen();
      return hold();
    },
    hold,
    drain() {
      draining = true;
      if (inFlight === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
  };
}
