import { join, resolve } from "node:path";
import type { AuthSettings } from "./auth/auth-config.js";
import type { ServeConfig } from "./config.js";
import type { HookDefinition } from "./hooks/hook-config.js";
import { SQLITE_FILE_NAME } from "./store/sqlite-store.js";

/** The URL a listener on `host` and `port` is reached at (an IPv6 address in brackets). */
export function listeningUrl(host: string, port: number): string {
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Where the messages live, said so an operator knows what a restart keeps; no credentials. */
function storeLine(config: ServeConfig): string {
  if (config.store === "memory") return "memory (lost on restart)";
  if (config.store === "sqlite") {
    return `sqlite, ${join(resolve(config.dataDir), SQLITE_FILE_NAME)} (sync ${config.sqliteSync})`;
  }
  let where = config.redisUrl;
  try {
    const url = new URL(config.redisUrl.replace(/^redis-cluster:\/\//, "redis://"));
    where = `${config.redisUrl.split("://")[0]}://${url.host}`;
  } catch {
    // parseServeConfig already checked it; keep the text as given, minus nothing secret we can find.
  }
  return `redis, ${where} (prefix ${config.redisPrefix})`;
}

function authLine(auth: AuthSettings | undefined, insecure: boolean): string {
  const keys = auth?.keys.length ?? 0;
  if (keys === 0 && auth?.tokens === undefined) {
    return insecure ? "off, --insecure: anyone who reaches the port may publish and read" : "off (loopback only)";
  }
  const parts = [`${keys} API key${keys === 1 ? "" : "s"}`];
  if (auth?.tokens) parts.push("subscriber tokens");
  if (auth?.reads === "open") parts.push("reads open");
  return parts.join(", ");
}

/** The lines `herald serve` prints once listening: where, the demos, the store, auth and hooks. */
export function startupBanner(
  url: string,
  config: ServeConfig,
  auth: AuthSettings | undefined,
  hooks: readonly HookDefinition[],
): string[] {
  return [
    `Herald listening on ${url} (${config.store} store)`,
    `  demos  ${url}/`,
    `  store  ${storeLine(config)}`,
    `  auth   ${authLine(auth, config.insecure)}`,
    `  hooks  ${hooks.length === 0 ? "none" : hooks.map((hook) => `/v1/hooks/${hook.id} (${hook.scheme})`).join(", ")}`,
  ];
}
