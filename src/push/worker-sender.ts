import { Worker } from "node:worker_threads";
import { BUILT } from "../package-root.js";
import type { PushTarget } from "../store/push-subscription-store.js";
import type { PushContent } from "./push-payload.js";
import type { PushOutcome, PushSender, WebPushSenderOptions } from "./push-sender.js";
import type { PushRequest } from "./push-worker.js";

/**
 * The worker's script: the build's dist/push-worker.js beside this chunk, or, run from the sources, the
 * TypeScript through tsx (a dev dependency, as for the server itself).
 */
function startWorker(options: WebPushSenderOptions): Worker {
  if (BUILT) return new Worker(new URL("./push-worker.js", import.meta.url), { workerData: options });
  const source = new URL("./push-worker.ts", import.meta.url).href;
  const boot = `import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${JSON.stringify(source)}); });`;
  return new Worker(boot, { eval: true, workerData: options });
}

/** How soon after its start a worker's death counts as failing to start, and how long it then rests. */
const WORKER_COOLDOWN_MS = 5000;

/**
 * A PushSender whose pushes are encrypted and sent by a worker thread: each costs about half a
 * millisecond of CPU (an ECDH agreement, AES-GCM, TLS), which on the server's thread would come out of
 * the fan-out to open streams. A worker that dies fails what it had in flight (retried like a network
 * error) and is started again for the next push.
 */
export function createWorkerPushSender(options: WebPushSenderOptions): PushSender {
  let worker: Worker | undefined;
  let nextId = 0;
  /** A worker that died within WORKER_COOLDOWN_MS of starting is not started again before this (performance.now()). */
  let notBefore = 0;
  const pending = new Map<number, (outcome: PushOutcome) => void>();

  const failAll = (reason: string) => {
    for (const resolve of pending.values())
      resolve({ kind: "retry", status: undefined, retryAfterMs: undefined, reason });
    pending.clear();
  };

  const running = (): Worker | undefined => {
    if (worker !== undefined) return worker;
    if (performance.now() < notBefore) return undefined;
    const startedAt = performance.now();
    const started = startWorker(options);
    started.on("message", ({ id, outcome }: { id: number; outcome: PushOutcome }) => {
      pending.get(id)?.(outcome);
      pending.delete(id);
    });
    started.on("error", (error) => failAll(`the push worker failed: ${error.message}`));
    started.on("exit", () => {
      if (worker !== started) return;
      worker = undefined;
      // One that cannot even start (a broken install) is not restarted for every push of a burst.
      if (performance.now() - startedAt < WORKER_COOLDOWN_MS) notBefore = performance.now() + WORKER_COOLDOWN_MS;
      failAll("the push worker stopped");
    });
    // The worker never keeps the process alive: a server has its listener for that.
    started.unref();
    worker = started;
    return started;
  };

  return {
    send(target: PushTarget, content: PushContent): Promise<PushOutcome> {
      const thread = running();
      if (thread === undefined) {
        // Asked back once the worker may start again, so the wait costs a push one attempt, not all of them.
        return Promise.resolve({
          kind: "retry",
          status: undefined,
          retryAfterMs: Math.max(0, notBefore - performance.now()),
          reason: "the push worker failed to start; waiting before starting it again",
        });
      }
      const id = nextId++;
      const request: PushRequest = {
        id,
        subscription: { id: target.id, endpoint: target.endpoint, keys: target.keys },
        content,
      };
      return new Promise((resolve) => {
        pending.set(id, resolve);
        thread.postMessage(request);
      });
    },
    close() {
      const stopping = worker;
      worker = undefined;
      notBefore = Number.POSITIVE_INFINITY;
      failAll("the push sender closed");
      void stopping?.terminate();
    },
  };
}
