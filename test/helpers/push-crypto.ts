// The receiving side of Web Push (VAPID, RFC 8030 headers, aes128gcm), written from the RFCs with node:crypto alone:
// if Herald's sender (or web-push) got a detail wrong, an independent reading is what catches it. Deliberately no
// web-push or http_ece code here.

import { createDecipheriv, createECDH, createPublicKey, type ECDH, hkdfSync, randomBytes, verify } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";

/** The largest body a push service must accept (RFC 8030 §7.2, RFC 8291 §4); bigger ones get 413. */
export const MAX_PUSH_BODY = 4096;
const HEADER_BYTES = 16 + 4 + 1 + 65;
const TAG_BYTES = 16;
/** RFC 8292 §2: a JWT valid for longer than this must be refused. */
const MAX_EXP_AHEAD_S = 24 * 60 * 60;

export interface UserAgentKeys {
  readonly ecdh: ECDH;
  /** Uncompressed P-256 point, 65 bytes. */
  readonly publicKey: Buffer;
  readonly authSecret: Buffer;
}

export function generateUserAgentKeys(): UserAgentKeys {
  const ecdh = createECDH("prime256v1");
  return { ecdh, publicKey: ecdh.generateKeys(), authSecret: randomBytes(16) };
}

/** Why a body could not be read, with the status a push service or user agent would give. */
export class PushRejection extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const hkdf = (salt: Buffer, ikm: Buffer, info: Buffer, length: number): Buffer =>
  Buffer.from(hkdfSync("sha256", ikm, salt, info, length));

