import { createRateLimiter } from "../../auth/rate-limit.js";
import { withCursor } from "../../core/delivery.js";
import type { Hub } from "../../core/hub.js";
import { parseJsonText } from "../../core/json-text.js";
import { assertMailboxName } from "../../core/mailbox-name.js";
import { parseFilter, parseLatestMode } from "../../core/message-filter.js";
import { parseMessageFields } from "../../core/message-input.js";
import { presenceAnswerFields } from "../../core/presence.js";
import { clientIdempotencyKey, type Publisher } from "../../core/publish-command.js";
import { MAX_SUBSCRIPTION_MAILBOXES } from "../../core/read-plan.js";
import { splitSchedule } from "../../core/schedule-input.js";
import { scheduledJson } from "../../core/scheduled-messages.js";
import type { Subscription } from "../../core/subscription.js";
import { HeraldError } from "../../errors.js";
import type { Access } from "../middleware/access.js";
import { readerFor, requireReader } from "../middleware/reader-identity.js";
import type { WsSink } from "./ws-sink.js";

/** Frames of one connection waiting their turn; beyond this they are refused, not queued. */
export const MAX_WS_FRAMES_QUEUED = 64;
/** Longest `ref` a client may attach to a frame to match the answer to it. */
export const MAX_WS_REF_LENGTH = 128;
/** Subscribe and presence frames per second one connection may send (each reads the store), and the burst. */
export const WS_SUBSCRIBE_RATE = { rate: 2, burst: 10 } as const;

const FRAME_KEYS: Record<string, readonly string[]> = {
  subscribe: ["type", "mailboxes", "cursor", "presence", "unread", "reader", "tags", "priority", "key", "mode", "ref"],
  presence: ["type", "mailbox", "ref"],
  unsubscribe: ["type", "ref"],
  publish: ["type", "mailbox", "message", "idempotencyKey", "ref"],
  ping: ["type", "ref"],
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

function flag(value: unknown, name: string): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value !== "boolean") throw badFrame(`"${name}" must be true or false`);
  return value;
}

/** `tags` and `key` in a frame: a comma-separated string or an array of strings. */
function filterList(value: unknown, name: string): string | string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  if (Array.isArray(value) && value.every((item) => typeof item === "string")) return value as string[];
  throw badFrame(`"${name}" must be a string or an array of strings`);
}

function filterPriority(value: unknown): number | string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "number" || typeof value === "string") return value;
  throw badFrame('"priority" must be an integer from 1 to 5');
}

function withRef(ref: Ref): { ref?: string | number } {
  return ref === undefined ? {} : { ref };
}

export interface WsProtocolDeps {
  readonly hub: Hub;
  readonly access: Access;
  /** The caller as a publisher: its patterns and its rate. */
  readonly publisher: Publisher;
  readonly maxTtlSeconds: number;
  /** Told about a frame that failed for a reason not in the catalogue (a bug), for the log. */
  readonly onInternalError: (error: unknown) => void;
}

/**
 * The frame protocol of `GET /v1/ws`, over a WsSink (JSON text frames, handled
 * in order; any frame may carry a `ref` its answer echoes):
 * - `subscribe {mailboxes, cursor?, presence?, unread?, reader?, tags?, priority?, key?, mode?}` replaces
 *   the current subscription (filters and `mode: "latest"` as the stream routes' query parameters);
 *   answered `subscribed`, then `message` and `gap` frames as on the other transports, and the
 *   presence, read and unread events the stream routes send (see core/reader-session.ts);
 * - `presence {mailbox}` → `presence` with who is on it now (as GET …/presence answers);
 * - `unsubscribe` → `unsubscribed`; `publish {mailbox, message, idempotencyKey?}` → `published`, or, with
 *   `delay` / `at` in the message, `scheduled {duplicate, scheduled: {id, mailbox, scheduledFor}}`;
 *   `ping` → `pong` (browsers cannot send ping frames);
 * - anything wrong → `error {code, message}` from the error catalogue; the connection stays open.
 * Nothing is acted on once the connection is ending (drain, token expiry).
 */
export class WsProtocol {
  readonly #sink: WsSink;
  readonly #deps: WsProtocolDeps;
  readonly #subscribeRate = createRateLimiter(WS_SUBSCRIBE_RATE, Date.now, 1);
  #subscription: Subscription | undefined;
  /** Bumped by every subscribe, unsubscribe and close, so a subscribe that resolves late is dropped. */
  #generation = 0;
  #queue: Promise<void> = Promise.resolve();
  #queued = 0;

