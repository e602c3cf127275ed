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

/** Per poll, so a class: a build that keeps function names would name a closure on every wait. */
class PollWaiter implements Waiter {
  #woken = false;
  #resolve: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopListening: (() => void) | undefined;

  constructor() {
    this.settle = this.settle.bind(this);
  }

  wake(): void {
    this.#woken = true;
    this.settle();
  }

  next(timeoutMs: number, client?: ClientGone): Promise<void> {
    if (this.#woken) {
      this.#woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.#resolve = resolve;
      this.#timer = setTimeout(this.settle, timeoutMs);
      this.#stopListening = client?.onGone(this.settle);
    });
  }

  /** Ends the current wait, if any: by a wake-up, its timeout or its client leaving. */
  settle(): void {
    const resolve = this.#resolve;
    if (resolve === undefined) return;
    this.#resolve = undefined;
    clearTimeout(this.#timer);
    this.#stopListening?.();
    this.#stopListening = undefined;
    this.#woken = false;
    resolve();
  }
}

export function createWaiter(): Waiter {
  return new PollWaiter();
}
