import { createHmac, timingSafeEqual } from "node:crypto";

/** The signature schemes a hook may require of its sender. */
export type HookScheme = "github" | "stripe" | "standard-webhooks" | "hmac-sha256";

export const HOOK_SCHEMES: readonly HookScheme[] = ["github", "stripe", "standard-webhooks", "hmac-sha256"];

/** The header the generic scheme reads when a hook does not name one. */
export const DEFAULT_HMAC_HEADER = "X-Signature";

/** What a verifier sees of one delivery. */
export interface SignedRequest {
  /** A request header by case-insensitive name, or undefined when absent. */
  header(name: string): string | undefined;
  /** The body exactly as received: signatures are over these bytes, never over re-serialized JSON. */
  readonly body: Buffer;
}

export interface VerifyOptions {
  /** HMAC keys as bytes; any one of them may have signed (secret rotation). */
  readonly keys: readonly Buffer[];
  /** Largest difference between the sender's signed timestamp and now (schemes that sign one). */
  readonly toleranceSeconds: number;
  /** The header carrying the signature (hmac-sha256 only). */
  readonly header: string;
  readonly nowSeconds: number;
}

/**
 * Why a delivery was refused, for tests and logs only: the HTTP answer is the
 * same 401 for all of them so a prober learns nothing about which part failed.
 */
export type VerifyOutcome = "ok" | "missing" | "malformed" | "stale" | "mismatch";

/**
 * A Verifier checks one scheme's signature over the raw body against every
 * key, comparing in constant time, and checks the signed timestamp against
 * the tolerance where the scheme has one. It never parses the body and never
 * throws on hostile input.
 */
export type Verifier = (request: SignedRequest, options: VerifyOptions) => VerifyOutcome;

/** Signatures carried in one header that a verifier will look at; senders put at most a few. */
export const MAX_SIGNATURES_PER_HEADER = 16;
/** Longest signature header read; a longer one is malformed rather than parsed. */
export const MAX_SIGNATURE_HEADER_LENGTH = 4096;
const HEX_SHA256 = /^[0-9a-f]{64}$/i;
const UNIX_SECONDS = /^\d{1,12}$/;

function hmac(key: Buffer, ...parts: (string | Buffer)[]): Buffer {
  const mac = createHmac("sha256", key);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

/** True when any candidate equals any expected digest; every comparison is constant-time. */
function anyMatches(expected: readonly Buffer[], candidates: readonly Buffer[]): boolean {
  let matched = false;
  for (const digest of expected) {
    for (const candidate of candidates) {
      if (candidate.length === digest.length && timingSafeEqual(candidate, digest)) matched = true;
    }
  }
  return matched;
}

function withinTolerance(timestamp: string, options: VerifyOptions): boolean {
  return Math.abs(options.nowSeconds - Number(timestamp)) <= options.toleranceSeconds;
}

function readHeader(request: SignedRequest, name: string): string | undefined {
  const value = request.header(name);
  return value === undefined || value.length === 0 ? undefined : value;
}

/** GitHub: `X-Hub-Signature-256: sha256=<hex HMAC of the body>`. No timestamp is signed. */
export const verifyGithub: Verifier = (request, options) => {
  const header = readHeader(request, "x-hub-signature-256");
  if (header === undefined) return "missing";
  const hex = header.startsWith("sha256=") ? header.slice(7) : "";
  if (!HEX_SHA256.test(hex)) return "malformed";
  const expected = options.keys.map((key) => hmac(key, request.body));
  return anyMatches(expected, [Buffer.from(hex, "hex")]) ? "ok" : "mismatch";
};

/** Stripe: `Stripe-Signature: t=<unix>,v1=<hex HMAC of "t.body">[,v1=...]`; v0 and unknown schemes are ignored. */
export const verifyStripe: Verifier = (request, options) => {
  const header = readHeader(request, "stripe-signature");
  if (header === undefined) return "missing";
  if (header.length > MAX_SIGNATURE_HEADER_LENGTH) return "malformed";
  let timestamp: string | undefined;
  const signatures: Buffer[] = [];
  for (const part of header.split(",").slice(0, MAX_SIGNATURES_PER_HEADER + 1)) {
    const [name, value = ""] = part.trim().split("=", 2);
    if (name === "t") timestamp = value;
    else if (name === "v1" && HEX_SHA256.test(value)) signatures.push(Buffer.from(value, "hex"));
  }
  if (timestamp === undefined || !UNIX_SECONDS.test(timestamp) || signatures.length === 0) return "malformed";
  const expected = options.keys.map((key) => hmac(key, `${timestamp}.`, request.body));
  if (!anyMatches(expected, signatures)) return "mismatch";
  return withinTolerance(timestamp, options) ? "ok" : "stale";
};

/**
 * Standard Webhooks: `webhook-signature: v1,<base64 HMAC of "id.timestamp.body">`,
 * space-separated when several; the key is the base64 after `whsec_`.
 */
export const verifyStandardWebhooks: Verifier = (request, options) => {
  const id = readHeader(request, "webhook-id");
  const timestamp = readHeader(request, "webhook-timestamp");
  const header = readHeader(request, "webhook-signature");
  if (id === undefined || timestamp === undefined || header === undefined) return "missing";
  if (header.length > MAX_SIGNATURE_HEADER_LENGTH || !UNIX_SECONDS.test(timestamp)) return "malformed";
  const signatures: Buffer[] = [];
  for (const part of header.split(" ").slice(0, MAX_SIGNATURES_PER_HEADER)) {
    if (part.startsWith("v1,")) signatures.push(Buffer.from(part.slice(3), "base64"));
  }
  if (signatures.length === 0) return "malformed";
  const expected = options.keys.map((key) => hmac(key, `${id}.${timestamp}.`, request.body));
  if (!anyMatches(expected, signatures)) return "mismatch";
  return withinTolerance(timestamp, options) ? "ok" : "stale";
};

/** Generic: a configured header carrying the hex HMAC-SHA256 of the body, optionally prefixed `sha256=`. */
export const verifyHmacSha256: Verifier = (request, options) => {
  const header = readHeader(request, options.header);
  if (header === undefined) return "missing";
  const hex = header.startsWith("sha256=") ? header.slice(7) : header;
  if (!HEX_SHA256.test(hex)) return "malformed";
  const expected = options.keys.map((key) => hmac(key, request.body));
  return anyMatches(expected, [Buffer.from(hex, "hex")]) ? "ok" : "mismatch";
};

export const VERIFIERS: Readonly<Record<HookScheme, Verifier>> = {
  github: verifyGithub,
  stripe: verifyStripe,
  "standard-webhooks": verifyStandardWebhooks,
  "hmac-sha256": verifyHmacSha256,
};

/**
 * The HMAC key a configured secret stands for. Standard Webhooks secrets are
 * `whsec_` + base64 of the key bytes; every other scheme (Stripe's `whsec_`
 * included) uses the secret's UTF-8 bytes as they are.
 */
export function keyFromSecret(scheme: HookScheme, secret: string): Buffer {
  if (scheme !== "standard-webhooks") return Buffer.from(secret, "utf8");
  return Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64");
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Undefined when the secret is usable for the scheme, otherwise why not. */
export function secretProblem(scheme: HookScheme, secret: string): string | undefined {
  if (secret.length === 0) return "must not be empty";
  if (scheme !== "standard-webhooks") return undefined;
  const encoded = secret.startsWith("whsec_") ? secret.slice(6) : secret;
  if (encoded.length === 0 || !BASE64.test(encoded)) return 'must be "whsec_" followed by base64';
  return undefined;
}
