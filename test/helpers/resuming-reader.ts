import { StreamClient, type WireMessage } from "./clients.js";

/** Longest a reader waits before reconnecting, whatever the server's hint says. */
const MAX_RECONNECT_DELAY_MS = 1000;
/** Wait before reconnecting when the server gave no hint. */
const DEFAULT_RECONNECT_DELAY_MS = 250;
/** A wait for the next frame that never times out by itself (close() ends it). */
const FOREVER_MS = 2 ** 31 - 1;

export interface StreamEnd {
  /** The response's status (0: the request failed). */
  readonly status: number;
  /** The server's hint for when to come back: SSE `retry:` (ms) or a 503's `Retry-After` (s), as sent. */
  readonly hint: string | undefined;
  /** True when this side cut it (cut()). */
  readonly cutHere: boolean;
}

/**
 * A subscriber to one mailbox over SSE or JSON lines that does what a client
 * should: whenever its stream ends it reconnects, to the next of `bases` in
 * turn, with the cursor of the last frame it got (`Last-Event-ID` on SSE,
 * `?cursor=` on ndjson). Keeps every message it received, repeats included,
 * so a test can count them.
 */
export class ResumingReader {
  readonly received: WireMessage[] = [];
  readonly gaps: unknown[] = [];
  readonly ends: StreamEnd[] = [];
  connections = 0;
  cursor: string | undefined;
  readonly opened: Promise<void>;
  readonly label: string;
  readonly #ids = new Set<string>();
  #client: StreamClient | undefined;
  #cutHere = false;
  #closed = false;
  #resolveOpened!: () => void;

  constructor(
    readonly kind: "sse" | "ndjson",
    readonly bases: readonly string[],
    readonly mailbox: string,
  ) {
    this.label = `${kind} reader starting on ${bases[0]}`;
    this.opened = new Promise((resolve) => {
      this.#resolveOpened = resolve;
    });
    void this.#run();
  }

  has(id: string): boolean {
    return this.#ids.has(id);
  }

  /** Cuts the current stream from this side; the reader reconnects with its cursor. */
  cut(): void {
    this.#cutHere = true;
    this.#client?.close();
  }

  close(): void {
    this.#closed = true;
    this.#client?.close();
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      const base = this.bases[this.connections % this.bases.length] as string;
      this.connections += 1;
      const client = this.#connect(base);
      this.#client = client;
      this.#cutHere = false;
      await client.opened;
      let seen = 0;
      for (;;) {
        await client.until(() => client.ended || this.#frames(client) > seen, FOREVER_MS).catch(() => {});
        const frames = this.#frames(client);
        if (client.status === 200) for (; seen < frames; seen++) this.#take(client, seen);
        if (client.ended) break;
      }
      const hint =
        client.status === 200
          ? /^retry: (\d+)$/m.exec(client.raw)?.[1]
          : (client.headers["retry-after"] as string | undefined);
      this.ends.push({ status: client.status, hint, cutHere: this.#cutHere });
      if (this.#closed) return;
      const delay =
        hint === undefined
          ? DEFAULT_RECONNECT_DELAY_MS
          : Math.min(MAX_RECONNECT_DELAY_MS, Number(hint) * (client.status === 200 ? 1 : 1000));
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  #connect(base: string): StreamClient {
    const path = `${base}/v1/mailboxes/${encodeURIComponent(this.mailbox)}`;
    if (this.kind === "sse") {
      return new StreamClient(`${path}/events`, this.cursor === undefined ? {} : { "Last-Event-ID": this.cursor });
    }
    const query = this.cursor === undefined ? "" : `?cursor=${encodeURIComponent(this.cursor)}`;
    return new StreamClient(`${path}/stream${query}`);
  }

  #frames(client: StreamClient): number {
    return this.kind === "sse" ? client.events.length : client.lines.length;
  }

  #take(client: StreamClient, index: number): void {
    let type: string;
    let frame: Record<string, unknown>;
    if (this.kind === "sse") {
      const event = client.events[index] as { event: string; id: string | undefined; data: string };
      type = event.event;
      frame = JSON.parse(event.data) as Record<string, unknown>;
      if (event.id !== undefined) this.cursor = event.id;
    } else {
      frame = JSON.parse(client.lines[index] as string) as Record<string, unknown>;
      type = String(frame.type);
      if (typeof frame.cursor === "string") this.cursor = frame.cursor;
    }
    if (type === "message") {
      const message = frame as unknown as WireMessage;
      this.received.push(message);
      this.#ids.add(message.id);
    } else if (type === "gap") {
      this.gaps.push(frame);
    }
    if (this.cursor !== undefined) this.#resolveOpened();
  }
}
