import { encodeSingleCursor } from "../core/cursor.js";
import { MAX_SUBSCRIPTION_MAILBOXES } from "../core/read-plan.js";
import { HeraldError } from "../errors.js";
import type { StoredMessage } from "../store/mailbox-store.js";

/** ntfy's topic names; each is also a valid mailbox name, so Herald's own clients see the same log. */
const TOPIC = /^[-_A-Za-z0-9]{1,64}$/;
/** What ntfy publishers get when they send no message text. */
export const EMPTY_MESSAGE = "triggered";
/** ntfy counts a message without a priority as this one, in filters too. */
const DEFAULT_PRIORITY = 3;
const PRIORITY_NAMES: Readonly<Record<string, number>> = {
  min: 1,
  low: 2,
  default: 3,
  high: 4,
  urgent: 5,
  max: 5,
};

/** One topic name, or a clear 400. */
export function assertTopic(raw: string | undefined): string {
  if (raw !== undefined && TOPIC.test(raw)) return raw;
  throw new HeraldError(
    "bad_mailbox",
    `ntfy topic names are 1-64 characters of A-Z a-z 0-9 _ -, got ${JSON.stringify((raw ?? "").slice(0, 80))}`,
  );
}

/** `a,b,c` of a subscribe path: each checked, repeats dropped, at most MAX_SUBSCRIPTION_MAILBOXES. */
export function parseTopicList(raw: string | undefined): string[] {
  const topics = [...new Set((raw ?? "").split(",").filter((topic) => topic.length > 0))];
  if (topics.length === 0) throw assertTopic("");
  if (topics.length > MAX_SUBSCRIPTION_MAILBOXES) {
    throw new HeraldError("bad_parameter", `Subscribe to at most ${MAX_SUBSCRIPTION_MAILBOXES} topics at once`);
  }
  return topics.map(assertTopic);
}

/** `1`-`5` or ntfy's names (min, low, default, high, urgent, max); undefined for empty. */
export function parsePriority(raw: string | number | undefined, where: string): number | undefined {
  if (raw === undefined || raw === "" || raw === 0) return undefined;
  const text = String(raw).trim().toLowerCase();
  const value = PRIORITY_NAMES[text] ?? (/^[1-5]$/.test(text) ? Number(text) : undefined);
  if (value === undefined) {
    throw new HeraldError(
      "bad_parameter",
      `${where} must be 1-5 or min, low, default, high, urgent (max), got ${JSON.stringify(String(raw).slice(0, 32))}`,
    );
  }
  return value;
}

