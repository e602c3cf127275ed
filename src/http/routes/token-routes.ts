import type { Context } from "hono";
import { isScopePattern, MAX_PATTERNS, scopeCovers } from "../../auth/keys.js";
import { infoText, MAX_SUBJECT_LENGTH } from "../../auth/tokens.js";
import { HeraldError } from "../../errors.js";
import type { AppDeps } from "../deps.js";
import { readBody } from "./body.js";

/** Token requests are a few names; anything larger is a mistake. */
const MAX_TOKEN_REQUEST_BYTES = 16 * 1024;
const FIELDS = ["sub", "info", "mailboxes", "publish", "ttl"];

function bad(message: string): HeraldError {
  return new HeraldError("bad_parameter", message);
}

function patterns(value: unknown, field: string, required: boolean): string[] {
  if (value === undefined && !required) return [];
  if (!Array.isArray(value) || value.length > MAX_PATTERNS || (required && value.length === 0)) {
    throw bad(`"${field}" must be a list of ${required ? 1 : 0} to ${MAX_PATTERNS} mailbox patterns`);
  }
  for (const pattern of value) {
    if (!isScopePattern(pattern)) throw bad(`"${field}": ${JSON.stringify(pattern)} is not a mailbox name or pattern`);
  }
  return value;
}

/**
 * POST /v1/tokens: an app backend, holding a key with the "tokens" right, has
 * Herald mint a subscriber token. What the token may read must lie within the
 * key's token patterns, what it may publish to within the key's publish patterns.
 */
export async function mintToken(c: Context, deps: AppDeps): Promise<Response> {
  const tokens = deps.access.tokens;
  // Said first, whoever asks: no key can make a server without a tokens section mint.
  if (tokens === undefined) {
    throw new HeraldError(
      "not_found",
      "Subscriber tokens are not configured on this server (the config file has no auth.tokens section)",
    );
  }
  const key = deps.access.keyWithRight(c, "tokens");
  if (!tokens.service.canMint) {
    throw new HeraldError("forbidden", "This server verifies tokens but has no signing key to mint them with");
  }
  const body = await readBody(c, MAX_TOKEN_REQUEST_BYTES);
  if (body.kind !== "json" || typeof body.value !== "object" || body.value === null || Array.isArray(body.value)) {
    throw new HeraldError("bad_json", 'Send JSON: {"sub": "alice", "mailboxes": ["user:alice"], "ttl": 3600}');
  }
  const request = body.value as Record<string, unknown>;
  const unknown = Object.keys(request).find((field) => !FIELDS.includes(field));
  if (unknown !== undefined) throw bad(`Unknown field "${unknown}"; allowed: ${FIELDS.join(", ")}`);
  const { sub } = request;
  if (typeof sub !== "string" || sub.length === 0 || sub.length > MAX_SUBJECT_LENGTH) {
    throw bad(`"sub" must be a string of 1 to ${MAX_SUBJECT_LENGTH} characters`);
  }
  const info = infoText(request.info);
  if ("error" in info) throw bad(info.error);
  const mailboxes = patterns(request.mailboxes, "mailboxes", true);
  const publish = patterns(request.publish, "publish", false);
  const unreadable = mailboxes.find((pattern) => !scopeCovers(key.canGrantRead, pattern));
  if (unreadable !== undefined) {
    throw new HeraldError("forbidden", `The key "${key.name}" may not grant reading "${unreadable}"`);
  }
  const beyond = publish.find((pattern) => !scopeCovers(key.canPublish, pattern));
  if (beyond !== undefined) {
    throw new HeraldError("forbidden", `The key "${key.name}" may not grant publishing to "${beyond}"`);
  }
  const { maxTtlSeconds, defaultTtlSeconds } = tokens.settings;
  const ttl = request.ttl ?? defaultTtlSeconds;
  if (typeof ttl !== "number" || !Number.isInteger(ttl) || ttl < 1 || ttl > maxTtlSeconds) {
    throw bad(`"ttl" must be a whole number of seconds from 1 to ${maxTtlSeconds}`);
  }
  const minted = await tokens.service.mint({
    sub,
    mailboxes,
    publish,
    ttlSeconds: ttl,
    info: request.info as Record<string, unknown> | undefined,
  });
  return c.json({ token: minted.token, expiresAt: new Date(minted.expiresAt).toISOString() }, 201, {
    "Cache-Control": "no-store",
  });
}
