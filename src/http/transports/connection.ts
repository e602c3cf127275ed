import { setImmediate as yieldToLoop } from "node:timers/promises";
import type { CloseReason, StreamSink } from "../../core/delivery.js";
import type { Caller } from "../middleware/caller.js";

export type ConnectionKind = "sse" | "ndjson" | "ws";

/**
 * One long-lived response: an SSE or JSON-lines stream, or a WebSocket. The
 * hub writes deliveries to it (it is its subscription's sink); the registry
 * keeps it alive, ends it when its caller's token expires or the server
 * drains, and frees its connection slot when it closes.
 */
export interface Connection extends StreamSink {
  readonly kind: ConnectionKind;
  /** Who opened it; every mailbox it subscribes to was checked against this caller. */
  readonly caller: Caller;
  /** True once closed, by either side. */
  readonly closed: boolean;
  /**
   * Keeps an idle connection open through proxies and finds dead peers: a
   * comment on SSE, a line on ndjson, a ping on WebSocket (a peer that did not
   * answer the previous one is cut).
   */
  heartbeat(): void;
  /** Calls `listener` once when the connection closes, whichever side closed it. */
  onClose(listener: () => void): void;
}

/** Heartbeats written before the loop yields to the event loop. */
const HEARTBEAT_CHUNK_SIZE = 1000;
/** setTimeout's ceiling (~24.8 days); a later token expiry ends the connection early and the client renews. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Every open connection of every transport. One timer beats all their hearts;
 * one call ends them all on drain.
 */
export class ConnectionRegistry {
  readonly #connections = new Set<Connection>();
  readonly #timer: NodeJS.Timeout;
  #beating = false;

  constructor(heartbeatSeconds: number) {
    this.#timer = setInterval(() => void this.#heartbeat(), heartbeatSeconds * 1000);
    this.#timer.unref();
  }

  /** Open connections of the given kinds (all kinds when none are named). */
  count(...kinds: ConnectionKind[]): number {
    if (kinds.length === 0) return this.#connections.size;
    let count = 0;
    for (const connection of this.#connections) if (kinds.includes(connection.kind)) count += 1;
    return count;
  }

  /**
   * Takes in an open connection until it closes: heartbeats, an end with
   * "auth-expired" when its caller's token runs out, and `release` (its slot)
   * once it closes.
   */
  add(connection: Connection, release: () => void): void {
    if (connection.closed) {
      release();
      return;
    }
    this.#connections.add(connection);
    const expiresAt = connection.caller.expiresAt;
    const expiry =
      expiresAt === undefined
        ? undefined
        : setTimeout(() => connection.end("auth-expired"), Math.min(MAX_TIMER_MS, Math.max(0, expiresAt - Date.now())));
    expiry?.unref();
    connection.onClose(() => {
      clearTimeout(expiry);
      this.#connections.delete(connection);
      release();
    });
  }

  /** Ends every connection of the given kinds (all when none are named); clients reconnect with their cursor. */
  endAll(reason: CloseReason, ...kinds: ConnectionKind[]): void {
    for (const connection of [...this.#connections]) {
      if (kinds.length === 0 || kinds.includes(connection.kind)) connection.end(reason);
    }
  }

  close(): void {
    clearInterval(this.#timer);
    this.endAll("draining");
  }

  async #heartbeat(): Promise<void> {
    if (this.#beating) return;
    this.#beating = true;
    try {
      let visited = 0;
      for (const connection of [...this.#connections]) {
        connection.heartbeat();
        if (++visited % HEARTBEAT_CHUNK_SIZE === 0) await yieldToLoop();
      }
    } finally {
      this.#beating = false;
    }
  }
}
