import type { Hub } from "../core/hub.js";
import type { MailboxStore } from "../store/mailbox-store.js";
import type { Access } from "./middleware/access.js";
import type { ConnectionRegistry } from "./transports/connection.js";

/** One sample a second, ... */
export const SAMPLE_INTERVAL_MS = 1000;
/** ... kept for ten minutes: the admin console's charts. */
export const SAMPLES_KEPT = 600;

/** The server at one moment; rates are per second since the previous sample. */
export interface StatsSample {
  /** Epoch ms. */
  readonly t: number;
  readonly connections: {
    readonly sse: number;
    readonly ndjson: number;
    readonly ws: number;
    readonly longPoll: number;
  };
  readonly publishes: number;
  readonly deliveries: number;
  readonly gaps: number;
  readonly slowConsumersCut: number;
  readonly rateLimited: number;
  readonly serverFull: number;
  readonly authFailures: number;
  /** What the store holds (see MailboxStore.stats for what each backend counts). */
  readonly store: { readonly mailboxes: number; readonly messages: number; readonly bytes: number };
}

export type StatsListener = (sample: StatsSample, json: string) => void;

export interface StatsSources {
  readonly hub: Hub;
  readonly store: MailboxStore;
  readonly connections: ConnectionRegistry;
  readonly access: Access;
}

/** Running totals the rates are taken from. */
interface Totals {
  readonly t: number;
  readonly published: number;
  readonly delivered: number;
  readonly gaps: number;
  readonly slowConsumersCut: number;
  readonly rateLimited: number;
  readonly serverFull: number;
  readonly authFailures: number;
}

function sum(record: Readonly<Record<string, number>>): number {
  let total = 0;
  for (const value of Object.values(record)) total += value;
  return total;
}

/**
 * The admin console's time series: once a second it reads the counters the
 * hub, the connection registry and the access gate already keep (the same ones
 * /metrics reads), turns them into per-second rates and keeps the last
 * SAMPLES_KEPT in a ring. Nothing is added to the publish or delivery paths.
 * Listeners (the admin stats streams) get each sample as it is taken.
 */
export class StatsRecorder {
  readonly #sources: StatsSources;
  readonly #ring: StatsSample[] = [];
  #next = 0;
  readonly #listeners = new Set<StatsListener>();
  readonly #timer: NodeJS.Timeout;
  #last: Totals;

  constructor(sources: StatsSources, intervalMs = SAMPLE_INTERVAL_MS) {
    this.#sources = sources;
    this.#last = this.#totals();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    this.#timer.unref();
  }

  /** Every kept sample, oldest first. */
  history(): StatsSample[] {
    return [...this.#ring.slice(this.#next), ...this.#ring.slice(0, this.#next)];
  }

  /** Calls `listener` with every new sample (and its JSON, made once) until the returned function is called. */
  listen(listener: StatsListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Takes a sample now (the timer calls this once a second). */
  sample(): StatsSample {
    const { connections, access, store } = this.#sources;
    const now = this.#totals();
    const seconds = Math.max((now.t - this.#last.t) / 1000, 0.001);
    const rate = (key: Exclude<keyof Totals, "t">) => Math.max(0, (now[key] - this.#last[key]) / seconds);
    const sample: StatsSample = {
      t: now.t,
      connections: {
        sse: connections.count("sse"),
        ndjson: connections.count("ndjson"),
        ws: connections.count("ws"),
        longPoll: access.connections.longPolls.total,
      },
      publishes: rate("published"),
      deliveries: rate("delivered"),
      gaps: rate("gaps"),
      slowConsumersCut: rate("slowConsumersCut"),
      rateLimited: rate("rateLimited"),
      serverFull: rate("serverFull"),
      authFailures: rate("authFailures"),
      store: { ...store.stats() },
    };
    this.#last = now;
    if (this.#ring.length < SAMPLES_KEPT) this.#ring.push(sample);
    else {
      this.#ring[this.#next] = sample;
      this.#next = (this.#next + 1) % SAMPLES_KEPT;
    }
    if (this.#listeners.size > 0) {
      const json = JSON.stringify(sample);
      for (const listener of this.#listeners) listener(sample, json);
    }
    return sample;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#listeners.clear();
  }

  #totals(): Totals {
    const { hub, access } = this.#sources;
    return {
      t: Date.now(),
      published: hub.counters.published,
      delivered: hub.counters.delivered,
      gaps: hub.counters.gaps,
      slowConsumersCut: hub.counters.slowConsumersCut,
      rateLimited: sum(access.counters.rateLimited),
      serverFull: access.counters.serverFull,
      authFailures: sum(access.counters.authFailures),
    };
  }
}
