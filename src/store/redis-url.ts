import { ConfigError } from "../errors.js";

/** `redis-cluster://[user:pass@]host:port,host:port,...`: seed nodes of a Redis Cluster. */
export const CLUSTER_SCHEME = "redis-cluster:";
const SINGLE_SCHEMES = new Set(["redis:", "rediss:"]);
const MAX_PORT = 65_535;

export interface RedisSeed {
  readonly host: string;
  readonly port: number;
}

/** Where the Redis store connects: one server (ioredis reads the URL itself) or a Cluster's seeds. */
export type RedisTarget =
  | { readonly cluster: false; readonly url: string }
  | { readonly cluster: true; readonly seeds: RedisSeed[]; readonly auth: RedisAuth };

export interface RedisAuth {
  readonly username?: string;
  readonly password?: string;
}

/** The URL for a message: credentials never reach a terminal or a log. */
function shown(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/).*@/i, "$1***@");
}

function decoded(part: string, what: string, url: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new ConfigError(`${what} has a malformed %-escape in its credentials: "${shown(url)}"`);
  }
}

function clusterTarget(url: string, what: string): RedisTarget {
  const usage = `${CLUSTER_SCHEME}//[user:password@]host:port,host:port,...`;
  const rest = url.slice(`${CLUSTER_SCHEME}//`.length).replace(/\/$/, "");
  const at = rest.lastIndexOf("@");
  const hosts = rest.slice(at + 1);
  if (hosts.includes("/") || hosts.includes("?")) {
    throw new ConfigError(
      `${what} must be ${usage} (a Cluster has no database number or options), got "${shown(url)}"`,
    );
  }
  if (hosts === "") throw new ConfigError(`${what} lists no seeds: it must be ${usage}, got "${shown(url)}"`);
  const seeds = hosts.split(",").map((hostPort) => {
    const match = /^(\[[0-9a-f:.]+\]|[^:[\]\s]+):(\d{1,5})$/i.exec(hostPort);
    const port = Number(match?.[2]);
    if (!match || port < 1 || port > MAX_PORT) {
      throw new ConfigError(
        `${what} must be ${usage}; "${hostPort}" is not a host:port (port 1 to ${MAX_PORT}), in "${shown(url)}"`,
      );
    }
    return { host: (match[1] as string).replace(/^\[|\]$/g, ""), port };
  });
  return { cluster: true, seeds, auth: at === -1 ? {} : clusterAuth(rest.slice(0, at), what, url) };
}

function clusterAuth(credentials: string, what: string, url: string): RedisAuth {
  const colon = credentials.indexOf(":");
  // A lone word before @ is a password: Redis before ACLs had no user names.
  if (colon === -1) return { password: decoded(credentials, what, url) };
  const username = decoded(credentials.slice(0, colon), what, url);
  const password = decoded(credentials.slice(colon + 1), what, url);
  return username ? { username, password } : { password };
}

function singleTarget(url: string, what: string): RedisTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${what} is not a valid URL: "${shown(url)}"`);
  }
  if (!parsed.hostname) throw new ConfigError(`${what} names no host: "${shown(url)}"`);
  if (!/^\/?(\d+)?$/.test(parsed.pathname)) {
    throw new ConfigError(`${what} may end only in a database number (/0, /1, ...), got "${shown(url)}"`);
  }
  decoded(parsed.username, what, url);
  decoded(parsed.password, what, url);
  return { cluster: false, url };
}

/**
 * Reads a Redis URL: `redis://[user:password@]host[:port][/db]`, `rediss://`
 * (TLS) or `redis-cluster://`. Anything else, or a malformed one, is a
 * ConfigError naming `what` (the setting), with any password masked.
 */
export function parseRedisUrl(url: string, what = "the Redis URL"): RedisTarget {
  const scheme = /^([a-z][a-z0-9+.-]*:)\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === CLUSTER_SCHEME) return clusterTarget(url, what);
  if (scheme !== undefined && SINGLE_SCHEMES.has(scheme)) return singleTarget(url, what);
  throw new ConfigError(`${what} must start with redis://, rediss:// or ${CLUSTER_SCHEME}//, got "${shown(url)}"`);
}
