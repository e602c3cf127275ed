import { createPublicKey } from "node:crypto";
import {
  createLocalJWKSet,
  errors,
  importPKCS8,
  importSPKI,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
  SignJWT,
} from "jose";
import { HeraldError } from "../errors.js";
import { compileScope, isScopePattern, MAX_PATTERNS, type ScopeMatcher } from "./keys.js";

export type AsymmetricAlgorithm = "ES256" | "RS256";

/** Where subscriber tokens' signatures are checked against, as the config file names it. */
export type TokenKeySettings =
  | { readonly kind: "hs256"; readonly secret: string }
  | {
      readonly kind: "public-key";
      readonly publicKeyPem: string;
      /** PKCS#8 PEM; only needed for Herald itself to mint tokens. */
      readonly privateKeyPem?: string;
    }
  | { readonly kind: "jwks"; readonly jwks: JSONWebKeySet; readonly privateKeyPem?: string };

export interface TokenSettings {
  readonly key: TokenKeySettings;
  /** Longest lifetime POST /v1/tokens grants. */
  readonly maxTtlSeconds: number;
  /** Lifetime POST /v1/tokens grants when the request names none. */
  readonly defaultTtlSeconds: number;
  /** When set, tokens must carry this `iss` (and minted ones do): a token for another deployment is refused. */
  readonly issuer?: string | undefined;
  /** When set, tokens must name this in `aud` (and minted ones do). */
  readonly audience?: string | undefined;
}

/** A verified subscriber token. */
export interface TokenHolder {
  readonly sub: string;
  /** Epoch milliseconds after which the token no longer counts. */
  readonly expiresAt: number;
  readonly canRead: ScopeMatcher;
  readonly canPublish: ScopeMatcher;
  /** The token's `info` claim as JSON object text: what other readers see of this one (presence). */
  readonly info: string | undefined;
}

export interface MintRequest {
  readonly sub: string;
  /** Becomes the token's `info` claim. */
  readonly info?: Record<string, unknown> | undefined;
  readonly mailboxes: readonly string[];
  readonly publish: readonly string[];
  readonly ttlSeconds: number;
}

export interface TokenService {
  /** Resolves the holder, or throws `unauthorized` for anything not signed by the configured key and unexpired. */
  verify(token: string): Promise<TokenHolder>;
  /** False when only a public key is configured: someone else mints. */
  readonly canMint: boolean;
  mint(request: MintRequest): Promise<{ token: string; expiresAt: number }>;
}

export const HS256_MIN_SECRET_LENGTH = 32;
/** Longest `sub` accepted; it becomes a visitor id and a log field. */
export const MAX_SUBJECT_LENGTH = 256;
/** Largest `info` claim, as JSON text; presence hands it to everyone on a mailbox. */
export const MAX_INFO_BYTES = 1024;

/** The `info` claim as JSON text, or a message saying what is wrong with it. */
export function infoText(value: unknown): { text: string | undefined } | { error: string } {
  if (value === undefined || value === null) return { text: undefined };
  if (typeof value !== "object" || Array.isArray(value)) return { error: '"info" must be a JSON object' };
  const text = JSON.stringify(value);
  if (Buffer.byteLength(text) > MAX_INFO_BYTES)
    return { error: `"info" must be at most ${MAX_INFO_BYTES} bytes of JSON` };
  return { text };
}
/** Allows for clock drift between Herald and whoever minted the token. */
const CLOCK_TOLERANCE_SECONDS = 5;

export function publicKeyAlgorithm(pem: string): AsymmetricAlgorithm {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType === "rsa") return "RS256";
  if (key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1") return "ES256";
  throw new Error(`unsupported public key type ${key.asymmetricKeyType}; use an RSA or P-256 key`);
}

function invalid(message: string): HeraldError {
  return new HeraldError("unauthorized", message);
}

function patternList(value: unknown, claim: string, required: boolean): string[] {
  if (value === undefined && !required) return [];
  if (!Array.isArray(value) || value.length > MAX_PATTERNS || !value.every(isScopePattern)) {
    throw invalid(`The token's "${claim}" claim must be a list of at most ${MAX_PATTERNS} mailbox patterns`);
  }
  return value;
}

function holderOf(payload: JWTPayload): TokenHolder {
  const { sub, exp } = payload;
  if (typeof sub !== "string" || sub.length === 0 || sub.length > MAX_SUBJECT_LENGTH) {
    throw invalid('The token needs a "sub" claim');
  }
  if (typeof exp !== "number") throw invalid('The token needs an "exp" claim');
  const info = infoText(payload.info);
  if ("error" in info) throw invalid(`The token's ${info.error}`);
  return {
    info: info.text,
    sub,
    expiresAt: (exp + CLOCK_TOLERANCE_SECONDS) * 1000,
    canRead: compileScope(patternList(payload.mailboxes, "mailboxes", true)),
    canPublish: compileScope(patternList(payload.publish, "publish", false)),
  };
}

export async function createTokenService(settings: TokenSettings): Promise<TokenService> {
  const { key } = settings;
  let verifyKey: Uint8Array | CryptoKey | JWTVerifyGetKey;
  let algorithms: string[];
  let signKey: Uint8Array | CryptoKey | undefined;
  let signAlgorithm: string | undefined;
  if (key.kind === "hs256") {
    verifyKey = new TextEncoder().encode(key.secret);
    signKey = verifyKey;
    algorithms = ["HS256"];
    signAlgorithm = "HS256";
  } else {
    if (key.kind === "public-key") {
      const algorithm = publicKeyAlgorithm(key.publicKeyPem);
      verifyKey = await importSPKI(key.publicKeyPem, algorithm);
      algorithms = [algorithm];
    } else {
      verifyKey = createLocalJWKSet(key.jwks);
      algorithms = ["ES256", "RS256"];
    }
    if (key.privateKeyPem !== undefined) {
      signAlgorithm = publicKeyAlgorithm(
        createPublicKey(key.privateKeyPem).export({ type: "spki", format: "pem" }) as string,
      );
      signKey = await importPKCS8(key.privateKeyPem, signAlgorithm);
    }
  }
  return {
    canMint: signKey !== undefined,
    async verify(token) {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, verifyKey as Uint8Array, {
          algorithms,
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          requiredClaims: ["exp", "sub"],
          ...(settings.issuer === undefined ? {} : { issuer: settings.issuer }),
          ...(settings.audience === undefined ? {} : { audience: settings.audience }),
        }));
      } catch (error) {
        if (error instanceof errors.JWTExpired) throw invalid("The token has expired; fetch a new one");
        throw invalid("The token is not valid for this server");
      }
      return holderOf(payload);
    },
    async mint(request) {
      if (signKey === undefined || signAlgorithm === undefined) {
        throw new HeraldError("forbidden", "This server has no signing key; tokens are minted elsewhere");
      }
      const now = Math.floor(Date.now() / 1000);
      const exp = now + request.ttlSeconds;
      const claims = { mailboxes: [...request.mailboxes], publish: [...request.publish] };
      const jwt = new SignJWT(request.info === undefined ? claims : { ...claims, info: request.info })
        .setProtectedHeader({ alg: signAlgorithm, typ: "JWT" })
        .setSubject(request.sub)
        .setIssuedAt(now)
        .setExpirationTime(exp);
      if (settings.issuer !== undefined) jwt.setIssuer(settings.issuer);
      if (settings.audience !== undefined) jwt.setAudience(settings.audience);
      const token = await jwt.sign(signKey);
      return { token, expiresAt: exp * 1000 };
    },
  };
}
