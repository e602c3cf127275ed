import type { IncomingMessage } from "node:http";
import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import type { AuthSettings } from "../auth/auth-config.js";
import type { ResolvedLimits } from "../auth/binding.js";
import { type ApiKey, createKeyring, type ScopeMatcher } from "../auth/keys.js";
import {
  type ConnectionLimits,
  createConnectionLimits,
  createRateLimiter,
  type RateLimiter,
} from "../auth/rate-limit.js";
import { createTokenService, type TokenService, type TokenSettings } from "../auth/tokens.js";
import { addressVisitor, clientAddress, createTrustedProxies, type VisitorId } from "../auth/visitor.js";
import { HeraldError } from "../core/errors.js";

/** Cookie a browser app may set so EventSource and fetch carry the token without a header. */
export const TOKEN_COOKIE = "herald_token";
/** Longest credential read from a header, cookie or query; real keys and tokens are far shorter. */
export const MAX_CREDENTIAL_LENGTH = 8192;
/** Seconds a client is told to wait when the whole server is full. */
const SERVER_FULL_RETRY_SECONDS = 5;

/** Whoever made a request, once authenticated. */
export interface Caller {
  readonly kind: "anonymous" | "key" | "token";
  /** Key name or token subject; "anonymous" otherwise. For logs. */
  readonly name: string;
  readonly visitor: VisitorId;
  /** Epoch ms after which a token holder's streams end; undefined for keys and anonymous callers. */
  readonly expiresAt: number | undefined;
  readonly canRead: ScopeMatcher;
  readonly canPublish: ScopeMatcher;
  readonly key: ApiKey | undefined;
}

export type HeldKind = "stream" | "long-poll";

/** Counts behind /metrics. */
export interface SecurityCounters {
  readonly authFailures: Record<"unauthorized" | "forbidden", number>;
  readonly rateLimited: Record<"publish" | HeldKind, number>;
  serverFull: number;
}

/**
 * The one gate every route passes: who is calling, may they touch these
 * mailboxes, and is there room. With no auth configured every caller is an
 * anonymous visitor (by client address) allowed everything, and only the
 * configured limits apply.
 */
export interface Access {
  readonly authOn: boolean;
  /** True when some key holds the "metrics" right: /metrics then needs one. */
  readonly metricsProtected: boolean;
  /** Origins from the config's auth.cors; undefined means the mode's default. */
  readonly corsOrigins: readonly string[] | undefined;
  readonly limits: ResolvedLimits;
  readonly counters: SecurityCounters;
  readonly connections: ConnectionLimits;
  /** Set when subscriber tokens are configured. */
  readonly tokens: { readonly service: TokenService; readonly settings: TokenSettings } | undefined;
  /** 401 without a valid credential, where one is required. `forPublish` demands one whenever auth is on. */
  authenticate(c: Context, forPublish: boolean): Promise<Caller>;
  /** 403 unless the caller may read every mailbox. */
  checkRead(caller: Caller, mailboxes: readonly string[]): void;
  /** 403 unless the caller may publish to every mailbox. */
  checkPublish(caller: Caller, mailboxes: readonly string[]): void;
  /** Charges one publish to the caller's bucket; 429 with Retry-After when empty. */
  chargePublish(caller: Caller): void;
  /** Takes a connection slot, returning its release; 429 when the visitor holds too many, 503 when the server is full. */
  hold(caller: Caller, kind: HeldKind): () => void;
  /** The caller's key when it holds `right`; 401 without a key, 403 without the right. */
  keyWithRight(c: Context, right: "tokens" | "metrics"): ApiKey;
  /** The caller a request was authenticated as, for the request log. */
  callerOf(request: IncomingMessage): Caller | undefined;
}

const EVERYTHING: ScopeMatcher = () => true;
const NOTHING: ScopeMatcher = () => false;

