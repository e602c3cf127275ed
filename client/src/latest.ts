import { mailboxPath, requestJson, resolveBaseUrl } from "./http.js";
import type { LatestSnapshot, TokenProvider } from "./types.js";

export interface LatestOptions {
  /** Herald's base URL; defaults to the page's origin. */
  url?: string;
  token?: TokenProvider;
  /** Keys answered at most (the server's default 100, at most 1000); the most recently published win. */
  limit?: number;
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

/**
 * The current value of each key of `mailbox`: its newest retained message per `key` (messages without a key
 * are left out), in seq order, and the cursor at the log's head. Show the snapshot, then subscribe from its
 * cursor (with `mode: "latest"` for a dashboard): nothing is missed and nothing of the snapshot comes again.
 * Throws HeraldClientError.
 */
export function latest(mailbox: string, options: LatestOptions = {}): Promise<LatestSnapshot> {
  const endpoint = {
    baseUrl: resolveBaseUrl(options.url),
    token: options.token,
    fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
  };
  const query = options.limit === undefined ? "" : `?${new URLSearchParams({ limit: String(options.limit) })}`;
  return requestJson(endpoint, `${mailboxPath(mailbox, "latest")}${query}`, {
    ...(options.signal ? { signal: options.signal } : {}),
  });
}
