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

export function compileScope(patterns: readonly string[]): ScopeMatcher {
  const exact = new Set<string>();
  const wild: RegExp[] = [];
  for (const pattern of patterns) {
    if (!pattern.includes("*")) exact.add(pattern);
    else wild.push(new RegExp(`^${pattern.replace(/[.*+?^${}()|[\]\\]/g, (c) => (c === "*" ? ".*" : `\\${c}`))}$`));
  }
  return (mailbox) => exact.has(mailbox) || wild.some((re) => re.test(mailbox));
}

/** One configured publisher key, as `herald key create` prints it. */
export interface ApiKeyEntry {
  readonly name: string;
  /** `sha256:<hex>` of the key; the key itself is never stored. */
  readonly hash: string;
  /** Mailbox patterns this key may publish to. */
  readonly publish: readonly string[];
  /** May mint subscriber tokens through POST /v1/tokens. */
  readonly tokens: boolean;
  /** May read /metrics when metrics are protected. */
  readonly metrics: boolean;
}

export interface ApiKey extends ApiKeyEntry {
  readonly canPublish: ScopeMatcher;
}

/** Looks a presented key up by its hash; unknown keys give undefined. */
export interface Keyring {
  readonly size: number;
  find(presented: string): ApiKey | undefined;
}

export function createKeyring(entries: readonly ApiKeyEntry[]): Keyring {
  const byHash = new Map<string, ApiKey>();
  for (const entry of entries) byHash.set(entry.hash, { ...entry, canPublish: compileScope(entry.publish) });
  return {
    size: byHash.size,
    find: (presented) => byHash.get(hashKey(presented)),
  };
}