/** RFC 8291 §3.4 + RFC 8188 §2: one aes128gcm record, decrypted and unpadded. */
export function decryptAes128gcm(body: Buffer, ua: UserAgentKeys): Buffer {
  if (body.length < HEADER_BYTES + TAG_BYTES + 1)
    throw new PushRejection(400, `body of ${body.length} bytes is too short`);
  const salt = body.subarray(0, 16);
  const rs = body.readUInt32BE(16);
  const idlen = body[20];
  // RFC 8291 §4: the keyid is the sender's uncompressed ephemeral key, nothing else.
  if (idlen !== 65) throw new PushRejection(400, `keyid length is ${idlen}, not 65`);
  const asPublic = body.subarray(21, 21 + 65);
  if (asPublic[0] !== 0x04) throw new PushRejection(400, "keyid is not an uncompressed P-256 point");
  const record = body.subarray(HEADER_BYTES);
  // RFC 8291 §4 demands a single record, so the whole remainder must fit in rs.
  if (rs < 18) throw new PushRejection(400, `record size ${rs} is below 18`);
  if (record.length > rs)
    throw new PushRejection(400, `record of ${record.length} bytes exceeds rs ${rs}: not one record`);

  let ecdhSecret: Buffer;
  try {
    ecdhSecret = ua.ecdh.computeSecret(asPublic);
  } catch {
    throw new PushRejection(400, "keyid is not a point on P-256");
  }
  const keyInfo = Buffer.concat([Buffer.from("WebPush: info\0"), ua.publicKey, asPublic]);
  const ikm = hkdf(ua.authSecret, ecdhSecret, keyInfo, 32);
  const cek = hkdf(salt, ikm, Buffer.from("Content-Encoding: aes128gcm\0"), 16);
  // Record 0: the nonce is used as derived (XOR with sequence number 0).
  const nonce = hkdf(salt, ikm, Buffer.from("Content-Encoding: nonce\0"), 12);

  const decipher = createDecipheriv("aes-128-gcm", cek, nonce);
  decipher.setAuthTag(record.subarray(record.length - TAG_BYTES));
  let padded: Buffer;
  try {
    padded = Buffer.concat([decipher.update(record.subarray(0, record.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new PushRejection(400, "aes128gcm authentication failed: wrong keys or altered body");
  }
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--;
  // 0x02 marks the last record; 0x01 would mean more records follow, which a push message may not have.
  if (padded[end] !== 0x02) throw new PushRejection(400, `record delimiter is ${padded[end] ?? "missing"}, not 0x02`);
  return padded.subarray(0, end);
}

const URGENCIES = new Set(["very-low", "low", "normal", "high"]);

/** RFC 8030 header rules a real push service enforces; a string is the reason to refuse. */
export function checkPushHeaders(headers: IncomingHttpHeaders, bytes: number): [number, string] | undefined {
  const ttl = headers.ttl;
  if (ttl === undefined) return [400, "TTL header missing"];
  if (!/^\d+$/.test(ttl.toString())) return [400, `TTL ${ttl} is not a non-negative integer`];
  const urgency = headers.urgency;
  if (urgency !== undefined && !URGENCIES.has(urgency.toString())) return [400, `Urgency ${urgency} is not valid`];
  const topic = headers.topic?.toString();
  if (topic !== undefined && !/^[A-Za-z0-9_-]{1,32}$/.test(topic)) return [400, `Topic ${topic} is not base64url ≤ 32`];
  if (bytes > 0 && headers["content-encoding"] !== "aes128gcm") {
    return [415, `Content-Encoding ${headers["content-encoding"]} is not aes128gcm`];
  }
  if (bytes > MAX_PUSH_BODY) return [413, `body is ${bytes} bytes, over ${MAX_PUSH_BODY}`];
  return undefined;
}

export interface VapidClaims {
  readonly aud: string;
  readonly exp: number;
  readonly sub: string;
}

export type VapidResult =
  | { readonly ok: true; readonly claims: VapidClaims }
  | { readonly ok: false; readonly status: 401 | 403; readonly reason: string };

const fail = (status: 401 | 403, reason: string): VapidResult => ({ ok: false, status, reason });

function decodeJson(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * RFC 8292 checks on an `Authorization: vapid t=…, k=…` header. Missing or unreadable credentials answer 401;
 * readable ones that do not hold (other key, bad signature, bad claims) answer 403, as for a restricted subscription.
 */
export function verifyVapid(
  authorization: string | undefined,
  expected: { publicKey: Buffer; audience: string; subject?: string; nowMs?: number },
): VapidResult {
  if (!authorization) return fail(401, "no Authorization header");
  const match = /^vapid\s+(.*)$/is.exec(authorization.trim());
  if (!match?.[1]) return fail(401, `Authorization scheme is not vapid: ${authorization.slice(0, 20)}`);
  const params = new Map<string, string>();
  for (const part of match[1].split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) params.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
  }
  const t = params.get("t");
  const k = params.get("k");
  if (!t || !k) return fail(401, "vapid Authorization lacks t= or k=");

  if (!Buffer.from(k, "base64url").equals(expected.publicKey)) return fail(403, "k is not the configured VAPID key");
  const segments = t.split(".");
  if (segments.length !== 3) return fail(401, "t is not a compact JWT");
  const [headerPart = "", claimsPart = "", signaturePart = ""] = segments;
  const header = decodeJson(headerPart);
  const claims = decodeJson(claimsPart);
  if (!header || !claims) return fail(401, "JWT header or claims are not JSON objects");
  if (header.alg !== "ES256") return fail(403, `JWT alg is ${String(header.alg)}, not ES256`);

  const key = createPublicKey({
    key: {
      kty: "EC",
      crv: "P-256",
      x: expected.publicKey.subarray(1, 33).toString("base64url"),
      y: expected.publicKey.subarray(33, 65).toString("base64url"),
    },
    format: "jwk",
  });
  const signature = Buffer.from(signaturePart, "base64url");
  const signed = Buffer.from(`${headerPart}.${claimsPart}`);
  if (signature.length !== 64 || !verify("sha256", signed, { key, dsaEncoding: "ieee-p1363" }, signature)) {
    return fail(403, "JWT signature does not verify with the VAPID key");
  }

  const { aud, exp, sub } = claims;
  if (aud !== expected.audience) return fail(403, `aud ${String(aud)} is not ${expected.audience}`);
  const nowS = Math.floor((expected.nowMs ?? Date.now()) / 1000);
  if (typeof exp !== "number" || !Number.isFinite(exp)) return fail(403, "exp is missing or not a number");
  if (exp <= nowS) return fail(403, `exp ${exp} has passed (now ${nowS})`);
  if (exp > nowS + MAX_EXP_AHEAD_S) return fail(403, `exp ${exp} is more than 24 h ahead (now ${nowS})`);
  if (typeof sub !== "string" || !/^(mailto:|https:)/.test(sub) || !URL.canParse(sub)) {
    return fail(403, `sub ${String(sub)} is not a mailto: or https: URL`);
  }
  if (expected.subject !== undefined && sub !== expected.subject) {
    return fail(403, `sub ${sub} is not ${expected.subject}`);
  }
  return { ok: true, claims: { aud, exp, sub } };
}
