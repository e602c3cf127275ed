import type { Context } from "hono";
import { MAX_CREDENTIAL_LENGTH, unauthorized } from "../middleware/caller.js";

const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

function decodeBase64(text: string): string | undefined {
  if (text.length > MAX_CREDENTIAL_LENGTH * 2 || !BASE64.test(text)) return undefined;
  // Node reads standard and URL-safe alphabets alike, with or without padding.
  return Buffer.from(text, "base64").toString("utf8");
}

/** `Basic base64(":token")`, as ntfy clients send a token, is `Bearer token`; Herald has no ntfy users. */
function bearerOf(value: string): string {
  const basic = /^Basic\s+(\S+)\s*$/i.exec(value);
  if (basic === null) return value;
  const pair = decodeBase64(basic[1] as string);
  const colon = pair?.indexOf(":") ?? -1;
  if (pair === undefined || colon !== 0 || pair.length === 1) {
    throw unauthorized(
      "Herald has no ntfy users: send a token or API key as the password with an empty username, or Authorization: Bearer",
      "invalid_request",
    );
  }
  return `Bearer ${pair.slice(1)}`;
}

/**
 * Turns what ntfy clients send into the `Authorization: Bearer` Herald's
 * access layer reads: `?auth=` (base64 of the whole Authorization value,
 * which WebSocket and EventSource clients use as they cannot set headers) and
 * Basic auth with an empty username and the token as password. Called before
 * the route authenticates; the request's header is replaced in place.
 */
export function adoptNtfyCredentials(c: Context): void {
  const query = c.req.query("auth") || c.req.query("authorization");
  let value: string | undefined;
  if (query) {
    value = decodeBase64(query)?.trim();
    if (value === undefined || !/^(Bearer|Basic)\s/i.test(value)) {
      throw unauthorized('"auth" must be base64 of an Authorization value such as "Bearer <token>"', "invalid_request");
    }
  } else {
    value = c.req.header("authorization");
    if (value === undefined || !/^Basic\s/i.test(value)) return;
  }
  c.req.raw.headers.set("authorization", bearerOf(value));
}
