import type { WebSocket } from "ws";
import { createRateLimiter } from "../auth/rate-limit.js";
import type { CloseReason, FrameFormat, GapNotice, StreamSink } from "../core/delivery.js";
import { withCursor } from "../core/delivery.js";
import type { Published } from "../core/hub.js";
import { parseJsonText } from "../core/json-text.js";
import { assertMailboxName } from "../core/mailbox-name.js";
import { parseMessageFields } from "../core/message-input.js";
import type { Subscription } from "../core/subscription.js";
import { HeraldError } from "../errors.js";
import type { StoredMessage } from "../store/mailbox-store.js";
import type { Caller } from "./access.js";
import type { AppDeps } from "./deps.js";
import { NDJSON_AUTH_EXPIRED } from "./frame-formats.js";
import { MAX_SUBSCRIPTION_MAILBOXES } from "./params.js";
import { MAX_IDEMPOTENCY_KEY_LENGTH } from "./publish-routes.js";

/** Frames of one connection waiting their turn; beyond this they are refused, not queued. */
export const MAX_WS_FRAMES_QUEUED = 64;
/** Longest `ref` a client may attach to a frame to match the answer to it. */
export const MAX_WS_REF_LENGTH = 128;
/** How often a replay that is waiting for the socket to drain looks again; ws has no drain event. */
const DRAIN_POLL_MS = 20;
/** Close codes: 1001 going away (draining); 4008 cut as a slow consumer (resume with the cursor). */
export const WS_CLOSE_DRAINING = 1001;
export const WS_CLOSE_SLOW_CONSUMER = 4008;
/** The token expired; reconnect with a new one and the last cursor. */
export const WS_CLOSE_AUTH_EXPIRED = 4001;
/**
 * How long a client may take to answer our close frame before its socket is
 * cut. `ws` would wait 30 s, and frames that arrive meanwhile are refused anyway.
 */
export const WS_CLOSE_GRACE_MS = 2000;
/** Subscribe frames per second one connection may send (each starts a replay from the store), and the burst. */
export const WS_SUBSCRIBE_RATE = { rate: 2, burst: 10 } as const;

const IDEMPOTENCY_KEY = /^[\x21-\x7e]+$/;
const FRAME_KEYS: Record<string, readonly string[]> = {
  subscribe: ["type", "mailboxes", "cursor", "ref"],
  unsubscribe: ["type", "ref"],
  publish: ["type", "mailbox", "message", "idempotencyKey", "ref"],
  ping: ["type", "ref"],
};

function gapJson(gaps: readonly GapNotice[], cursor: string): string {
  return `{"type":"gap","gaps":${JSON.stringify(gaps)},"cursor":"${cursor}"}`;
}

/**
 * Frames end with a newline so the sink can split a batch the hub wrote in one
 * call into one WebSocket message per delivery; JSON text never holds a raw newline.
 */
export const WS_FORMAT: FrameFormat = {
  message: (message: StoredMessage, cursor: string) =>
    `{"type":"message",${withCursor(message.json, cursor).slice(1)}\n`,
  gap: (gaps, cursor) => `${gapJson(gaps, cursor)}\n`,
};

type Ref = string | number | undefined;

function badFrame(message: string): HeraldError {
  return new HeraldError("bad_message", message);
}

function frameRef(frame: Record<string, unknown>): Ref {
  const ref = frame.ref;
  if (ref === undefined) return undefined;
  if (
    (typeof ref === "string" && ref.length <= MAX_WS_REF_LENGTH) ||
    (typeof ref === "number" && Number.isFinite(ref))
  ) {
    return ref;
  }
  throw badFrame(`"ref" must be a number or a string of at most ${MAX_WS_REF_LENGTH} characters`);
}

/**
 * One accepted WebSocket: the hub's sink for its subscription and the handler of its frames.
 *
 * Protocol (JSON text frames, handled in order; any frame may carry a `ref` its answer echoes):
 * - `subscribe {mailboxes, cursor?}` replaces the current subscription; answered `subscribed`, then
 *   `message` frames (each with the subscription's cursor after it) and `gap` frames, as on SSE.
 * - `unsubscribe` → `unsubscribed`; `publish {mailbox, message, idempotencyKey?}` → `published`;
 *   `ping` → `pong` (browsers cannot send ping frames).
 * - Anything wrong → `error {code, message}` from the error catalogue; the connection stays open.
 * The connection is cut when its unsent bytes pass `maxQueueBytes` (it resumes by cursor).
 */
