import { createECDH } from "node:crypto";
import { ConfigError } from "../errors.js";

/** The server's application server key pair (RFC 8292) and whom push services may contact about it. */
export interface VapidKeys {
  /** Uncompressed P-256 point (65 bytes), base64url: what browsers pass to pushManager.subscribe. */
  readonly publicKey: string;
  /** The 32-byte private scalar, base64url. */
  readonly privateKey: string;
  /** `mailto:` or `https:` contact for push service operators. */
  readonly subject: string;
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

function bytesOf(value: unknown, length: number, where: string): Buffer {
  const bytes = typeof value === "string" && BASE64URL.test(value) ? Buffer.from(value, "base64url") : undefined;
  if (bytes?.length !== length) throw new ConfigError(`${where} must be ${length} bytes in base64url (no padding)`);
  return bytes;
}

function isContact(subject: string): boolean {
  if (/^mailto:[^@\s]+@[^@\s]+$/.test(subject)) return true;
  try {
    return new URL(subject).protocol === "https:";
  } catch {
    return false;
  }
}

/** Checks a configured pair: shapes, the subject, and that the public key is the private key's. */
export function checkVapidKeys(input: Record<string, unknown>, where: string): VapidKeys {
  const publicKey = bytesOf(input.publicKey, 65, `${where}.publicKey`);
  const privateKey = bytesOf(input.privateKey, 32, `${where}.privateKey`);
  const { subject } = input;
  if (typeof subject !== "string" || !isContact(subject)) {
    throw new ConfigError(`${where}.subject must be a mailto: address or an https: URL (push services use it)`);
  }
  const ecdh = createECDH("prime256v1");
  try {
    ecdh.setPrivateKey(privateKey);
  } catch {
    throw new ConfigError(`${where}.privateKey is not a P-256 private key`);
  }
  if (!ecdh.getPublicKey().equals(publicKey)) {
    throw new ConfigError(`${where}.publicKey does not belong to its privateKey`);
  }
  return { publicKey: input.publicKey as string, privateKey: input.privateKey as string, subject };
}

/** A fresh key pair. */
export function createVapidKeys(): { publicKey: string; privateKey: string } {
  const ecdh = createECDH("prime256v1");
  ecdh.generateKeys();
  return {
    publicKey: ecdh.getPublicKey().toString("base64url"),
    // Left-padded: a scalar with leading zero bytes is still 32 bytes on the wire.
    privateKey: Buffer.from(ecdh.getPrivateKey().toString("hex").padStart(64, "0"), "hex").toString("base64url"),
  };
}
