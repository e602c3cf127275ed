import { randomUUID } from "node:crypto";
import type { MessageFields } from "../core/message-input.js";
import { HeraldError } from "../errors.js";
import type { StoredMessage } from "../store/stored-message.js";
import type { MercureSettings } from "./mercure-config.js";
import { isCleanValue } from "./topic-matcher.js";

/** The SSE event type the hub keeps for its own subscription events; publishers may not use it. */
export const RESERVED_TYPE = "mercure";
/** The `Last-Event-ID` meaning "everything the hub still has". */
export const EARLIEST = "earliest";

/** One Mercure update: what a publisher POSTed, with its id settled. */
export interface MercureUpdate {
  /** The canonical topic first, then alternates. */
  readonly topics: readonly string[];
  readonly id: string;
  readonly data: string | undefined;
  readonly private: boolean;
  readonly type: string | undefined;
  readonly retry: number | undefined;
}

/** Where a Mercure update's own fields live inside a Herald message's `data`. */
interface StoredUpdateFields {
  readonly topics: readonly string[];
  readonly id: string;
  readonly private?: true;
  readonly type?: string;
  readonly retry?: number;
}

function tooLarge(message: string): HeraldError {
  return new HeraldError("payload_too_large", message);
}

function bad(message: string): HeraldError {
  return new HeraldError("bad_message", message);
}

/** Unreserved characters written as %XX are the same path; decode them before comparing (RFC 3986 §6.2.2.2). */
function decodeUnreserved(path: string): string {
  return path.replace(/%([0-9A-Fa-f]{2})/g, (encoded, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16));
    return /[A-Za-z0-9\-._~]/.test(char) ? char : encoded;
  });
}

/** True when the topic, resolved against the hub's URL, names the hub's own namespace (its events). */
export function addressesHub(topic: string, hubUrl: string): boolean {
  let url: URL;
  try {
    url = new URL(topic, hubUrl);
  } catch {
    return false;
  }
  const hubPath = new URL(hubUrl).pathname;
  // The URL parser already removed dot segments; a second pass catches ones hidden behind %2E.
  const path = new URL(decodeUnreserved(url.pathname), hubUrl).pathname;
  return path === hubPath || path.startsWith(`${hubPath}/`);
}

/**
 * Reads a publish form (`topic`, `data`, `private`, `id`, `type`, `retry`;
 * other fields are ignored, as the standard asks). 400 for invalid values,
 * 413 past the configured bounds.
 */
export function parseUpdateForm(form: URLSearchParams, settings: MercureSettings, hubUrl: string): MercureUpdate {
  const max = settings.maxValueLength;
  const topics = form.getAll("topic");
  if (topics.length === 0) throw bad('A Mercure update needs at least one "topic" field');
  if (topics.length > settings.maxTopics)
    throw tooLarge(`A Mercure update carries at most ${settings.maxTopics} topics`);
  for (const topic of topics) {
    if (topic.length > max) throw tooLarge(`A topic is at most ${max} characters`);
    if (!isCleanValue(topic)) throw bad("A topic must not contain control or format characters");
    if (topic === "*") throw bad('"*" is the wildcard matcher, not a topic');
    if (addressesHub(topic, hubUrl)) throw bad(`The topic ${JSON.stringify(topic)} is in the hub's reserved namespace`);
  }
  const id = form.get("id");
  if (id !== null) {
    if (id.length === 0 || id.length > max) throw bad(`"id" must be 1-${max} characters`);
    if (id.startsWith("#") || id === EARLIEST) throw bad('"id" must not start with "#" or be "earliest"');
    if (!isCleanValue(id)) throw bad('"id" must not contain control or format characters');
  }
  const type = form.get("type");
  if (type !== null) {
    if (type.length > max || !isCleanValue(type))
      throw bad(`"type" must be at most ${max} characters without controls`);
    if (type === RESERVED_TYPE) throw bad('The type "mercure" is reserved for the hub\'s own events');
  }
  const retry = form.get("retry");
  if (retry !== null && !/^[0-9]{1,10}$/.test(retry)) throw bad('"retry" must be ASCII digits (milliseconds)');
  return {
    topics,
    id: id ?? `urn:uuid:${randomUUID()}`,
    data: form.get("data") ?? undefined,
    private: form.has("private"),
    type: type === null || type === "" ? undefined : type,
    retry: retry === null ? undefined : Number(retry),
  };
}

/** The Herald message an update is stored as: `body` is its data, `data.mercure` the rest. */
export function updateFields(update: MercureUpdate): MessageFields {
  const mercure: StoredUpdateFields = {
    topics: update.topics,
    id: update.id,
    ...(update.private ? { private: true } : {}),
    ...(update.type === undefined ? {} : { type: update.type }),
    ...(update.retry === undefined ? {} : { retry: update.retry }),
  };
  return { ...(update.data === undefined ? {} : { body: update.data }), data: { mercure } };
}

/**
 * Only the hub writes its mailboxes, but what is read back is checked as if
 * it were input: a malformed update would otherwise break a subscriber's
 * filter or inject lines into its event stream.
 */
function isStoredUpdate(fields: Record<string, unknown>): fields is Record<string, unknown> & StoredUpdateFields {
  const { topics, id, type, retry } = fields;
  return (
    Array.isArray(topics) &&
    topics.length > 0 &&
    topics.every((topic) => typeof topic === "string" && isCleanValue(topic)) &&
    typeof id === "string" &&
    id.length > 0 &&
    isCleanValue(id) &&
    (type === undefined || (typeof type === "string" && isCleanValue(type))) &&
    (retry === undefined || (typeof retry === "number" && Number.isSafeInteger(retry) && retry >= 0))
  );
}

const decoded = new WeakMap<StoredMessage, MercureUpdate | null>();

/** The update a stored message holds, or undefined for a message that is not a Mercure update. Parsed once per message. */
export function updateOf(message: StoredMessage): MercureUpdate | undefined {
  let update = decoded.get(message);
  if (update === undefined) {
    update = null;
    let parsed: { body?: unknown; data?: { mercure?: Record<string, unknown> } } = {};
    try {
      parsed = JSON.parse(message.json);
    } catch {}
    const fields = parsed?.data?.mercure;
    if (typeof fields === "object" && fields !== null && isStoredUpdate(fields)) {
      update = {
        topics: fields.topics,
        id: fields.id,
        data: typeof parsed.body === "string" ? parsed.body : undefined,
        private: fields.private === true,
        type: fields.type,
        retry: fields.retry,
      };
    }
    decoded.set(message, update);
  }
  return update ?? undefined;
}

/** The update as one Server-Sent Event; `data` becomes one `data:` line per line, as published. */
export function updateEvent(update: MercureUpdate): string {
  let text = `id: ${update.id}\n`;
  if (update.type !== undefined) text += `event: ${update.type}\n`;
  if (update.retry !== undefined) text += `retry: ${update.retry}\n`;
  for (const line of (update.data ?? "").split(/\r\n|\r|\n/)) text += `data: ${line}\n`;
  return `${text}\n`;
}
