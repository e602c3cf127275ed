import type { IncomingMessage } from "node:http";
import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import { type AuthSettings, authEnabled } from "../auth/auth-config.js";
import type { ResolvedLimits } from "../auth/binding.js";
import { type ApiKey, createKeyring, type ScopeMatcher } from "../auth/keys.js";
import {
  type ConnectionLimits,
  createConnectionLimits,
  createRateLimiter,
  createSlotLimiter,
  type RateLimiter,
  type SlotLimiter,
} from "../auth/rate-limit.js";
import { createTokenService, type TokenService, type TokenSettings } from "../auth/tokens.js";
import { addressVisitor, clientAddress, createTrustedProxies, type VisitorId } from "../auth/visitor.js";
import { HeraldError } from "../errors.js";
import { createOriginPolicy, type OriginPolicy } from "./origin-policy.js";

/** Cookie a browser app may set so EventSource and fetch carry the token without a header. */
export const TOKEN_COOKIE = "herald_token";
/** Longest credential read from a header, cookie or query; real keys and tokens are far shorter. */
export const MAX_CREDENTIAL_LENGTH = 8192;
/** Seconds a client is told to wait when the whole server is full. */
const SERVER_FULL_RETRY_SECONDS = 5;

/** Where a request's credential came from; the cookie is the one a browser attaches on its own. */
export type CredentialSource = "header" | "cookie" | "query";

/** Whoever made a request, once authenticated. */
export interface Caller {
  readonly kind: "anonymous" | "key" | "token";
  /** Undefined for an anonymous caller. */
  readonly via: CredentialSource | undefined;
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
  readonly rateLimited: Record<"publish" | HeldKind | "hook" | "connection", number>;
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
  /** With auth on, /metrics needs a key with the "metrics" right unless auth.metrics is "open". */
  readonly metricsProtected: boolean;
  /** True when reading needs no credential (no auth, or auth.reads "open"). */
  readonly readsOpen: boolean;
  /** Which web pages may use Herald from a browser. */
  readonly origins: OriginPolicy;
  /** Loopback without auth: requests must name a loopback Host (no DNS rebinding). */
  readonly loopbackHostsOnly: boolean;
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
  /**
   * Takes a webhook-receiving slot for the sender's address before its body is
   * read, returning its release; 429 when that address or the server has too many in flight.
   */
  holdHook(c: Context): () => void;
  /**
   * Counts a new TCP connection against its address (limits.connectionsPerAddress;
   * trusted proxies are exempt). Returns its release, or undefined when the address holds too many.
   */
  holdSocket(remoteAddress: string | undefined): (() => void) | undefined;
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
function credentialOf(c: Context): { value: string; source: CredentialSource } | undefined {
  const header = c.req.header("authorization");
  if (header !== undefined) {
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) throw unauthorized("Send Authorization: Bearer <key or token>", "invalid_request");
    return { value: match[1], source: "header" };
  }
  const cookie = getCookie(c, TOKEN_COOKIE);
  if (cookie) return { value: cookie, source: "cookie" };
  const query = c.req.query("token");
  return query ? { value: query, source: "query" } : undefined;
}

export interface AccessOptions {
  /** Herald listens on a loopback address. */
  readonly loopback: boolean;
  /** --insecure: the operator chose to serve anyone, whatever name they use. */
  readonly insecure: boolean;
}

export async function createAccess(
  auth: AuthSettings | undefined,
  limits: ResolvedLimits,
  options: AccessOptions,
): Promise<Access> {
  const keyring = createKeyring(auth?.keys ?? []);
  const tokenSettings = auth?.tokens;
  const tokens = tokenSettings === undefined ? undefined : await createTokenService(tokenSettings);
  const authOn = authEnabled(auth);
  const readsOpen = !authOn || auth?.reads === "open";
  const trusted = createTrustedProxies(limits.trustedProxies);
  const publishRate: RateLimiter | undefined = limits.publish ? createRateLimiter(limits.publish) : undefined;
  const connections = createConnectionLimits(limits);
  const socketSlots: SlotLimiter = createSlotLimiter(limits.connectionsPerAddress, () => ({
    total: 0,
    max: Number.POSITIVE_INFINITY,
  }));
  const hookSlots: SlotLimiter = createSlotLimiter(limits.hooksPerVisitor, () => ({
    total: hookSlots.total,
    max: limits.maxHooksInFlight,
  }));
  const callers = new WeakMap<IncomingMessage, Caller>();
  const counters: SecurityCounters = {
    authFailures: { unauthorized: 0, forbidden: 0 },
    rateLimited: { publish: 0, stream: 0, "long-poll": 0, hook: 0, connection: 0 },
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
      via: undefined,
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
    const key = credential.source === "header" ? keyring.find(credential.value) : undefined;
    if (key !== undefined) {
      return {
        kind: "key",
        via: "header",
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
      via: credential.source,
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
    metricsProtected: authOn && auth?.metrics !== "open",
    readsOpen,
    origins: createOriginPolicy(auth?.corsOrigins, authOn),
    loopbackHostsOnly: !authOn && options.loopback && !options.insecure,
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
    holdHook(c) {
      const result = hookSlots.acquire(addressOf(c));
      if (typeof result === "function") return result;
      counters.rateLimited.hook += 1;
      const cap =
        result === "visitor-full" ? `${limits.hooksPerVisitor} per sender` : `${limits.maxHooksInFlight} in all`;
      throw new HeraldError("too_many_requests", `At most ${cap} webhook deliveries are received at once`, {
        "Retry-After": "1",
      });
    },
    holdSocket(remoteAddress) {
      if (limits.connectionsPerAddress === undefined) return () => {};
      const address = remoteAddress ?? "unknown";
      if (trusted.has(address)) return () => {};
      const result = socketSlots.acquire(addressVisitor(address));
      if (typeof result === "function") return result;
      counters.rateLimited.connection += 1;
      return undefined;
    },
    keyWithRight(c, right) {
      const credential = credentialOf(c);
      const key = credential?.source === "header" ? keyring.find(credential.value) : undefined;
      if (key === undefined)
        throw fail(unauthorized(`This needs Authorization: Bearer <API key with the "${right}" right>`));
      const holds = right === "tokens" ? key.tokens !== undefined : key.metrics;
      if (!holds) throw fail(new HeraldError("forbidden", `The key "${key.name}" lacks the "${right}" right`));
      return key;
    },
    callerOf: (request) => callers.get(request),
  };
}