export class WsConnection implements StreamSink {
  readonly format = WS_FORMAT;
  /** Cleared by each ping and set by the pong; a connection still clear at the next ping is dead. */
  alive = true;
  readonly #socket: WebSocket;
  readonly #deps: AppDeps;
  readonly #onGone: (connection: WsConnection) => void;
  #subscription: Subscription | undefined;
  /** Bumped by every subscribe and unsubscribe so a subscribe that resolves late is dropped. */
  #generation = 0;
  /** Frames are handled one at a time, in order, so a publish after a subscribe sees it registered. */
  #queue: Promise<void> = Promise.resolve();
  #queued = 0;
  #closed = false;
  /** Set once we sent a close frame: nothing the client sends after it is acted on. */
  #closing = false;
  readonly #subscribeRate = createRateLimiter(WS_SUBSCRIBE_RATE, Date.now, 1);
  /** Who opened the socket; every subscribe and publish is checked against it. */
  readonly caller: Caller;

  constructor(socket: WebSocket, deps: AppDeps, caller: Caller, onGone: (connection: WsConnection) => void) {
    this.#socket = socket;
    this.#deps = deps;
    this.caller = caller;
    this.#onGone = onGone;
    socket.on("pong", () => {
      this.alive = true;
    });
  }

  get closed(): boolean {
    return this.#closed || this.#socket.readyState !== this.#socket.OPEN;
  }

  // --- StreamSink ---

  write(frames: string): void {
    if (this.closed) return;
    let start = 0;
    for (let end = frames.indexOf("\n"); end !== -1; end = frames.indexOf("\n", start)) {
      if (end > start) this.#socket.send(frames.slice(start, end));
      start = end + 1;
    }
    if (start < frames.length) this.#socket.send(frames.slice(start));
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

  end(reason: CloseReason): void {
    if (this.#closed) return;
    // A slow consumer's queue cannot flush, so a close frame behind it would never arrive: cut at once.
    if (reason === "slow-consumer") this.#socket.terminate();
    else this.#closeWithGrace(WS_CLOSE_DRAINING, "server draining; reconnect with your cursor");
    this.gone();
  }

  /** The caller's token expired: say so, close, and stop acting on frames at once. */
  expire(): void {
    if (this.#closed || this.#closing) return;
    this.#sendText(NDJSON_AUTH_EXPIRED.trim());
    this.#closeWithGrace(WS_CLOSE_AUTH_EXPIRED, "token expired; reconnect with a new token and your cursor");
    this.gone();
  }

  #closeWithGrace(code: number, reason: string): void {
    this.#closing = true;
    this.#socket.close(code, reason);
    // A client that never answers the close frame must not keep the socket.
    setTimeout(() => this.#socket.terminate(), WS_CLOSE_GRACE_MS).unref();
  }

  // --- protocol ---

  ping(): void {
    if (this.closed) return;
    this.alive = false;
    this.#socket.ping();
  }

  terminate(): void {
    this.#socket.terminate();
    this.gone();
  }

  /** The socket closed (either side): release the subscription. Idempotent. */
  gone(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#generation += 1;
    this.#subscription?.close();
    this.#subscription = undefined;
    this.#onGone(this);
  }

  receive(data: unknown): void {
    if (this.#queued >= MAX_WS_FRAMES_QUEUED) {
      this.#sendError(
        new HeraldError("too_many_requests", `At most ${MAX_WS_FRAMES_QUEUED} frames may wait; slow down`),
      );
      return;
    }
    this.#queued += 1;
    this.#queue = this.#queue
      .then(() => this.#handle(data))
      .finally(() => {
        this.#queued -= 1;
      });
  }

  async #handle(data: unknown): Promise<void> {
    if (this.#closed || this.#closing) return;
    let ref: Ref;
    try {
      if (this.caller.expiresAt !== undefined && Date.now() >= this.caller.expiresAt) {
        // The expiry timer may not have fired yet when a frame races it.
        throw new HeraldError("unauthorized", "The token has expired; reconnect with a new token and your cursor");
      }
      if (typeof data !== "string") throw badFrame("Send JSON text frames, not binary ones");
      const frame = parseJsonText(data, "The frame");
      if (typeof frame !== "object" || frame === null || Array.isArray(frame)) {
        throw badFrame('A frame is a JSON object with a "type"');
      }
      const object = frame as Record<string, unknown>;
      ref = frameRef(object);
      const type = object.type;
      const allowed = typeof type === "string" ? FRAME_KEYS[type] : undefined;
      if (allowed === undefined) {
        throw badFrame(`Unknown frame type ${JSON.stringify(type)}; use subscribe, unsubscribe, publish or ping`);
      }
      for (const key of Object.keys(object)) {
        if (!allowed.includes(key)) throw badFrame(`Unknown field "${key}" in a ${type} frame`);
      }
      if (type === "subscribe") await this.#subscribe(object, ref);
      else if (type === "unsubscribe") this.#unsubscribe(ref);
      else if (type === "publish") await this.#publish(object, ref);
      else this.#send({ type: "pong", ...(ref === undefined ? {} : { ref }) });
    } catch (error) {
      this.#sendError(error, ref);
    }
  }

  async #subscribe(frame: Record<string, unknown>, ref: Ref): Promise<void> {
    const { mailboxes, cursor } = frame;
    if (!Array.isArray(mailboxes) || mailboxes.length === 0) {
      throw badFrame('"mailboxes" must be a non-empty array of mailbox names');
    }
    const names = [...new Set(mailboxes.map((name) => assertMailboxName(name)))];
    if (names.length > MAX_SUBSCRIPTION_MAILBOXES) {
      throw badFrame(`At most ${MAX_SUBSCRIPTION_MAILBOXES} mailboxes per subscription, got ${names.length}`);
    }
    if (cursor !== undefined && cursor !== null && typeof cursor !== "string") {
      throw badFrame('"cursor" must be a string as Herald issued it, or "now"');
    }
    this.#deps.access.checkRead(this.caller, names);
    const allowed = this.#subscribeRate.take("");
    if (!allowed.ok) {
      throw new HeraldError(
        "too_many_requests",
        `At most ${WS_SUBSCRIBE_RATE.rate} subscribes per second (burst ${WS_SUBSCRIBE_RATE.burst}); retry in ${allowed.retryAfterSeconds} s`,
      );
    }
    const generation = ++this.#generation;
    this.#subscription?.close();
    this.#subscription = undefined;
    const subscription = await this.#deps.hub.subscribe(names, cursor === "" ? undefined : (cursor ?? undefined), this);
    if (generation !== this.#generation || this.#closed) {
      subscription.close();
      return;
    }
    this.#subscription = subscription;
    this.#send({
      type: "subscribed",
      mailboxes: names,
      cursor: subscription.cursor,
      ...(ref === undefined ? {} : { ref }),
    });
    subscription.start();
  }

