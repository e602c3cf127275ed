import { Writable } from "node:stream";
import { SignJWT } from "jose";
import { parseAuthSection } from "../../src/auth/auth-config.js";
import { generateKey, hashKey } from "../../src/auth/keys.js";
import { parseLimitsSection } from "../../src/auth/limits-config.js";
import { DEFAULT_CONFIG, type ServeConfig } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { type PushOptions, type RunningHerald, startHerald } from "../../src/server.js";
import { createMemoryStore } from "../../src/store/memory-store.js";

export const SECRET = "test-secret-that-is-long-enough-for-hs256!";

export interface AuthServerOptions {
  /** The config file's "auth" section, as JSON. */
  readonly auth?: unknown;
  /** The config file's "limits" section, as JSON. */
  readonly limits?: unknown;
  readonly config?: Partial<ServeConfig>;
  /** Collects every JSON log line. */
  readonly logLines?: string[];
  /** Web Push (test/helpers/push.ts). */
  readonly push?: PushOptions;
}

/** A listening Herald configured as from a config file's auth and limits sections. */
export async function startAuthServer(options: AuthServerOptions = {}): Promise<RunningHerald> {
  const config: ServeConfig = { ...DEFAULT_CONFIG, port: 0, drainTimeoutSeconds: 1, ...options.config };
  const lines = options.logLines;
  const logger =
    lines === undefined
      ? undefined
      : createLogger(
          "info",
          new Writable({
            write(chunk, _encoding, done) {
              lines.push(...String(chunk).split("\n").filter(Boolean));
              done();
            },
          }),
        );
  return startHerald(
    config,
    createMemoryStore({
      maxMailboxes: config.maxMailboxes,
      maxMessagesPerMailbox: config.maxMessagesPerMailbox,
      maxBytes: config.maxStoreBytes,
    }),
    {
      auth: options.auth === undefined ? undefined : parseAuthSection(options.auth, process.env),
      limits: options.limits === undefined ? undefined : parseLimitsSection(options.limits),
      ...(logger ? { logger } : {}),
      ...(options.push ? { push: options.push } : {}),
    },
  );
}

export interface TestKey {
  readonly key: string;
  readonly entry: { name: string; hash: string; publish: string[]; tokens?: boolean | string[]; metrics?: boolean };
}

export function makeKey(
  name: string,
  publish: string[],
  rights: { tokens?: boolean | string[]; metrics?: boolean } = {},
): TestKey {
  const key = generateKey();
  return { key, entry: { name, hash: hashKey(key), publish, ...rights } };
}

export interface TokenClaims {
  sub?: string;
  mailboxes?: unknown;
  publish?: unknown;
  /** The public `info` claim presence shows. */
  info?: unknown;
  /** Seconds from now; negative for an already expired token. */
  expiresIn?: number;
}

/** An HMAC token (HS256 unless `alg` says HS384 or HS512) signed with `secret`. */
export async function hsToken(claims: TokenClaims, secret = SECRET, alg = "HS256"): Promise<string> {
  const { sub = "alice", mailboxes = ["user:alice"], publish, info, expiresIn = 600 } = claims;
  const jwt = new SignJWT({
    mailboxes,
    ...(publish === undefined ? {} : { publish }),
    ...(info === undefined ? {} : { info }),
  })
    .setProtectedHeader({ alg, typ: "JWT" })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + expiresIn);
  return jwt.sign(new TextEncoder().encode(secret));
}

/** An unsigned token (`alg: none`) that would otherwise be valid. */
export function noneToken(claims: Record<string, unknown>): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${encode({ alg: "none", typ: "JWT" })}.${encode(claims)}.`;
}

/** The token with one character of its signature changed. */
export function tamper(token: string): string {
  const last = token.at(-2) === "A" ? "B" : "A";
  return `${token.slice(0, -2)}${last}${token.at(-1)}`;
}

export function bearer(credential: string): Record<string, string> {
  return { authorization: `Bearer ${credential}` };
}

export async function publishStatus(
  base: string,
  mailbox: string,
  headers: Record<string, string>,
  body: Record<string, unknown> = { body: "hi" },
): Promise<Response> {
  return fetch(`${base}/v1/mailboxes/${encodeURIComponent(mailbox)}/messages`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}
