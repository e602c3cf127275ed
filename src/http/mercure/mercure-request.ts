import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import { HeraldError } from "../../errors.js";
import type { MercureHub } from "../../mercure/mercure-hub.js";
import type { MercureGrant } from "../../mercure/mercure-token.js";
import type { AppDeps } from "../deps.js";
import type { Access } from "../middleware/access.js";
import { type Caller, type CredentialSource, MAX_CREDENTIAL_LENGTH, NOTHING } from "../middleware/caller.js";

/** The hub's path; the standard's default, which Mercure clients find without configuration. */
export const MERCURE_PATH = "/.well-known/mercure";
/** The standard's cookie, then the pre-standard one. */
const TOKEN_COOKIES = ["__Secure-mercure_access_token", "mercureAuthorization"] as const;

export function mercureOf(deps: AppDeps): MercureHub {
  if (deps.mercure === undefined) {
    throw new HeraldError("not_found", 'This server runs no Mercure hub; add a "mercure" section to the config file');
  }
  return deps.mercure;
}

/** The hub's URL as this request reached it: the base of relative topics and patterns, and the default token audience. */
export function hubUrlOf(c: Context): string {
  return new URL(MERCURE_PATH, c.req.url).href;
}

export interface PresentedToken {
  readonly token: string;
  readonly via: CredentialSource;
}

/**
 * The access token: `Authorization: Bearer` wins; else the cookie; else the
 * pre-standard `authorization` query parameter. Malformed: 400 invalid_request.
 */
export function presentedToken(c: Context): PresentedToken | undefined {
  const invalid = (message: string) =>
    new HeraldError("bad_parameter", message, { "WWW-Authenticate": 'Bearer error="invalid_request"' });
  const header = c.req.header("authorization");
  if (header !== undefined) {
    const match = /^Bearer[ ]+([\x21-\x7e]+)\s*$/i.exec(header);
    if (!match?.[1] || match[1].length > MAX_CREDENTIAL_LENGTH) throw invalid("Send Authorization: Bearer <token>");
    return { token: match[1], via: "header" };
  }
  for (const name of TOKEN_COOKIES) {
    const cookie = getCookie(c, name);
    if (cookie) {
      if (cookie.length > MAX_CREDENTIAL_LENGTH) throw invalid(`The ${name} cookie is too long`);
      return { token: cookie, via: "cookie" };
    }
  }
  const query = c.req.query("authorization");
  if (query) {
    if (query.length > MAX_CREDENTIAL_LENGTH) throw invalid("The authorization parameter is too long");
    return { token: query, via: "query" };
  }
  return undefined;
}

/** The Mercure client as Herald's limits and logs see it: its address's slots and rate, its token's expiry. */
export function mercureCaller(
  c: Context,
  access: Access,
  presented: PresentedToken | undefined,
  grant: MercureGrant | undefined,
  mailbox: string,
): Caller {
  return access.adopt(c, {
    kind: grant ? "token" : "anonymous",
    via: presented?.via,
    name: grant ? `mercure:${grant.subject ?? "token"}` : "anonymous",
    expiresAt: grant?.expiresAt,
    canRead: NOTHING,
    canPublish: (name) => name === mailbox,
    key: undefined,
  });
}
