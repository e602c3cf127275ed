import type { IncomingMessage } from "node:http";
import type { Context } from "hono";
import { type AuthSettings, authEnabled } from "../../auth/auth-config.js";
import type { ResolvedLimits } from "../../auth/binding.js";
import { type ApiKey, createKeyring } from "../../auth/keys.js";
import {
  type ConnectionLimits,
  createConnectionLimits,
  createRateLimiter,
  createSlotLimiter,
  type RateLimiter,
  type SlotLimiter,
} from "../../auth/rate-limit.js";
import { createTokenService, type TokenService, type TokenSettings } from "../../auth/tokens.js";
import { addressVisitor, clientAddress, createTrustedProxies, type VisitorId } from "../../auth/visitor.js";
import type { Publisher } from "../../core/publish-command.js";
import { HeraldError } from "../../errors.js";
import { type Caller, createIdentify, credentialOf, unauthorized } from "./caller.js";
import { createOriginPolicy, type OriginPolicy } from "./origin-policy.js";

/** A caller as the publish command sees it. */
class CallerPublisher implements Publisher {
  readonly name: string;
  readonly #caller: Caller;
  readonly #check: (caller: Caller, mailboxes: readonly string[]) => void;
  readonly #charge: (visitor: VisitorId) => void;

  constructor(
    caller: Caller,
    check: (caller: Caller, mailboxes: readonly string[]) => void,
    charge: (visitor: VisitorId) => void,
  ) {
    this.name = caller.name;
    this.#caller = caller;
    this.#check = check;
    this.#charge = charge;
  }

  authorize(mailboxes: readonly string[]): void {
    this.#check(this.#caller, mailboxes);
  }

  charge(): void {
    this.#charge(this.#caller.visitor);
  }
}

/** Seconds a client is told to wait when the whole server is full. */
const SERVER_FULL_RETRY_SECONDS = 5;

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
  /** The caller as the publish command sees it: its patterns and its rate bucket. */
  publisherFor(caller: Caller): Publisher;
  /**
   * A webhook's deliveries as a publisher: the signature stands in for a key
   * (so any mailbox), and the hook has its own publish-rate bucket.
   */
  hookPublisher(hookId: string): Publisher;
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
  keyWithRight(c: Context, right: "tokens" | "metrics" | "admin"): ApiKey;
  /** The caller a request was authenticated as, for the request log. */
  callerOf(request: IncomingMessage): Caller | undefined;
  /**
   * Takes in a caller a protocol adapter authenticated by its own rules (a
   * Mercure token): the request log names it, and its limits are the client
   * address's.
   */
  adopt(c: Context, caller: Omit<Caller, "visitor" | "adapter">): Caller;
}

export interface AccessOptions {
  /** Herald listens on a loopback address. */
  readonly loopback: boolean;
  /** --insecure: the operator chose to serve anyone, whatever name they use. */
  readonly insecure: boolean;
  /**
   * Mailboxes only a protocol adapter reaches (the Mercure hub's): no route,
   * token scope or webhook reads or writes them, so their private updates and
   * their format stay the adapter's to enforce.
   */
  readonly reservedMailboxes?: ReadonlySet<string>;
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
  const identify = createIdentify({ authOn, readsOpen, keyring, tokens, addressOf });
  const fail = (error: HeraldError): HeraldError => {
    if (error.code === "unauthorized" || error.code === "forbidden") counters.authFailures[error.code] += 1;
    return error;
  };
  const remember = (c: Context, caller: Caller): Caller => {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    if (incoming) callers.set(incoming, caller);
    return caller;
  };

  const reserved = options.reservedMailboxes ?? new Set<string>();
  const checkReserved = (caller: Caller | undefined, mailboxes: readonly string[]): void => {
    if (reserved.size === 0 || caller?.adapter === true) return;
    const taken = mailboxes.find((mailbox) => reserved.has(mailbox));
    if (taken === undefined) return;
    throw fail(
      new HeraldError("forbidden", `"${taken}" is reserved for the Mercure hub; use /.well-known/mercure to reach it`),
    );
  };

  const checkPublish = (caller: Caller, mailboxes: readonly string[]): void => {
    checkReserved(caller, mailboxes);
    const denied = mailboxes.find((mailbox) => !caller.canPublish(mailbox));
    if (denied !== undefined) throw forbidden(caller, "publish to", denied);
  };

  const charge = (visitor: VisitorId): void => {
    const taken = publishRate?.take(visitor);
    if (taken === undefined || taken.ok) return;
    counters.rateLimited.publish += 1;
    throw new HeraldError("too_many_requests", `Publish rate limit reached; retry in ${taken.retryAfterSeconds} s`, {
      "Retry-After": String(taken.retryAfterSeconds),
    });
  };

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
      checkReserved(caller, mailboxes);
      const denied = mailboxes.find((mailbox) => !caller.canRead(mailbox));
      if (denied === undefined) return;
      if (caller.kind === "anonymous") throw fail(unauthorized("Reading this mailbox needs a token"));
      throw forbidden(caller, "read", denied);
    },
    checkPublish,
    publisherFor(caller) {
      // A class, not an object of arrows: a build that keeps function names would name them on every publish.
      return new CallerPublisher(caller, checkPublish, charge);
    },
    hookPublisher(hookId) {
      return {
        name: `hook:${hookId}`,
        authorize: (mailboxes) => checkReserved(undefined, mailboxes),
        charge: () => charge(`hook:${hookId}`),
      };
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
      const holds = right === "tokens" ? key.tokens !== undefined : key[right];
      if (!holds) throw fail(new HeraldError("forbidden", `The key "${key.name}" lacks the "${right}" right`));
      return key;
    },
    callerOf: (request) => callers.get(request),
    adopt: (c, caller) => remember(c, { ...caller, visitor: addressOf(c), adapter: true }),
  };
}
