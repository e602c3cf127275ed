/** A long-poll's wake-up: woken by appends to any of its mailboxes, by drain, by timeout or by abort. */
export interface Waiter {
  wake(): void;
  /** Resolves at the next wake-up (at once if one happened since the last call), or after `timeoutMs`. */
  next(timeoutMs: number, signal?: AbortSignal): Promise<void>;
}

export function createWaiter(): Waiter {
  let woken = false;
  let resolveNext: (() => void) | undefined;
  return {
    wake() {
      woken = true;
      resolveNext?.();
    },
    next(timeoutMs, signal) {
      if (woken) {
        woken = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", done);
          resolveNext = undefined;
          woken = false;
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        signal?.addEventListener("abort", done, { once: true });
        resolveNext = done;
      });
    },
  };
}
