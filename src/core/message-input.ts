import { createHash } from "node:crypto";
import { nanoid } from "nanoid";
import { HeraldError } from "../errors.js";
import type { MessageDraft } from "../store/mailbox-store.js";

/** What a publisher may set on a message. */
export interface MessageFields {
  title?: string;
  body?: string;
  data?: unknown;
  tags?: string[];
  priority?: number;
  ttl?: number;
  /**
   * What the message is the latest value of ("cpu", "price:ACME"): `/latest`
   * answers the newest message per key, and `mode=latest` subscribers skip
   * older messages of a key they fell behind on.
   */
  key?: string;
  /** `false` keeps the message off Web Push (its subscribers' open streams still get it). */
  push?: boolean;
}

export const MAX_TITLE_LENGTH = 1024;
export const MAX_TAGS = 32;
export const MAX_TAG_LENGTH = 128;
/** A message key: 1-128 characters of the mailbox-name alphabet plus `/`, so a comma-separated `key=` filter can name it. */
export const MESSAGE_KEY = /^[A-Za-z0-9_.:@/-]{1,128}$/;
const FIELD_NAMES = new Set(["title", "body", "data", "tags", "priority", "ttl", "key", "push"]);

function invalid(where: string, text: string): HeraldError {
  return new HeraldError("bad_message", `${where}${text}`);
}

/**
 * Checks a publisher's JSON object field by field. Unknown fields are refused so
 * that a typo ("titel") is reported instead of silently dropped.
 */
export function parseMessageFields(value: unknown, maxTtlSeconds: number, where = ""): MessageFields {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid(where, "a message must be a JSON object");
  }
  const input = value as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (!FIELD_NAMES.has(key)) {
      throw invalid(where, `unknown field "${key}"; allowed: title, body, data, tags, priority, ttl, key, push`);
    }
  }
  const fields: MessageFields = {};
  if (input.title !== undefined) {
    if (typeof input.title !== "string" || input.title.length > MAX_TITLE_LENGTH) {
      throw invalid(where, `"title" must be a string of at most ${MAX_TITLE_LENGTH} characters`);
    }
    fields.title = input.title;
  }
  if (input.body !== undefined) {
    if (typeof input.body !== "string") throw invalid(where, `"body" must be a string`);
    fields.body = input.body;
  }
  if (input.data !== undefined) fields.data = input.data;
  if (input.tags !== undefined) {
    const tags = input.tags;
    if (
      !Array.isArray(tags) ||
      tags.length > MAX_TAGS ||
      !tags.every((tag) => typeof tag === "string" && tag.length > 0 && tag.length <= MAX_TAG_LENGTH)
    ) {
      throw invalid(
        where,
        `"tags" must be an array of at most ${MAX_TAGS} non-empty strings of at most ${MAX_TAG_LENGTH} characters`,
      );
    }
    fields.tags = tags as string[];
  }
  if (input.priority !== undefined) {
    const priority = input.priority;
    if (typeof priority !== "number" || !Number.isInteger(priority) || priority < 1 || priority > 5) {
      throw invalid(where, `"priority" must be an integer from 1 to 5`);
    }
    fields.priority = priority;
  }
  if (input.ttl !== undefined) {
    const ttl = input.ttl;
    if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl <= 0 || ttl > maxTtlSeconds) {
      throw invalid(where, `"ttl" must be a number of seconds greater than 0 and at most ${maxTtlSeconds}`);
    }
    fields.ttl = ttl;
  }
  if (input.key !== undefined) {
    if (typeof input.key !== "string" || !MESSAGE_KEY.test(input.key)) {
      throw invalid(where, `"key" must be 1-128 characters of A-Z a-z 0-9 _ - . : @ /`);
    }
    fields.key = input.key;
  }
  if (input.push !== undefined) {
    if (typeof input.push !== "boolean") throw invalid(where, `"push" must be true or false`);
    fields.push = input.push;
  }
  return fields;
}

/** Builds what the store appends. The fingerprint covers exactly what the publisher sent. */
export function createDraft(
  fields: MessageFields,
  defaultTtlSeconds: number,
  idempotencyKey: string | undefined,
  now = Date.now(),
): MessageDraft {
  const fieldsJson = JSON.stringify(fields);
  const ttlSeconds = fields.ttl ?? defaultTtlSeconds;
  return {
    id: nanoid(),
    timeMs: now,
    expiresAtMs: now + Math.round(ttlSeconds * 1000),
    fieldsJson,
    ...(fields.key === undefined ? {} : { key: fields.key }),
    ...(idempotencyKey === undefined
      ? {}
      : { idempotencyKey, fingerprint: createHash("sha256").update(fieldsJson).digest("base64url") }),
  };
}