function unauthorized(message: string, error = ""): HeraldError {
  return new HeraldError("unauthorized", message, {
    "WWW-Authenticate": `Bearer realm="herald"${error ? `, error="${error}"` : ""}`,
  });
}

/** A credential from `Authorization: Bearer`, else (tokens only) the cookie, else `?token=`. */
function credentialOf(c: Context): { value: string; fromHeader: boolean } | undefined {
  const header = c.req.header("authorization");
  if (header !== undefined) {
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) throw unauthorized("Send Authorization: Bearer <key or token>", "invalid_request");
    return { value: match[1], fromHeader: true };
  }
  const value = getCookie(c, TOKEN_COOKIE) || c.req.query("token");
  return value ? { value, fromHeader: false } : undefined;
}

export async function createAccess(auth: AuthSettings | undefined, limits: ResolvedLimits): Promise<Access> {
  const keyring = createKeyring(auth?.keys ?? []);
  const tokenSettings = auth?.tokens;
  const tokens = tokenSettings === undefined ? undefined : await createTokenService(tokenSettings);
  const authOn = auth !== undefined;
  // With keys but no token key, subscribers have nothing to present: reading stays open.
  const readsOpen = !authOn || tokens === undefined;
  const trusted = createTrustedProxies(limits.trustedProxies);
  const publishRate: RateLimiter | undefined = limits.publish ? createRateLimiter(limits.publish) : undefined;
  const connections = createConnectionLimits(limits);
  const callers = new WeakMap<IncomingMessage, Caller>();
  const counters: SecurityCounters = {
    authFailures: { unauthorized: 0, forbidden: 0 },
    rateLimited: { publish: 0, stream: 0, "long-poll": 0 },
    serverFull: 0,
  };

  const addressOf = (c: Context): VisitorId => {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    return addressVisitor(clientAddress(incoming?.socket.remoteAddress, c.req.header("x-forwarded-for"), trusted));
  };
  const fail = (error: HeraldError): HeraldError => {
    if (error.code === "unauthorized" || error.code === "forbidden") counters.authFailures[error.code] += 1;
    return error;
  };
  const remember = (c: Context, caller: Caller): Caller => {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    if (incoming) callers.set(incoming, caller);
    return caller;
  };

  async function identify(c: Context, forPublish: boolean): Promise<Caller> {
    const anonymous = (canPublish: ScopeMatcher): Caller => ({
      kind: "anonymous",
      name: "anonymous",
      visitor: addressOf(c),
      expiresAt: undefined,
      canRead: EVERYTHING,
      canPublish,
      key: undefined,
    });
    if (!authOn) return anonymous(EVERYTHING);
    const credential = credentialOf(c);
    if (credential === undefined) {
      if (!forPublish && readsOpen) return anonymous(NOTHING);
      throw unauthorized(
        forPublish
          ? "Publishing needs Authorization: Bearer <API key or token>"
          : `Reading needs a token: Authorization: Bearer, the ${TOKEN_COOKIE} cookie, or ?token=`,
      );
    }
    if (credential.value.length > MAX_CREDENTIAL_LENGTH)
      throw unauthorized("The credential is too long", "invalid_token");
    const key = credential.fromHeader ? keyring.find(credential.value) : undefined;
    if (key !== undefined) {
      return {
        kind: "key",
        name: key.name,
        visitor: `key:${key.name}`,
        expiresAt: undefined,
        canRead: NOTHING,
        canPublish: key.canPublish,
        key,
      };
    }
    if (tokens === undefined) throw unauthorized("Unknown API key", "invalid_token");
    const holder = await tokens.verify(credential.value).catch((error: HeraldError) => {
      throw unauthorized(error.message, "invalid_token");
    });
    return {
      kind: "token",
      name: holder.sub,
      visitor: `sub:${holder.sub}`,
      expiresAt: holder.expiresAt,
      canRead: holder.canRead,
      canPublish: holder.canPublish,
      key: undefined,
    };
  }

  const forbidden = (caller: Caller, verb: string, mailbox: string): HeraldError => {
    const hint = caller.kind === "key" && verb === "read" ? "; API keys publish, subscribers read with tokens" : "";
    return fail(
      new HeraldError(
        "forbidden",
        `This ${caller.kind === "key" ? "key" : "token"} may not ${verb} "${mailbox}"${hint}`,
      ),
    );
  };

  return {
    authOn,
    metricsProtected: (auth?.keys ?? []).some((key) => key.metrics),
    corsOrigins: auth?.corsOrigins,
    limits,
    counters,
    connections,
    tokens: tokens && tokenSettings ? { service: tokens, settings: tokenSettings } : undefined,
    async authenticate(c, forPublish) {
      try {
        return remember(c, await identify(c, forPublish));
      } catch (error) {
        throw error instanceof HeraldError ? fail(error) : error;
      }
    },
    checkRead(caller, mailboxes) {
      const denied = mailboxes.find((mailbox) => !caller.canRead(mailbox));
      if (denied === undefined) return;
      if (caller.kind === "anonymous") throw fail(unauthorized("Reading this mailbox needs a token"));
      throw forbidden(caller, "read", denied);
    },
    checkPublish(caller, mailboxes) {
      const denied = mailboxes.find((mailbox) => !caller.canPublish(mailbox));
      if (denied !== undefined) throw forbidden(caller, "publish to", denied);
    },
    chargePublish(caller) {
      const taken = publishRate?.take(caller.visitor);
      if (taken === undefined || taken.ok) return;
      counters.rateLimited.publish += 1;
      throw new HeraldError("too_many_requests", `Publish rate limit reached; retry in ${taken.retryAfterSeconds} s`, {
        "Retry-After": String(taken.retryAfterSeconds),
      });
    },
    hold(caller, kind) {
      const slots = kind === "stream" ? connections.streams : connections.longPolls;
      const result = slots.acquire(caller.visitor);
      if (typeof result === "function") return result;
      if (result === "server-full") {
        counters.serverFull += 1;
        throw new HeraldError("server_full", undefined, { "Retry-After": String(SERVER_FULL_RETRY_SECONDS) });
      }
      counters.rateLimited[kind] += 1;
      const cap = kind === "stream" ? limits.streamsPerVisitor : limits.longPollsPerVisitor;
      throw new HeraldError("too_many_requests", `At most ${cap} ${kind}s open at once per client; close one first`, {
        "Retry-After": "1",
      });
    },
    keyWithRight(c, right) {
      const credential = credentialOf(c);
      const key = credential?.fromHeader ? keyring.find(credential.value) : undefined;
      if (key === undefined)
        throw fail(unauthorized(`This needs Authorization: Bearer <API key with the "${right}" right>`));
      if (!key[right]) throw fail(new HeraldError("forbidden", `The key "${key.name}" lacks the "${right}" right`));
      return key;
    },
    callerOf: (request) => callers.get(request),
  };
}

/** A reader let in, holding a connection slot until `release` (idempotent). */
export interface ReadGrant {
  readonly caller: Caller;
  readonly release: () => void;
}

/** Every read route calls this with every mailbox it touches: 401, 403, 429 or 503, else a grant. */
export async function admitReader(
  c: Context,
  access: Access,
  mailboxes: readonly string[],
  hold: HeldKind | undefined,
): Promise<ReadGrant> {
  const caller = await access.authenticate(c, false);
  access.checkRead(caller, mailboxes);
  return { caller, release: hold === undefined ? () => {} : access.hold(caller, hold) };
}

/** Every publish route calls this before reading the body, then `checkPublish` with the mailboxes. */
export async function admitPublisher(c: Context, access: Access): Promise<Caller> {
  const caller = await access.authenticate(c, true);
  access.chargePublish(caller);
  return caller;
}
