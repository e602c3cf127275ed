import { createHmac, timingSafeEqual } from "node:crypto";

/** The signature schemes a hook may require of its sender. */
export type HookScheme = "github" | "stripe" | "standard-webhooks" | "hmac-sha256";

export const HOOK_SCHEMES: readonly HookScheme[] = ["github", "stripe", "standard-webhooks", "hmac-sha256"];

/** The header the generic scheme reads when a hook does not name one. */
export const DEFAULT_HMAC_HEADER = "X-Signature";

/** A request header by case-insensitive name, or undefined when absent. */
export type HeaderLookup = (name: string) => string | undefined;

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

/** What the headers alone can tell: checked before the body is read. */
export type HeaderRefusal = Extract<VerifyOutcome, "missing" | "malformed">;

/** A delivery's signature as its headers state it; what it is worth depends on the body. */
export interface SignatureClaim {
  /** What the scheme signs ahead of the body bytes (timestamp, id); empty when only the body is signed. */
  readonly signedPrefix: string;
  /** Candidate signatures, at most MAX_SIGNATURES_PER_HEADER. */
  readonly signatures: readonly Buffer[];
  /** The signed timestamp in Unix seconds, for schemes that sign one. */
  readonly timestamp: number | undefined;
}

/**
 * A SignatureReader is the header half of one scheme: it finds the signature
 * header(s) and checks their form, so that a sender without a plausible
 * signature is refused before its body is read. It never throws on hostile input.
 */
export type SignatureReader = (
  header: HeaderLookup,
  options: Pick<VerifyOptions, "header">,
) => SignatureClaim | HeaderRefusal;

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

function readHeader(header: HeaderLookup, name: string): string | undefined {
  const value = header(name);
  return value === undefined || value.length === 0 ? undefined : value;
}

/** One hex HMAC of the body alone, optionally prefixed `sha256=` (required by GitHub). */
function bodyOnlyClaim(value: string, prefixRequired: boolean): SignatureClaim | HeaderRefusal {
  const hex = value.startsWith("sha256=") ? value.slice(7) : prefixRequired ? "" : value;
  if (!HEX_SHA256.test(hex)) return "malformed";
  return { signedPrefix: "", signatures: [Buffer.from(hex, "hex")], timestamp: undefined };
}

/** GitHub: `X-Hub-Signature-256: sha256=<hex HMAC of the body>`. No timestamp is signed. */
export const readGithubSignature: SignatureReader = (header) => {
  const value = readHeader(header, "x-hub-signature-256");
  return value === undefined ? "missing" : bodyOnlyClaim(value, true);
};

/** Stripe: `Stripe-Signature: t=<unix>,v1=<hex HMAC of "t.body">[,v1=...]`; v0 and unknown schemes are ignored. */
export const readStripeSignature: SignatureReader = (header) => {
  const value = readHeader(header, "stripe-signature");
  if (value === undefined) return "missing";
  if (value.length > MAX_SIGNATURE_HEADER_LENGTH) return "malformed";
  let timestamp: string | undefined;
  const signatures: Buffer[] = [];
  for (const part of value.split(",").slice(0, MAX_SIGNATURES_PER_HEADER + 1)) {
    const [name, item = ""] = part.trim().split("=", 2);
    if (name === "t") timestamp = item;
    else if (name === "v1" && HEX_SHA256.test(item)) signatures.push(Buffer.from(item, "hex"));
  }
  if (timestamp === undefined || !UNIX_SECONDS.test(timestamp) || signatures.length === 0) return "malformed";
  return { signedPrefix: `${timestamp}.`, signatures, timestamp: Number(timestamp) };
};

/**
 * Standard Webhooks: `webhook-signature: v1,<base64 HMAC of "id.timestamp.body">`,
 * space-separated when several; the key is the base64 after `whsec_`.
 */
export const readStandardWebhooksSignature: SignatureReader = (header) => {
  const id = readHeader(header, "webhook-id");
  const timestamp = readHeader(header, "webhook-timestamp");
  const value = readHeader(header, "webhook-signature");
  if (id === undefined || timestamp === undefined || value === undefined) return "missing";
  if (value.length > MAX_SIGNATURE_HEADER_LENGTH || !UNIX_SECONDS.test(timestamp)) return "malformed";
  const signatures: Buffer[] = [];
  for (const part of value.split(" ").slice(0, MAX_SIGNATURES_PER_HEADER)) {
    if (part.startsWith("v1,")) signatures.push(Buffer.from(part.slice(3), "base64"));
  }
  if (signatures.length === 0) return "malformed";
  return { signedPrefix: `${id}.${timestamp}.`, signatures, timestamp: Number(timestamp) };
};

/** Generic: a configured header carrying the hex HMAC-SHA256 of the body, optionally prefixed `sha256=`. */
export const readHmacSha256Signature: SignatureReader = (header, options) => {
  const value = readHeader(header, options.header);
  return value === undefined ? "missing" : bodyOnlyClaim(value, false);
};

export const SIGNATURE_READERS: Readonly<Record<HookScheme, SignatureReader>> = {
  github: readGithubSignature,
  stripe: readStripeSignature,
  "standard-webhooks": readStandardWebhooksSignature,
  "hmac-sha256": readHmacSha256Signature,
};

/**
 * The body half: compares the claim with the HMAC of its prefix and the raw
 * body under every key, in constant time, then checks a signed timestamp
 * against the tolerance. Staleness is judged only after the signature
 * matched, so an unsigned timestamp never tells a prober anything.
 */
export function checkSignature(
  claim: SignatureClaim,
  body: Buffer,
  options: VerifyOptions,
): Extract<VerifyOutcome, "ok" | "stale" | "mismatch"> {
  const expected = options.keys.map((key) => hmac(key, claim.signedPrefix, body));
  if (!anyMatches(expected, claim.signatures)) return "mismatch";
  if (claim.timestamp === undefined) return "ok";
  return Math.abs(options.nowSeconds - claim.timestamp) <= options.toleranceSeconds ? "ok" : "stale";
}

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
