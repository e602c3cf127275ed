import { createHash } from "node:crypto";
import { encodeSingleCursor } from "../core/cursor.js";
import type { StoredMessage } from "../store/mailbox-store.js";

/**
 * The largest payload a push carries: push services accept 4096 bytes of
 * body, and aes128gcm spends 86 on its header (salt, record size, the
 * sender's key), 16 on the tag and 1 on the padding delimiter.
 */
export const MAX_PUSH_PAYLOAD_BYTES = 4096 - 86 - 16 - 1;

/** Push services keep a message this long at most (Chrome, Firefox: four weeks). */
const MAX_TTL_SECONDS = 28 * 86_400;

/** What a message is pushed as: the payload text and the headers that go with it. */
export interface PushContent {
  readonly payload: string;
  /** Seconds the push service keeps it for a browser that is offline: the message's remaining retention. */
  readonly ttlSeconds: number;
  readonly urgency: "very-low" | "low" | "normal" | "high";
  /** A keyed message replaces an undelivered push of the same key (RFC 8030 Topic). */
  readonly topic: string | undefined;
  /** Fields left out to fit, in the order they were given up. */
  readonly truncated: readonly string[];
}

export interface MessageJson {
  title?: string;
  body?: string;
  tags?: string[];
  priority?: number;
  data?: unknown;
  key?: string;
  push?: boolean;
}

/** The fields of a stored message, or undefined when the publisher opted out with `"push": false`. */
export function pushFields(message: StoredMessage): MessageJson | undefined {
  // Most messages never mention it: skip the parse the sender does anyway.
  if (message.json.includes('"push":false')) {
    const fields = JSON.parse(message.json) as MessageJson;
    if (fields.push === false) return undefined;
    return fields;
  }
  return JSON.parse(message.json) as MessageJson;
}

function urgencyOf(priority: number | undefined): PushContent["urgency"] {
  if (priority === 1) return "very-low";
  if (priority === 2) return "low";
  if (priority === 4 || priority === 5) return "high";
  return "normal";
}

const byteLength = (text: string) => Buffer.byteLength(text, "utf8");

/** `text` cut so that its JSON string (quotes included) takes at most `room` bytes, ending in "…". */
function fitText(text: string, room: number): string {
  let used = byteLength('"…"');
  let kept = "";
  for (const char of text) {
    const cost = byteLength(JSON.stringify(char)) - 2;
    if (used + cost > room) break;
    used += cost;
    kept += char;
  }
  return `${kept}…`;
}

/**
 * What the service worker receives for a message: id, mailbox, cursor, time
 * and the publisher's title, body, tags, priority and data, within
 * MAX_PUSH_PAYLOAD_BYTES. When it does not fit, `data` goes first (the page
 * can read the message by its cursor), then `tags`, then the body is
 * shortened, then the title; `truncated` lists what was given up.
 */
export function pushContent(
  message: StoredMessage,
  fields: MessageJson,
  options: { nowMs: number; withoutData?: boolean },
): PushContent {
  return {
    ...pushBody(message, fields, options.withoutData === true),
    ttlSeconds: pushTtlSeconds(message, options.nowMs),
  };
}

/** Seconds the push service should keep a push for an offline browser: the message's remaining retention. */
export function pushTtlSeconds(message: StoredMessage, nowMs: number): number {
  return Math.min(MAX_TTL_SECONDS, Math.max(0, Math.floor((message.expiresAtMs - nowMs) / 1000)));
}

/** Everything of a push but its TTL: the same for every subscription of a message, so made once per message. */
export function pushBody(
  message: StoredMessage,
  fields: MessageJson,
  withoutData: boolean,
): Omit<PushContent, "ttlSeconds"> {
  const payload: Record<string, unknown> = {
    id: message.id,
    mailbox: message.mailbox,
    cursor: encodeSingleCursor(message.mailbox, message.epoch, message.seq),
    time: Math.round(message.timeMs),
  };
  for (const name of ["title", "body", "tags", "priority", "data"] as const) {
    if (fields[name] !== undefined) payload[name] = fields[name];
  }
  const truncated: string[] = [];
  const size = () => byteLength(JSON.stringify(truncated.length > 0 ? { ...payload, truncated } : payload));
  const drop = (name: string) => {
    if (payload[name] === undefined) return;
    delete payload[name];
    truncated.push(name);
  };
  if (withoutData) drop("data");
  for (const name of ["data", "tags"]) if (size() > MAX_PUSH_PAYLOAD_BYTES) drop(name);
  for (const name of ["body", "title"]) {
    const value = payload[name];
    const excess = size() - MAX_PUSH_PAYLOAD_BYTES;
    if (excess <= 0 || typeof value !== "string") continue;
    // "truncated" grows by the name as well.
    payload[name] = fitText(value, byteLength(JSON.stringify(value)) - excess - byteLength(`,"${name}"`) - 16);
    truncated.push(name);
  }
  return {
    payload: JSON.stringify(truncated.length > 0 ? { ...payload, truncated } : payload),
    urgency: urgencyOf(fields.priority),
    topic:
      fields.key === undefined
        ? undefined
        : createHash("sha256").update(`${message.mailbox}\n${fields.key}`).digest("base64url").slice(0, 32),
    truncated,
  };
}
