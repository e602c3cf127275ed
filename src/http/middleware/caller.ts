import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import type { ApiKey, Keyring, ScopeMatcher } from "../../auth/keys.js";
import type { TokenService } from "../../auth/tokens.js";
import type { VisitorId } from "../../auth/visitor.js";
import { HeraldError } from "../../errors.js";

/** Cookie a browser app may set so EventSource and fetch carry the token without a header. */
export const TOKEN_COOKIE = "herald_token";
/** Longest credential read from a header, cookie or query; real keys and tokens are far shorter. */
export const MAX_CREDENTIAL_LENGTH = 8192;

/** Where a request's credential came from; the cookie is the one a browser attaches on its own. */
export type CredentialSource = "header" | "cookie" | "query";

/** Whoever made a request, once authenticated. */
export interface Caller {
  readonly kind: "anonymous" | "key" | "token";
  /** Undefined for an anonymous caller. */
  readonly via: CredentialSource | undefined;
  /** Key name or token subject; "anonymous" otherwise. For logs. */
  readonly name: string;
  readonly visitor: VisitorId;
  /** Epoch ms after which a token holder's streams end; undefined for keys and anonymous callers. */
  readonly expiresAt: number | undefined;
  readonly canRead: ScopeMatcher;
  readonly canPublish: ScopeMatcher;
  readonly key: ApiKey | undefined;
  /** A token's `info` claim (JSON object text): what presence shows others of this caller. */
  readonly info?: string | undefined;
  /** Authenticated by a protocol adapter (Mercure), which alone may reach its reserved mailboxes. */
  readonly adapter?: boolean;
}

export const EVERYTHING: ScopeMatcher = () => true;
export const NOTHING: ScopeMatcher = () => false;

export function unauthorized(message: string, error = ""): HeraldError {
  return new HeraldError("unauthorized", message, {
    "WWW-Authenticate": `Bearer realm="herald"${error ? `, error="${error}"` : ""}`,
  });
}

/**
 * A credential from `Authorization: Bearer`, else `?token=`, else (tokens only)
 * the cookie: one the page chose to send wins over the one the browser attaches.
 */
export function credentialOf(c: Context): { value: string; source: CredentialSource } | undefined {
  const header = c.req.header("authorization");
  if (header !== undefined) {
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) throw unauthorized("Send Authorization: Bearer <key or token>", "invalid_request");
    return { value: match[1], source: "header" };
  }
  const query = c.req.query("token");
  if (query) return { value: query, source: "query" };
  const cookie = getCookie(c, TOKEN_COOKIE);
  return cookie ? { value: cookie, source: "cookie" } : undefined;
}

export interface IdentifyOptions {
  readonly authOn: boolean;
  /** Reading needs no credential. */
  readonly readsOpen: boolean;
  readonly keyring: Keyring;
  /** Set when subscriber tokens are configured. */
  readonly tokens: TokenService | undefined;
  /** The visitor an anonymous request counts as: its client address. */
  readonly addressOf: (c: Context) => VisitorId;
}

function anonymousCaller(visitor: VisitorId, canPublish: ScopeMatcher): Caller {
  return {
    kind: "anonymous",
    via: undefined,
    name: "anonymous",
    visitor,
    expiresAt: undefined,
    canRead: EVERYTHING,
    canPublish,
    key: undefined,
  };
}

/**
 * Who made a request: an API key (header only), a token holder (header,
 * cookie or query), or an anonymous visitor where the mode lets one in. 401
 * for a credential that does not check out, or none where one is needed.
 */
export function createIdentify(options: IdentifyOptions): (c: Context, forPublish: boolean) => Promise<Caller> {
  const { authOn, readsOpen, keyring, tokens, addressOf } = options;
  return async (c, forPublish) => {
    if (!authOn) return anonymousCaller(addressOf(c), EVERYTHING);
    const credential = credentialOf(c);
    if (credential === undefined) {
      if (!forPublish && readsOpen) return anonymousCaller(addressOf(c), NOTHING);
      throw unauthorized(
        forPublish
          ? "Publishing needs Authorization: Bearer <API key or token>"
          : `Reading needs a token: Authorization: Bearer, the ${TOKEN_COOKIE} cookie, or ?token=`,
      );
    }
    if (credential.value.length > MAX_CREDENTIAL_LENGTH)
      throw unauthorized("The credential is too long", "invalid_token");
    const key = credential.source === "header" ? keyring.find(credential.value) : undefined;
    if (key !== undefined) {
      return {
        kind: "key",
        via: "header",
        name: key.name,
        visitor: `key:${key.name}`,
        expiresAt: undefined,
        // An admin key inspects and publishes to any mailbox from the admin console.
        canRead: key.admin ? EVERYTHING : NOTHING,
        canPublish: key.admin ? EVERYTHING : key.canPublish,
        key,
      };
    }
    if (tokens === undefined) throw unauthorized("Unknown API key", "invalid_token");
    const holder = await tokens.verify(credential.value).catch((error: HeraldError) => {
      throw unauthorized(error.message, "invalid_token");
    });
    return {
      kind: "token",
      via: credential.source,
      name: holder.sub,
      visitor: `sub:${holder.sub}`,
      expiresAt: holder.expiresAt,
      canRead: holder.canRead,
      canPublish: holder.canPublish,
      key: undefined,
      info: holder.info,
    };
  };
}
