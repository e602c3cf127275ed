/** Tells a held read that its client went away. */
export interface ClientGone {
  readonly gone: boolean;
  /** Calls `listener` once the client is gone; the function returned stops listening. */
  onGone(listener: () => void): () => void;
}

/** A long-poll's wake-up: woken by appends to any of its mailboxes, by drain, by timeout or by its client leaving. */
export interface Waiter {
  wake(): void;
  /** Resolves at the next wake-up (at once if one happened since the last call), or after `timeoutMs`. */
  next(timeoutMs: number, client?: ClientGone): Promise<void>;
}

export function createWaiter(): Waiter {
  let woken = false;
  let resolveNext: (() => void) | undefined;
  return {
    wake() {
      woken = true;
      resolveNext?.();
    },
    next(timeoutMs, client) {
      if (woken) {
        woken = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        let stopListening: (() => void) | undefined;
        const done = () => {
          clearTimeout(timer);
          stopListening?.();
          resolveNext = undefined;
          woken = false;
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        stopListening = client?.onGone(done);
        resolveNext = done;
      });
    },
  };
}
