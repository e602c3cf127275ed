import { readFileSync } from "node:fs";
import { isIPv4 } from "node:net";
import { ConfigError } from "../errors.js";
import { type AuthSettings, authEnabled } from "./auth-config.js";
import type { LimitSettings } from "./limits-config.js";
import type { RateSettings } from "./rate-limit.js";

/**
 * Streams and long-polls held at once by default. Each is a socket, i.e. a
 * file descriptor; this stays well below a 20,000 open-file limit, leaving
 * room for publishes, the store and the log.
 */
export const DEFAULT_MAX_CONNECTIONS = 16_000;
/** Sockets accepted beyond maxConnections so publishes and health checks still get in when streams are full. */
export const SOCKET_HEADROOM = 1024;

/** Limits that apply whenever Herald is reachable from elsewhere or auth is on, unless the config says otherwise. */
export const PROTECTED_DEFAULTS = {
  publish: { rate: 20, burst: 40 } satisfies RateSettings,
  streamsPerVisitor: 20,
  longPollsPerVisitor: 20,
  /**
   * Sockets one client address (IPv6: one /64) may hold. Far above what one
   * browser or app needs, far below the server's socket cap: a single host
   * cannot take every socket. Trusted proxies are exempt.
   */
  connectionsPerAddress: 512,
} as const;

/**
 * Webhook deliveries being received at once, per sender address and overall.
 * Each may buffer up to its hook's maxBodyBytes, so these bound that memory.
 */
export const DEFAULT_HOOKS_PER_VISITOR = 8;
export const DEFAULT_MAX_HOOKS_IN_FLIGHT = 64;

export interface ResolvedLimits {
  readonly publish: RateSettings | undefined;
  readonly streamsPerVisitor: number | undefined;
  readonly longPollsPerVisitor: number | undefined;
  readonly maxConnections: number;
  /** Undefined: no cap per address. */
  readonly connectionsPerAddress: number | undefined;
  readonly hooksPerVisitor: number;
  readonly maxHooksInFlight: number;
  readonly trustedProxies: readonly string[];
}

export function isLoopbackHost(host: string): boolean {
  const plain = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (plain === "localhost" || plain === "::1" || plain === "0:0:0:0:0:0:0:1") return true;
  const v4 = plain.startsWith("::ffff:") ? plain.slice(7) : plain;
  return isIPv4(v4) && v4.startsWith("127.");
}

export const AUTH_HELP =
  'configure "auth" in the config file (--config FILE): publisher keys from `herald key create` and a token key ' +
  "(hs256Secret, publicKeyFile or jwksFile), or pass --insecure to serve anyone";

/**
 * Refuses a non-loopback listener without auth unless `insecure`. Returns a
 * warning to log when Herald will serve everyone beyond this machine.
 */
export function checkBinding(host: string, authOn: boolean, insecure: boolean): string | undefined {
  if (authOn || isLoopbackHost(host)) return undefined;
  if (!insecure) throw new ConfigError(`refusing to listen on ${host} without auth: ${AUTH_HELP}`);
  return `listening on ${host} with no auth (--insecure): anyone who can reach it may publish and read every mailbox`;
}

/**
 * On loopback without auth (the try-it-out default) only what the config sets
 * applies; otherwise PROTECTED_DEFAULTS fill the gaps. With several workers
 * each gets its share (shareLimits), except the default connection cap.
 */
export function resolveLimits(limits: LimitSettings, protectedMode: boolean, workers = 1): ResolvedLimits {
  const fallback = protectedMode ? PROTECTED_DEFAULTS : undefined;
  const resolved = shareLimits(
    {
      publish: limits.publish ?? fallback?.publish,
      streamsPerVisitor: limits.streamsPerVisitor ?? fallback?.streamsPerVisitor,
      longPollsPerVisitor: limits.longPollsPerVisitor ?? fallback?.longPollsPerVisitor,
      maxConnections: limits.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      connectionsPerAddress: limits.connectionsPerAddress ?? fallback?.connectionsPerAddress,
      hooksPerVisitor: limits.hooksPerVisitor ?? DEFAULT_HOOKS_PER_VISITOR,
      maxHooksInFlight: limits.maxHooksInFlight ?? DEFAULT_MAX_HOOKS_IN_FLIGHT,
      trustedProxies: limits.trustedProxies,
    },
    workers,
  );
  // The default cap is sized to one process's open files, and every worker has its own.
  return limits.maxConnections === undefined ? { ...resolved, maxConnections: DEFAULT_MAX_CONNECTIONS } : resolved;
}

