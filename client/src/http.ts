import { networkError, responseError } from "./errors.js";
import type { TokenProvider } from "./types.js";

/** The server's base URL: given, or the page's origin in a browser. */
export function resolveBaseUrl(url: string | undefined): string {
  const base = url ?? (globalThis as { location?: { origin?: string } }).location?.origin;
  if (!base) throw new Error("herald client: pass { url } (there is no page origin outside a browser)");
  return base.replace(/\/+$/, "");
}

export function mailboxQuery(mailboxes: readonly string[], extra: Record<string, string | undefined> = {}): string {
  const params = new URLSearchParams();
  for (const mailbox of mailboxes) params.append("mailbox", mailbox);
  for (const [name, value] of Object.entries(extra)) if (value !== undefined) params.set(name, value);
  return params.toString();
}

export async function authHeaders(token: TokenProvider | undefined): Promise<Record<string, string>> {
  const value = await token?.();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

/** The path of one mailbox's `what` (messages, read, presence, latest). */
export function mailboxPath(mailbox: string, what: string): string {
  return `/v1/mailboxes/${encodeURIComponent(mailbox)}/${what}`;
}

/** Where and as whom a client call goes. */
export interface Endpoint {
  readonly baseUrl: string;
  readonly token: TokenProvider | undefined;
  readonly fetch: typeof fetch;
}

/** One JSON request to Herald; throws HeraldClientError (status 0 for the network) on failure. */
export async function requestJson<T>(endpoint: Endpoint, path: string, init: RequestInit = {}): Promise<T> {
  const headers = { ...(init.headers as Record<string, string> | undefined), ...(await authHeaders(endpoint.token)) };
  let response: Response;
  try {
    response = await endpoint.fetch(`${endpoint.baseUrl}${path}`, { ...init, headers, cache: "no-store" });
  } catch (error) {
    throw networkError(error);
  }
  if (!response.ok) throw await responseError(response);
  return (await response.json()) as T;
}