/** Splits ntfy's comma-separated lists (tags, priorities), dropping blanks. */
export function commaList(raw: string | undefined): string[] {
  return (raw ?? "")
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

/** The fields of a stored message ntfy clients see; `data` carries ntfy's extras (click, icon, actions, content_type). */
export interface NtfyFields {
  readonly message: string | undefined;
  readonly title: string | undefined;
  readonly tags: readonly string[] | undefined;
  readonly priority: number | undefined;
  readonly click: string | undefined;
  readonly icon: string | undefined;
  readonly actions: readonly unknown[] | undefined;
  readonly contentType: string | undefined;
}

/** A stored message as ntfy's JSON (no trailing newline), its id, and the fields filters look at. */
export interface NtfyMessage {
  /** The single-mailbox cursor just after the message: `since=<id>` resumes exactly there. */
  readonly id: string;
  readonly json: string;
  readonly fields: NtfyFields;
}

const views = new WeakMap<StoredMessage, NtfyMessage>();

function stringOf(value: unknown): string | undefined {
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

/** ntfy's fields of a Herald message object (as stored, or as about to be scheduled). */
export function ntfyFieldsOf(parsed: Record<string, unknown>): NtfyFields {
  const data =
    typeof parsed.data === "object" && parsed.data !== null && !Array.isArray(parsed.data)
      ? (parsed.data as Record<string, unknown>)
      : {};
  return {
    message: stringOf(parsed.body),
    title: stringOf(parsed.title),
    tags: Array.isArray(parsed.tags) && parsed.tags.length > 0 ? (parsed.tags as string[]) : undefined,
    priority: typeof parsed.priority === "number" ? parsed.priority : undefined,
    click: stringOf(data.click),
    icon: stringOf(data.icon),
    actions: Array.isArray(data.actions) && data.actions.length > 0 ? data.actions : undefined,
    contentType: stringOf(data.content_type),
  };
}

/** Where and when a message is, for its ntfy JSON. */
export interface NtfyHead {
  readonly id: string;
  readonly topic: string;
  readonly timeMs: number;
  readonly expiresAtMs: number;
}

/** ntfy's message JSON; absent fields are left out, as ntfy leaves them out. */
export function ntfyMessageJson(head: NtfyHead, fields: NtfyFields): string {
  const object: Record<string, unknown> = {
    id: head.id,
    time: Math.floor(head.timeMs / 1000),
    expires: Math.floor(head.expiresAtMs / 1000),
    event: "message",
    topic: head.topic,
    title: fields.title,
    message: fields.message,
    priority: fields.priority,
    tags: fields.tags,
    click: fields.click,
    icon: fields.icon,
    actions: fields.actions,
    content_type: fields.contentType,
  };
  return JSON.stringify(object);
}

/** Built once per stored message and shared by every ntfy format and subscriber. */
export function ntfyMessage(stored: StoredMessage): NtfyMessage {
  let view = views.get(stored);
  if (view === undefined) {
    const id = encodeSingleCursor(stored.mailbox, stored.epoch, stored.seq);
    const fields = ntfyFieldsOf(JSON.parse(stored.json) as Record<string, unknown>);
    const head = { id, topic: stored.mailbox, timeMs: stored.timeMs, expiresAtMs: stored.expiresAtMs };
    view = { id, json: ntfyMessageJson(head, fields), fields };
    views.set(stored, view);
  }
  return view;
}

/** What `ntfyFilter` reads: ntfy's subscribe filters as the query or headers gave them. */
export interface NtfyFilterInput {
  readonly tags: string | undefined;
  readonly priority: string | undefined;
  readonly message: string | undefined;
  readonly title: string | undefined;
}

/** A filter in ntfy's terms, for MessageFilter.accepts; undefined when nothing is filtered. */
export interface NtfyFilter {
  readonly accepts: (stored: StoredMessage) => boolean;
  readonly signature: string;
}

/** Tags or priorities one filter may name, as Herald's own filters. */
const MAX_FILTER_VALUES = 32;

/**
 * ntfy's semantics: a message passes when it has every one of `tags`, its
 * priority (3 when it has none) is one of `priority`, and its text and title
 * equal `message` and `title` where given.
 */
export function ntfyFilter(input: NtfyFilterInput): NtfyFilter | undefined {
  const tags = [...new Set(commaList(input.tags))].sort();
  const priorities = [
    ...new Set(commaList(input.priority).map((p) => parsePriority(p, '"priority"') as number)),
  ].sort();
  if (tags.length > MAX_FILTER_VALUES)
    throw new HeraldError("bad_parameter", `"tags" names at most ${MAX_FILTER_VALUES}`);
  const message = input.message === "" ? undefined : input.message;
  const title = input.title === "" ? undefined : input.title;
  if (tags.length === 0 && priorities.length === 0 && message === undefined && title === undefined) return undefined;
  const accepts = (stored: StoredMessage): boolean => {
    const fields = ntfyMessage(stored).fields;
    if (message !== undefined && fields.message !== message) return false;
    if (title !== undefined && fields.title !== title) return false;
    if (priorities.length > 0 && !priorities.includes(fields.priority ?? DEFAULT_PRIORITY)) return false;
    return tags.every((tag) => fields.tags?.includes(tag) === true);
  };
  return { accepts, signature: JSON.stringify(["ntfy", tags, priorities, message ?? null, title ?? null]) };
}
