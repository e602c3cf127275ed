import type { LRUCache } from "lru-cache";
import { growingLru } from "../util/growing-lru.js";

interface RememberedAnswer {
  readonly answer: string;
  readonly expiresAtMs: number;
}

/** The memory store's remembered webhook deliveries: bounded, oldest remembered forgotten first, each with its expiry. */
export class MemoryDeliveries {
  readonly #entries: LRUCache<string, RememberedAnswer>;
  readonly #now: () => number;

  constructor(max: number, now: () => number) {
    this.#entries = growingLru(max);
    this.#now = now;
  }

  remember(key: string, answer: string, ttlMs: number): void {
    this.#entries.set(key, { answer, expiresAtMs: this.#now() + ttlMs });
  }

  recall(key: string): string | undefined {
    // peek, not get: recalling does not make an entry younger, as in the durable backends.
    const remembered = this.#entries.peek(key);
    if (remembered === undefined || remembered.expiresAtMs > this.#now()) return remembered?.answer;
    this.#entries.delete(key);
    return undefined;
  }
}
