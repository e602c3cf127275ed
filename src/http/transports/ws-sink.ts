import type { WebSocket } from "ws";
import type { CloseReason } from "../../core/delivery.js";
import type { Caller } from "../middleware/caller.js";
import type { Connection } from "./connection.js";
import { JSON_LINES_FORMAT, type WireFormat } from "./frame-formats.js";

/** How often a replay that is waiting for the socket to drain looks again; ws has no drain event. */
const DRAIN_POLL_MS = 20;
/** Close codes: 1001 going away (draining); 4001 token expired (reconnect with a new one and the cursor). */
export const WS_CLOSE_DRAINING = 1001;
export const WS_CLOSE_AUTH_EXPIRED = 4001;
/**
 * How long a client may take to answer our close frame before its socket is
 * cut. `ws` would wait 30 s, and nothing it sends meanwhile is acted on anyway.
 */
export const WS_CLOSE_GRACE_MS = 2000;

/**
 * A WebSocket as a Connection. Frames are JSON text messages in the JSON-lines
 * format; a write of several (the hub writes a round at once) is split at the
 * newlines into one message each. Answers to the client's frames go through
 * `send` and count against the same queue bound as deliveries.
 */
export class WsSink implements Connection {
  readonly format: WireFormat;
  readonly kind = "ws";
  readonly caller: Caller;
  readonly #socket: WebSocket;
  readonly #maxQueueBytes: number;
  readonly #onSlowConsumer: () => void;
  readonly #closeListeners: (() => void)[] = [];
  /** Cleared by each ping and set by the pong; still clear at the next heartbeat means the peer is gone. */
  #alive = true;
  /** Set once we sent a close frame or cut the socket: nothing more is written or acted on. */
  #ending = false;
  #gone = false;

  /** `format` replaces the JSON-lines one (a protocol adapter's frames over a WebSocket, one per line). */
  constructor(
    socket: WebSocket,
    caller: Caller,
    maxQueueBytes: number,
    onSlowConsumer: () => void,
    format: WireFormat = JSON_LINES_FORMAT,
  ) {
    this.format = format;
    this.#socket = socket;
    this.caller = caller;
    this.#maxQueueBytes = maxQueueBytes;
    this.#onSlowConsumer = onSlowConsumer;
    socket.on("pong", () => {
      this.#alive = true;
    });
  }

  get closed(): boolean {
    return this.#ending || this.#gone || this.#socket.readyState !== this.#socket.OPEN;
  }

  write(frames: string): void {
    if (this.closed) return;
    let start = 0;
    for (let end = frames.indexOf("\n"); end !== -1; end = frames.indexOf("\n", start)) {
      if (end > start) this.#socket.send(frames.slice(start, end));
      start = end + 1;
    }
    if (start < frames.length) this.#socket.send(frames.slice(start));
  }

  /** One answer frame; a client that lets answers pile up is cut like one that lets deliveries pile up. */
  send(text: string): void {
    if (this.closed) return;
    this.#socket.send(text);
    if (this.#socket.bufferedAmount > this.#maxQueueBytes) {
      this.#onSlowConsumer();
      this.end("slow-consumer");
    }
  }

  bufferedBytes(): number {
    return this.#socket.bufferedAmount;
  }

  whenDrained(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.closed || this.#socket.bufferedAmount === 0) resolve();
        else setTimeout(check, DRAIN_POLL_MS).unref();
      };
      check();
    });
  }

  heartbeat(): void {
    if (this.closed) return;
    if (!this.#alive) {
      this.#socket.terminate();
      this.gone();
      return;
    }
    this.#alive = false;
    this.#socket.ping();
  }

  end(reason: CloseReason): void {
    if (this.closed) return;
    if (reason === "slow-consumer") {
      // Its queue cannot flush, so a close frame behind it would never arrive: cut at once.
      this.#socket.terminate();
    } else if (reason === "auth-expired") {
      this.#socket.send(this.format.authExpired.trim());
      this.#closeWithGrace(WS_CLOSE_AUTH_EXPIRED, "token expired; reconnect with a new token and your cursor");
    } else {
      this.#closeWithGrace(WS_CLOSE_DRAINING, "server draining; reconnect with your cursor");
    }
    this.gone();
  }

  onClose(listener: () => void): void {
    if (this.#gone) queueMicrotask(listener);
    else this.#closeListeners.push(listener);
  }

  /** The socket closed, or we ended it: tell the listeners once. */
  gone(): void {
    this.#ending = true;
    if (this.#gone) return;
    this.#gone = true;
    for (const listener of this.#closeListeners.splice(0)) listener();
  }

  #closeWithGrace(code: number, reason: string): void {
    this.#ending = true;
    this.#socket.close(code, reason);
    // A client that never answers the close frame must not keep the socket.
    setTimeout(() => this.#socket.terminate(), WS_CLOSE_GRACE_MS).unref();
  }
}
