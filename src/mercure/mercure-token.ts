import { createPublicKey, type KeyObject } from "node:crypto";
import { decodeJwt, decodeProtectedHeader, type JWTPayload, jwtVerify } from "jose";
import { HeraldError } from "../errors.js";
import type { MercureKey, MercureRole, MercureSettings } from "./mercure-config.js";
import { compileMatcher, type MatcherType, type TopicMatcher } from "./topic-matcher.js";

/** The authorization detail type of the Mercure standard (RFC 9396 `authorization_details`). */
export const MERCURE_DETAIL_TYPE = "https://mercure.rocks/authorization-detail";
/** Mercure authorization details, and topics in one of them, a token may carry at most. */
const MAX_DETAILS = 64;
const MAX_DETAIL_TOPICS = 64;

/** Topics a token lets its holder subscribe to, and the payload subscriptions they match carry. */
export interface SubscribeGrant {
  readonly matchers: readonly TopicMatcher[];
  readonly payload: unknown;
}

/** What a verified token allows. */
export interface MercureGrant {
  readonly publish: readonly TopicMatcher[];
  readonly subscribe: readonly SubscribeGrant[];
  /** The token's `sub`, for logs. */
  readonly subject: string | undefined;
  /** Epoch ms of `exp`; a subscriber's stream ends then. */
  readonly expiresAt: number | undefined;
}

/** Verifies presented tokens against the configured keys; see the Mercure standard's "Token Validation". */
export interface MercureTokenVerifier {
  /** The token's grant; throws 401 `invalid_token` for any token that fails, without saying why. */
  verify(token: string, role: MercureRole, hubUrl: string): Promise<MercureGrant>;
}

export function invalidToken(): HeraldError {
  return new HeraldError("unauthorized", "The Mercure access token is not valid", {
    "WWW-Authenticate": 'Bearer error="invalid_token"',
  });
}

export function missingToken(what: string): HeraldError {
  return new HeraldError("unauthorized", `${what} needs a Mercure access token`, { "WWW-Authenticate": "Bearer" });
}

export function insufficientScope(what: string): HeraldError {
  return new HeraldError("forbidden", `The Mercure access token does not allow ${what}`, {
    "WWW-Authenticate": 'Bearer error="insufficient_scope"',
  });
}

type VerifyKey = Uint8Array | KeyObject;

function importKey(key: MercureKey): VerifyKey {
  return key.alg.startsWith("HS") ? new TextEncoder().encode(key.material) : createPublicKey(key.material);
}

function matcherList(value: unknown, type: MatcherType, hubUrl: string, limit: number): TopicMatcher[] {
  if (!Array.isArray(value) || value.length > MAX_DETAIL_TOPICS) throw invalidToken();
  return value.map((entry) => {
    if (typeof entry !== "string" || entry.length > limit) throw invalidToken();
    try {
      return compileMatcher(type, entry, hubUrl, "selector");
    } catch {
      throw invalidToken();
    }
  });
}

/** The pre-standard `mercure` claim: `{"publish": [selectors], "subscribe": [selectors], "payload": …}`. */
function legacyGrant(payload: JWTPayload, hubUrl: string, limit: number): Omit<MercureGrant, "subject" | "expiresAt"> {
  const claim = payload.mercure;
  if (claim === undefined) return { publish: [], subscribe: [] };
  if (typeof claim !== "object" || claim === null || Array.isArray(claim)) throw invalidToken();
  const { publish, subscribe, payload: extra } = claim as Record<string, unknown>;
  const subscribeMatchers = subscribe === undefined ? [] : matcherList(subscribe, "selector", hubUrl, limit);
  return {
    publish: publish === undefined ? [] : matcherList(publish, "selector", hubUrl, limit),
    subscribe: subscribeMatchers.length === 0 ? [] : [{ matchers: subscribeMatchers, payload: extra }],
  };
}