/**
 * One worker's part of limits meant for the whole server: each of `workers`
 * processes enforces its share of every cap and rate, so together they never
 * exceed what is configured. A visitor whose connections land unevenly on the
 * workers may be refused a little before its total; a share is never below one.
 */
export function shareLimits(limits: ResolvedLimits, workers: number): ResolvedLimits {
  if (workers <= 1) return limits;
  const share = (total: number) => Math.max(1, Math.floor(total / workers));
  const maybe = (total: number | undefined) => (total === undefined ? undefined : share(total));
  return {
    ...limits,
    publish:
      limits.publish === undefined
        ? undefined
        : { rate: limits.publish.rate / workers, burst: share(limits.publish.burst) },
    streamsPerVisitor: maybe(limits.streamsPerVisitor),
    longPollsPerVisitor: maybe(limits.longPollsPerVisitor),
    maxConnections: share(limits.maxConnections),
    connectionsPerAddress: maybe(limits.connectionsPerAddress),
    hooksPerVisitor: share(limits.hooksPerVisitor),
    maxHooksInFlight: share(limits.maxHooksInFlight),
  };
}

/** The soft open-file limit of this process, where the platform tells (Linux /proc). */
export function openFileLimit(): number | undefined {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((row) => row.startsWith("Max open files"));
    const soft = line?.split(/\s{2,}/)[1];
    const value = Number(soft);
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Lines `herald serve` prints at start: the connection cap against the open-file limit, and any risk. */
export function startupNotices(
  host: string,
  auth: AuthSettings | undefined,
  insecure: boolean,
  limits: ResolvedLimits,
  workers = 1,
): string[] {
  const notices: string[] = [];
  const authOn = authEnabled(auth);
  const warning = checkBinding(host, authOn, insecure);
  if (warning !== undefined) notices.push(`WARNING: ${warning}`);
  if (authOn && auth?.reads === "open") {
    notices.push(
      'WARNING: auth.reads is "open": publishing needs a key, but anyone who can reach Herald may read every mailbox',
    );
  }
  if (authOn && auth?.metrics !== "open" && !auth?.keys.some((key) => key.metrics)) {
    notices.push(
      'No key has the "metrics" right: /metrics answers 401 (set auth.metrics to "open" to serve it to anyone)',
    );
  }
  const files = openFileLimit();
  const sockets = limits.maxConnections + SOCKET_HEADROOM;
  // With several workers every figure is one worker's: each is a process with its own open files.
  notices.push(
    `Limits${workers > 1 ? ` per worker (${workers} workers)` : ""}: ${limits.maxConnections} streams and long-polls at once (503 beyond), ${sockets} sockets` +
      (files === undefined ? "" : `, open-file limit ${files}`) +
      (authOn ? `; auth on${auth?.reads === "open" ? " for publishing only" : ""}` : "; no auth"),
  );
  if (limits.connectionsPerAddress !== undefined && limits.trustedProxies.length === 0) {
    notices.push(
      `Sockets per client address: ${limits.connectionsPerAddress} (limits.connectionsPerAddress). Behind a reverse ` +
        "proxy or load balancer, list it in limits.trustedProxies: otherwise all its clients share its address",
    );
  }
  if (files !== undefined && sockets >= files) {
    notices.push(
      `WARNING: ${sockets} sockets would exceed the open-file limit of ${files}; lower limits.maxConnections`,
    );
  }
  return notices;
}
