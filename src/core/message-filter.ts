import { HeraldError } from "../errors.js";
import type { StoredMessage } from "../store/mailbox-store.js";
import { MAX_TAG_LENGTH, MESSAGE_KEY } from "./message-input.js";

/** A message without a priority counts as this one, as in ntfy. */
export const DEFAULT_PRIORITY = 3;
/** Tags or keys one filter may name. */
export const MAX_FILTER_VALUES = 32;

/**
 * Which messages a subscriber wants. A message passes when it has any of the
 * `tags`, a priority of at least `minPriority`, and one of the `keys`; an
 * absent part lets everything through. Messages that do not pass are neither
 * delivered nor gaps: the subscriber's cursor moves past them.
 */
export interface MessageFilter {
  readonly tags?: ReadonlySet<string>;
  readonly minPriority?: number;
  readonly keys?: ReadonlySet<string>;
  /**
   * A protocol adapter's own test (Mercure's topic matchers and private
   * updates, ntfy's tag and priority lists), applied after the parts above.
   * Called once per message per distinct signature in a fan-out round, so it
   * must be cheap and must depend only on what the signature names.
   */
  readonly accepts?: (message: StoredMessage) => boolean;
  /** Equal for equal filters, so subscribers with the same filter share the frames of a fan-out round. */
  readonly signature: string;
}

/** What a subscription or read sees of the log. */
export interface DeliveryView {
  readonly filter?: MessageFilter;
  /**
   * `mode=latest`: a subscriber that falls behind, or resumes from a cursor,
   * gets only the newest message per key of those it missed (keyless messages
   * are never skipped) and a `conflated` notice, instead of being cut off.
   */
  readonly latest?: boolean;
}

/** The raw filter parameters, as a query string or a WebSocket frame carries them. */
export interface FilterInput {
  /** Comma-separated, or several values. */
  readonly tags?: string | readonly string[] | undefined;
  readonly priority?: string | number | undefined;
  readonly key?: string | readonly string[] | undefined;
}

function badFilter(message: string): HeraldError {
  return new HeraldError("bad_parameter", message);
}

function listOf(raw: string | readonly string[] | undefined, name: string): string[] | undefined {
  if (raw === undefined) return undefined;
  const values = (typeof raw === "string" ? [raw] : raw).flatMap((value) => {
    if (typeof value !== "string") throw badFilter(`"${name}" must be a comma-separated string`);
    return value.split(",");
  });
  const names = [...new Set(values.map((value) => value.trim()).filter((value) => value.length > 0))];
  if (names.length === 0) return undefined;
  if (names.length > MAX_FILTER_VALUES) throw badFilter(`"${name}" names at most ${MAX_FILTER_VALUES} values`);
  return names.sort();
}

/** Parses filter parameters; undefined when they filter nothing. Throws 400 `bad_parameter` on bad values. */
export function parseFilter(input: FilterInput): MessageFilter | undefined {
  const tags = listOf(input.tags, "tags");
  if (tags?.some((tag) => tag.length > MAX_TAG_LENGTH)) {
    throw badFilter(`"tags" values are at most ${MAX_TAG_LENGTH} characters`);
  }
  const keys = listOf(input.key, "key");
  if (keys?.some((key) => !MESSAGE_KEY.test(key))) {
    throw badFilter(`"key" values are 1-128 characters of A-Z a-z 0-9 _ - . : @ /`);
  }
  let minPriority: number | undefined;
  if (input.priority !== undefined && input.priority !== "") {
    const value = Number(input.priority);
    if (!Number.isInteger(value) || value < 1 || value > 5) {
      throw badFilter(`"priority" must be an integer from 1 to 5, got ${JSON.stringify(input.priority)}`);
    }
    // Every message passes a minimum of 1.
    if (value > 1) minPriority = value;
  }
  if (!tags && !keys && minPriority === undefined) return undefined;
  return {
    ...(tags ? { tags: new Set(tags) } : {}),
    ...(keys ? { keys: new Set(keys) } : {}),
    ...(minPriority === undefined ? {} : { minPriority }),
    signature: JSON.stringify([tags ?? null, minPriority ?? null, keys ?? null]),
  };
}

/** Parses `mode`: "all" (the default) or "latest". */
export function parseLatestMode(raw: unknown): boolean {
  if (raw === undefined || raw === null || raw === "" || raw === "all") return false;
  if (raw === "latest") return true;
  throw badFilter(`"mode" must be "all" or "latest", got ${JSON.stringify(String(raw).slice(0, 32))}`);
}

/** The fields filters and conflation look at, read once per stored message object. */
interface MessageMeta {
  readonly tags: readonly string[] | undefined;
  readonly priority: number;
  readonly key: string | undefined;
}

const metaCache = new WeakMap<StoredMessage, MessageMeta>();

function metaOf(message: StoredMessage): MessageMeta {
  let meta = metaCache.get(message);
  if (meta === undefined) {
    const parsed = JSON.parse(message.json) as { tags?: unknown; priority?: unknown; key?: unknown };
    meta = {
      tags: Array.isArray(parsed.tags) ? (parsed.tags as string[]) : undefined,
      priority: typeof parsed.priority === "number" ? parsed.priority : DEFAULT_PRIORITY,
      key: typeof parsed.key === "string" ? parsed.key : undefined,
    };
    metaCache.set(message, meta);
  }
  return meta;
}

/** The message's `key`, or undefined when it has none. */
export function messageKey(message: StoredMessage): string | undefined {
  return metaOf(message).key;
}

export function passes(filter: MessageFilter | undefined, message: StoredMessage): boolean {
  if (filter === undefined) return true;
  const meta = metaOf(message);
  if (filter.minPriority !== undefined && meta.priority < filter.minPriority) return false;
  if (filter.keys && (meta.key === undefined || !filter.keys.has(meta.key))) return false;
  if (filter.tags) {
    const tags = meta.tags;
    if (!tags?.some((tag) => (filter.tags as ReadonlySet<string>).has(tag))) return false;
  }
  if (filter.accepts === undefined) return true;
  // A message an adapter cannot read is not for its subscriber: it must never stop the fan-out round.
  try {
    return filter.accepts(message);
  } catch {
    return false;
  }
}
