import { createHash, randomBytes } from "node:crypto";

/** Prefix of every key `herald key create` makes, so a leaked one is recognisable in a scan. */
export const KEY_PREFIX = "hk_";
const KEY_RANDOM_BYTES = 32;
const HASH_PREFIX = "sha256:";
/** Mailbox-name characters plus the `*` wildcard. */
const PATTERN = /^[A-Za-z0-9_\-.:@*]{1,128}$/;
/** Patterns one key or token may carry; each check walks them all. */
export const MAX_PATTERNS = 64;

/** Keys are 256 random bits, so a plain SHA-256 is enough: there is nothing to brute-force. */
export function hashKey(key: string): string {
  return `${HASH_PREFIX}${createHash("sha256").update(key, "utf8").digest("hex")}`;
}

export function generateKey(): string {
  return `${KEY_PREFIX}${randomBytes(KEY_RANDOM_BYTES).toString("base64url")}`;
}

export function isKeyHash(value: string): boolean {
  return /^sha256:[0-9a-f]{64}$/.test(value);
}

export function isScopePattern(value: unknown): value is string {
  return typeof value === "string" && PATTERN.test(value);
}

/** Tests mailbox names against `*`-wildcard patterns (`user:*`, `*`, `room:*:chat`). */
export type ScopeMatcher = (mailbox: string) => boolean;

/**
 * True when `name` matches `pattern`, where each `*` stands for any run of
 * characters. Patterns and names are chosen by clients, so this must not
 * backtrack: the literal pieces between stars are found left to right, each
 * at its earliest place after the previous one (taking the earliest never
 * loses a match), so the work is bounded by the lengths, whatever the stars.
 */
export function globMatches(pattern: string, name: string): boolean {
  const pieces = pattern.split("*");
  if (pieces.length === 1) return pattern === name;
  const first = pieces[0] as string;
  const last = pieces[pieces.length - 1] as string;
  if (name.length < first.length + last.length || !name.startsWith(first) || !name.endsWith(last)) return false;
  let at = first.length;
  const end = name.length - last.length;
  for (let i = 1; i < pieces.length - 1; i++) {
    const piece = pieces[i] as string;
    if (piece === "") continue;
    const found = name.indexOf(piece, at);
    if (found === -1 || found + piece.length > end) return false;
    at = found + piece.length;
  }
  return true;
}

export function compileScope(patterns: readonly string[]): ScopeMatcher {
  const exact = new Set<string>();
  const wild: string[] = [];
  for (const pattern of patterns) {
    if (pattern.includes("*")) wild.push(pattern);
    else exact.add(pattern);
  }
  return (mailbox) => exact.has(mailbox) || wild.some((pattern) => globMatches(pattern, mailbox));
}

/**
 * True when every name `inner` matches is also matched by `outer`. `inner` is
 * read literally, its `*` as a character: names never contain `*`, so an outer
 * literal character can only meet an inner literal one, and each inner `*`
 * falls inside the span of an outer `*`, which then covers whatever it stands for.
 */
export function scopeCovers(outer: ScopeMatcher, inner: string): boolean {
  return outer(inner);
}

/** One configured publisher key, as `herald key create` prints it. */
export interface ApiKeyEntry {
  readonly name: string;
  /** `sha256:<hex>` of the key; the key itself is never stored. */
  readonly hash: string;
  /** Mailbox patterns this key may publish to. */
  readonly publish: readonly string[];
  /**
   * Mailbox patterns this key may grant reading of in tokens it mints through
   * POST /v1/tokens; undefined when it may not mint. Config `"tokens": true`
   * means its publish patterns.
   */
  readonly tokens: readonly string[] | undefined;
  /** May read /metrics when metrics are protected. */
  readonly metrics: boolean;
  /** May use the admin console (/admin, /v1/admin/*), and read and publish every mailbox from it. */
  readonly admin: boolean;
}

export interface ApiKey extends ApiKeyEntry {
  readonly canPublish: ScopeMatcher;
  /** What the key's minted tokens may read; matches nothing for a key without the right. */
  readonly canGrantRead: ScopeMatcher;
}

/** Looks a presented key up by its hash; unknown keys give undefined. */
export interface Keyring {
  readonly size: number;
  find(presented: string): ApiKey | undefined;
}

export function createKeyring(entries: readonly ApiKeyEntry[]): Keyring {
  const byHash = new Map<string, ApiKey>();
  for (const entry of entries) {
    byHash.set(entry.hash, {
      ...entry,
      canPublish: compileScope(entry.publish),
      canGrantRead: compileScope(entry.tokens ?? []),
    });
  }
  return {
    size: byHash.size,
    find: (presented) => byHash.get(hashKey(presented)),
  };
}