  constructor(sink: WsSink, deps: WsProtocolDeps) {
    this.#sink = sink;
    this.#deps = deps;
    sink.onClose(() => {
      this.#generation += 1;
      this.#subscription?.close();
      this.#subscription = undefined;
    });
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
    if (this.#sink.closed) return;
    let ref: Ref;
    try {
      const expiresAt = this.#sink.caller.expiresAt;
      // The expiry timer may not have fired yet when a frame races it.
      if (expiresAt !== undefined && Date.now() >= expiresAt) {
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
        throw badFrame(
          `Unknown frame type ${JSON.stringify(type)}; use subscribe, unsubscribe, publish, presence or ping`,
        );
      }
      for (const key of Object.keys(object)) {
        if (!allowed.includes(key)) throw badFrame(`Unknown field "${key}" in a ${type} frame`);
      }
      if (type === "subscribe") await this.#subscribe(object, ref);
      else if (type === "unsubscribe") this.#unsubscribe(ref);
      else if (type === "publish") await this.#publish(object, ref);
      else if (type === "presence") await this.#presence(object, ref);
      else this.#send({ type: "pong", ...withRef(ref) });
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
    const presence = flag(frame.presence, "presence");
    const unread = flag(frame.unread, "unread");
    const filter = parseFilter({
      tags: filterList(frame.tags, "tags"),
      priority: filterPriority(frame.priority),
      key: filterList(frame.key, "key"),
    });
    const latest = parseLatestMode(frame.mode);
    this.#deps.access.checkRead(this.#sink.caller, names);
    const reader = readerFor(this.#sink.caller, frame.reader ?? undefined, this.#deps.access.authOn);
    if (unread) requireReader(reader);
    this.#takeStoreRead();
    const generation = ++this.#generation;
    this.#subscription?.close();
    this.#subscription = undefined;
    const subscription = await this.#deps.hub.subscribe(names, cursor || undefined, this.#sink, {
      reader,
      presence,
      unread,
      ...(filter ? { filter } : {}),
      latest,
    });
    if (generation !== this.#generation || this.#sink.closed) {
      subscription.close();
      return;
    }
    this.#subscription = subscription;
    this.#send({ type: "subscribed", mailboxes: names, cursor: subscription.cursor, ...withRef(ref) });
    subscription.start();
  }

  async #presence(frame: Record<string, unknown>, ref: Ref): Promise<void> {
    const mailbox = assertMailboxName(frame.mailbox);
    this.#deps.access.checkRead(this.#sink.caller, [mailbox]);
    this.#takeStoreRead();
    const answer = await this.#deps.hub.presence.answer(mailbox);
    const refJson = ref === undefined ? "" : `,"ref":${JSON.stringify(ref)}`;
    this.#sink.send(`{"type":"presence"${refJson},${presenceAnswerFields(answer)}}`);
  }

  /** Subscribe and presence frames each read the store (a replay, a snapshot): they share one rate. */
  #takeStoreRead(): void {
    const allowed = this.#subscribeRate.take("");
    if (allowed.ok) return;
    throw new HeraldError(
      "too_many_requests",
      `At most ${WS_SUBSCRIBE_RATE.rate} subscribe and presence frames per second (burst ${WS_SUBSCRIBE_RATE.burst}); retry in ${allowed.retryAfterSeconds} s`,
    );
  }

  #unsubscribe(ref: Ref): void {
    this.#generation += 1;
    this.#subscription?.close();
    this.#subscription = undefined;
    this.#send({ type: "unsubscribed", ...withRef(ref) });
  }

  async #publish(frame: Record<string, unknown>, ref: Ref): Promise<void> {
    const mailbox = assertMailboxName(frame.mailbox);
    const key = clientIdempotencyKey(frame.idempotencyKey, '"idempotencyKey"');
    const { message, when } = splitSchedule(
      typeof frame.message === "string" ? { body: frame.message } : frame.message,
      "message: ",
    );
    const fields = parseMessageFields(message, this.#deps.maxTtlSeconds, "message: ");
    const refJson = ref === undefined ? "" : `,"ref":${JSON.stringify(ref)}`;
    if (when !== undefined) {
      const [scheduled] = await this.#deps.hub.publishing.schedule(
        this.#deps.publisher,
        [{ mailbox, fields, when }],
        key,
      );
      if (scheduled === undefined) throw new HeraldError("internal");
      this.#sink.send(
        `{"type":"scheduled"${refJson},"duplicate":${scheduled.duplicate},"scheduled":${scheduledJson(scheduled)}}`,
      );
      return;
    }
    const [published] = await this.#deps.hub.publishing.publish(this.#deps.publisher, [{ mailbox, fields }], key);
    if (published === undefined) throw new HeraldError("internal");
    this.#sink.send(
      `{"type":"published"${refJson},"duplicate":${published.duplicate},"message":${withCursor(published.message.json, published.cursor)}}`,
    );
  }

  #sendError(error: unknown, ref?: Ref): void {
    let herald: HeraldError;
    if (error instanceof HeraldError) herald = error;
    else {
      this.#deps.onInternalError(error);
      herald = new HeraldError("internal");
    }
    this.#send({ type: "error", code: herald.code, message: herald.message, ...withRef(ref) });
  }

  #send(object: Record<string, unknown>): void {
    this.#sink.send(JSON.stringify(object));
  }
}
