import { isLoopbackHost } from "../../auth/binding.js";

/**
 * Which web pages may use Herald from a browser. Two questions:
 * - `corsAllows`: may a page of this origin call Herald cross-origin at all
 *   (CORS headers on answers; the Origin check of anonymous WebSocket
 *   upgrades and publishes, where being able to reach Herald is the only credential)?
 * - `ambientAllows`: may a request that carries the `herald_token` cookie,
 *   which the browser attaches on its own, act from this origin? Only the
 *   server's own origin and exactly listed origins may; `*` never does.
 */
export interface OriginPolicy {
  corsAllows(origin: string): boolean;
  ambientAllows(origin: string, host: string | undefined): boolean;
  /** True when an allowed origin is answered with Access-Control-Allow-Credentials (listed origins with auth on). */
  withCredentials(origin: string): boolean;
  /** True when the CORS answer is a bare `*` for this origin (configured `*`, not listed). */
  wildcard(origin: string): boolean;
}

const LOOPBACK_ORIGIN = /^https?:\/\/(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?$/i;

/** `http://localhost:*`, `http://127.0.0.1:*`, `http://[::1]:*` (and https): pages served from this machine. */
export function isLoopbackOrigin(origin: string): boolean {
  return LOOPBACK_ORIGIN.test(origin);
}

const DEFAULT_PORTS: Readonly<Record<string, string>> = { "http:": "80", "https:": "443", "ws:": "80", "wss:": "443" };

/** host[:port] with the scheme's default port dropped, lower-cased; undefined when unparseable. */
function authorityOf(origin: string): string | undefined {
  try {
    const url = new URL(origin);
    return url.host.toLowerCase();
  } catch {
    return undefined;
  }
}

function hostAuthority(host: string, scheme: string): string {
  const lower = host.toLowerCase();
  const port = DEFAULT_PORTS[scheme];
  return port !== undefined && lower.endsWith(`:${port}`) ? lower.slice(0, -port.length - 1) : lower;
}

/**
 * The page is Herald's own: its origin names the host the request was sent to.
 * Schemes are not compared, since a TLS-terminating proxy talks plain HTTP to Herald.
 */
export function isSameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined || host === "") return false;
  const authority = authorityOf(origin);
  if (authority === undefined) return false;
  const scheme = origin.slice(0, origin.indexOf(":") + 1).toLowerCase();
  return authority === hostAuthority(host, scheme);
}

/**
 * Configured origins win. Without any: with auth on, none (same origin only);
 * without auth, pages on this machine (`localhost`, `127.0.0.1`, `[::1]`, any
 * port), so a site the developer happens to visit cannot use their Herald.
 */
export function createOriginPolicy(configured: readonly string[] | undefined, authOn: boolean): OriginPolicy {
  const listed = new Set((configured ?? []).filter((origin) => origin !== "*"));
  const anyOrigin = configured?.includes("*") ?? false;
  const loopbackDefault = configured === undefined && !authOn;
  return {
    corsAllows: (origin) => listed.has(origin) || anyOrigin || (loopbackDefault && isLoopbackOrigin(origin)),
    ambientAllows: (origin, host) => listed.has(origin) || isSameOrigin(origin, host),
    withCredentials: (origin) => authOn && listed.has(origin),
    wildcard: (origin) => anyOrigin && !listed.has(origin),
  };
}

/** A Host header naming this machine: DNS rebinding makes a hostile name point here, but cannot change Host. */
export function isLoopbackHostHeader(host: string): boolean {
  const name = host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.replace(/:\d*$/, "");
  // Browsers resolve every *.localhost name to loopback themselves (RFC 6761), so no rebinding through them.
  return isLoopbackHost(name) || name.toLowerCase().endsWith(".localhost");
}
