import { type Endpoint, mailboxPath, mailboxQuery, requestJson, resolveBaseUrl } from "./http.js";
import type { PresenceAnswer, ReadState, TokenProvider } from "./types.js";

export interface ReaderOptions {
  /** Herald's base URL; defaults to the page's origin. */
  url?: string;
  /** With a token, the reader is its `sub`. */
  token?: TokenProvider;
  /**
   * Without a token (where reads are open), the name the reader goes by. Unauthenticated: anyone may claim it,
   * so a server with auth on keeps it apart from token holders as `anonymous:<name>`.
   */
  reader?: string;
  fetch?: typeof fetch;
}

/** Resolved once per subscription, so its HTTP calls go where and as whom its connection does. */
export interface ReaderEndpoint extends Endpoint {
  readonly reader: string | undefined;
}

export function readerEndpoint(options: ReaderOptions): ReaderEndpoint {
  return {
    baseUrl: resolveBaseUrl(options.url),
    token: options.token,
    reader: options.reader,
    fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
  };
}

function readerQuery(endpoint: ReaderEndpoint): string {
  return endpoint.reader === undefined ? "" : `?${new URLSearchParams({ reader: endpoint.reader })}`;
}

export function putReadMark(endpoint: ReaderEndpoint, mailbox: string, cursor: string): Promise<ReadState> {
  return requestJson(endpoint, `${mailboxPath(mailbox, "read")}${readerQuery(endpoint)}`, {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ cursor }),
  });
}

export async function getReadStates(
  endpoint: ReaderEndpoint,
  mailboxes: readonly string[],
  signal?: AbortSignal,
): Promise<ReadState[]> {
  const query = mailboxQuery(mailboxes, { reader: endpoint.reader });
  return (await requestJson<{ mailboxes: ReadState[] }>(endpoint, `/v1/read?${query}`, { signal })).mailboxes;
}

export function getPresence(endpoint: ReaderEndpoint, mailbox: string, signal?: AbortSignal): Promise<PresenceAnswer> {
  return requestJson(endpoint, mailboxPath(mailbox, "presence"), { signal });
}

/**
 * Moves the reader's read position in `mailbox` forward to `cursor` (a
 * message's cursor) and answers the state after it. The server ignores a
 * position older than the current one and answers the current state; every
 * connection of the reader on the mailbox hears the move as a `read` event.
 */
export function markRead(mailbox: string, cursor: string, options: ReaderOptions = {}): Promise<ReadState> {
  return putReadMark(readerEndpoint(options), mailbox, cursor);
}

/** The reader's read position and unread count: of one mailbox, or of each of several (in the order given). */
export function readState(mailbox: string, options?: ReaderOptions): Promise<ReadState>;
export function readState(mailboxes: readonly string[], options?: ReaderOptions): Promise<ReadState[]>;
export async function readState(
  mailboxes: string | readonly string[],
  options: ReaderOptions = {},
): Promise<ReadState | ReadState[]> {
  const endpoint = readerEndpoint(options);
  if (typeof mailboxes !== "string") return getReadStates(endpoint, mailboxes);
  return requestJson(endpoint, `${mailboxPath(mailboxes, "read")}${readerQuery(endpoint)}`);
}

/** Who is on `mailbox` now, over every node (needs read permission on it). */
export function presence(mailbox: string, options: ReaderOptions = {}): Promise<PresenceAnswer> {
  return getPresence(readerEndpoint(options), mailbox);
}