  #unsubscribe(ref: Ref): void {
    this.#generation += 1;
    this.#subscription?.close();
    this.#subscription = undefined;
    this.#send({ type: "unsubscribed", ...(ref === undefined ? {} : { ref }) });
  }

  async #publish(frame: Record<string, unknown>, ref: Ref): Promise<void> {
    const mailbox = assertMailboxName(frame.mailbox);
    const { idempotencyKey } = frame;
    if (
      idempotencyKey !== undefined &&
      (typeof idempotencyKey !== "string" ||
        idempotencyKey.length > MAX_IDEMPOTENCY_KEY_LENGTH ||
        !IDEMPOTENCY_KEY.test(idempotencyKey))
    ) {
      throw badFrame(`"idempotencyKey" must be 1-${MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters`);
    }
    const message = typeof frame.message === "string" ? { body: frame.message } : frame.message;
    const fields = parseMessageFields(message, this.#deps.config.messageTtlSeconds, "message: ");
    this.#deps.access.checkPublish(this.caller, [mailbox]);
    this.#deps.access.chargePublish(this.caller);
    const [published] = (await this.#deps.hub.publish([{ mailbox, fields }], idempotencyKey as string | undefined)) as [
      Published,
    ];
    const refJson = ref === undefined ? "" : `,"ref":${JSON.stringify(ref)}`;
    this.#sendText(
      `{"type":"published"${refJson},"duplicate":${published.duplicate},"message":${withCursor(published.message.json, published.cursor)}}`,
    );
  }

  #sendError(error: unknown, ref?: Ref): void {
    let herald: HeraldError;
    if (error instanceof HeraldError) herald = error;
    else {
      console.error("websocket frame failed", error);
      herald = new HeraldError("internal");
    }
    this.#send({ type: "error", code: herald.code, message: herald.message, ...(ref === undefined ? {} : { ref }) });
  }

  #send(object: Record<string, unknown>): void {
    this.#sendText(JSON.stringify(object));
  }

  /** Answers share the socket with deliveries, so they count against the same bound. */
  #sendText(text: string): void {
    if (this.closed) return;
    this.#socket.send(text);
    if (this.#socket.bufferedAmount > this.#deps.config.maxQueueBytes) {
      this.#deps.hub.counters.slowConsumersCut += 1;
      this.end("slow-consumer");
    }
  }
}