function detailMatchers(topics: unknown, hubUrl: string, limit: number): TopicMatcher[] {
  if (!Array.isArray(topics) || topics.length === 0 || topics.length > MAX_DETAIL_TOPICS) throw invalidToken();
  return topics.map((topic) => {
    if (typeof topic !== "object" || topic === null || Array.isArray(topic)) throw invalidToken();
    const { match, match_type: matchType = "exact" } = topic as Record<string, unknown>;
    if (typeof match !== "string" || match.length > limit) throw invalidToken();
    if (matchType !== "exact" && matchType !== "urlpattern") throw invalidToken();
    try {
      return compileMatcher(matchType, match, hubUrl, "match");
    } catch {
      throw invalidToken();
    }
  });
}

/** The standard's `authorization_details`: any malformed Mercure detail rejects the whole token. */
function detailsGrant(payload: JWTPayload, hubUrl: string, limit: number): Omit<MercureGrant, "subject" | "expiresAt"> {
  const details = payload.authorization_details;
  if (details === undefined) return { publish: [], subscribe: [] };
  if (!Array.isArray(details) || details.length > MAX_DETAILS) throw invalidToken();
  const publish: TopicMatcher[] = [];
  const subscribe: SubscribeGrant[] = [];
  for (const detail of details) {
    if (typeof detail !== "object" || detail === null || Array.isArray(detail)) throw invalidToken();
    const { type, actions, topics, payload: extra } = detail as Record<string, unknown>;
    if (type !== MERCURE_DETAIL_TYPE) continue;
    if (!Array.isArray(actions) || actions.length === 0 || !actions.every((action) => typeof action === "string")) {
      throw invalidToken();
    }
    if (extra !== undefined && (typeof extra !== "object" || extra === null || Array.isArray(extra))) {
      throw invalidToken();
    }
    const matchers = detailMatchers(topics, hubUrl, limit);
    if (actions.includes("publish")) publish.push(...matchers);
    if (actions.includes("subscribe")) subscribe.push({ matchers, payload: extra });
  }
  return { publish, subscribe };
}

function isAccessTokenType(typ: string | undefined): boolean {
  if (typ === undefined) return false;
  const lower = typ.toLowerCase();
  return lower === "at+jwt" || lower === "application/at+jwt";
}

export function createMercureTokenVerifier(settings: MercureSettings): MercureTokenVerifier {
  const keys = settings.keys.map((key) => ({ key, material: importKey(key) }));
  const limit = settings.maxValueLength;
  return {
    async verify(token, role, hubUrl) {
      let typ: string | undefined;
      let alg: string | undefined;
      let issuer: string | undefined;
      try {
        ({ typ, alg } = decodeProtectedHeader(token));
        issuer = decodeJwt(token).iss;
      } catch {
        throw invalidToken();
      }
      // RFC 9068 tokens are checked only with their issuer's keys, and must name this hub as audience.
      const accessToken = isAccessTokenType(typ);
      const candidates = keys.filter(
        ({ key }) =>
          key.roles.includes(role) &&
          key.alg === alg &&
          (!accessToken || (issuer !== undefined && key.issuer === issuer)),
      );
      for (const { key, material } of candidates) {
        let payload: JWTPayload;
        try {
          ({ payload } = await jwtVerify(token, material, {
            algorithms: [key.alg],
            ...(accessToken
              ? {
                  typ: "at+jwt",
                  issuer: key.issuer as string,
                  audience: settings.audience ?? hubUrl,
                  requiredClaims: ["exp"],
                }
              : {}),
          }));
        } catch {
          continue;
        }
        const grant = accessToken ? detailsGrant(payload, hubUrl, limit) : legacyGrant(payload, hubUrl, limit);
        return {
          ...grant,
          subject: typeof payload.sub === "string" ? payload.sub : undefined,
          expiresAt: typeof payload.exp === "number" ? payload.exp * 1000 : undefined,
        };
      }
      throw invalidToken();
    },
  };
}
