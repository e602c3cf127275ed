import { SignJWT } from "jose";
import { type MercureSettings, parseMercureSection } from "../../src/mercure/mercure-config.js";
import { MERCURE_DETAIL_TYPE } from "../../src/mercure/mercure-token.js";

/** The reference hub's development secret, which the conformance suite's token is signed with. */
export const MERCURE_SECRET = "!ChangeThisMercureHubJWTSecretKey!";
export const MERCURE_ISSUER = "https://localhost";
export const MERCURE_AUDIENCE = "https://localhost/.well-known/mercure";

/** Hub settings as a config file would give them: one HS256 key of MERCURE_ISSUER. */
export function mercureSettings(overrides: Record<string, unknown> = {}): MercureSettings {
  return parseMercureSection(
    {
      keys: [{ alg: "HS256", secret: MERCURE_SECRET, issuer: MERCURE_ISSUER }],
      audience: MERCURE_AUDIENCE,
      ...overrides,
    },
    {},
  );
}

export interface TopicGrant {
  readonly match: string;
  readonly match_type?: "exact" | "urlpattern";
}

export interface AccessTokenOptions {
  readonly publish?: readonly TopicGrant[];
  readonly subscribe?: readonly TopicGrant[];
  readonly payload?: Record<string, unknown>;
  readonly audience?: string;
  readonly issuer?: string;
  readonly secret?: string;
  readonly expiresInSeconds?: number;
  readonly typ?: string;
}

/** An RFC 9068 access token with Mercure authorization details, as the standard asks. */
export async function accessToken(options: AccessTokenOptions): Promise<string> {
  const details: Record<string, unknown>[] = [];
  if (options.publish) details.push({ type: MERCURE_DETAIL_TYPE, actions: ["publish"], topics: options.publish });
  if (options.subscribe) {
    details.push({
      type: MERCURE_DETAIL_TYPE,
      actions: ["subscribe"],
      topics: options.subscribe,
      ...(options.payload ? { payload: options.payload } : {}),
    });
  }
  return new SignJWT({ authorization_details: details, client_id: "tests" })
    .setProtectedHeader({ alg: "HS256", typ: options.typ ?? "at+jwt" })
    .setIssuer(options.issuer ?? MERCURE_ISSUER)
    .setAudience(options.audience ?? MERCURE_AUDIENCE)
    .setSubject("tester")
    .setIssuedAt()
    .setJti(crypto.randomUUID())
    .setExpirationTime(`${options.expiresInSeconds ?? 3600}s`)
    .sign(new TextEncoder().encode(options.secret ?? MERCURE_SECRET));
}

/** A pre-standard token: a plain JWT with the `mercure` claim of selectors, as Symfony's Mercure bundle makes. */
export async function legacyToken(claim: {
  publish?: string[];
  subscribe?: string[];
  payload?: unknown;
}): Promise<string> {
  return new SignJWT({ mercure: claim })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(MERCURE_SECRET));
}

export interface PublishedUpdate {
  readonly status: number;
  readonly text: string;
  readonly headers: Headers;
}

/** POSTs a form to the hub; `fields` may repeat a name (several topics). */
export async function mercurePublish(
  base: string,
  fields: readonly [string, string][],
  token?: string,
  headers: Record<string, string> = {},
): Promise<PublishedUpdate> {
  const response = await fetch(`${base}/.well-known/mercure`, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-www-form-urlencoded",
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: new URLSearchParams(fields as [string, string][]).toString(),
  });
  return { status: response.status, text: await response.text(), headers: response.headers };
}

/** The hub's subscribe URL for these query parameters (repeatable). */
export function subscribeUrl(base: string, params: readonly [string, string][]): string {
  return `${base}/.well-known/mercure?${new URLSearchParams(params as [string, string][]).toString()}`;
}
