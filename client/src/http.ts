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
