import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, exportPKCS8, exportSPKI, generateKeyPair, SignJWT } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { parseAuthSection } from "../src/auth/auth-config.js";
import { compileScope } from "../src/auth/keys.js";
import { parseLimitsSection } from "../src/auth/limits-config.js";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, SECRET, startAuthServer } from "./helpers/auth.js";

let herald: RunningHerald | undefined;
afterEach(async () => {
  await herald?.shutdown();
  herald = undefined;
});

const dir = mkdtempSync(join(tmpdir(), "herald-keys-"));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const claims = { mailboxes: ["user:alice"] };
const exp = () => Math.floor(Date.now() / 1000) + 600;

async function readStatus(token: string): Promise<number> {
  const url = `${(herald as RunningHerald).url}/v1/mailboxes/user:alice/messages`;
  return (await fetch(url, { headers: bearer(token) })).status;
}

describe("token keys", () => {
  it("ES256 public key: accepts ES256, refuses RS256, HS256 keyed with the PEM (alg confusion) and HS512", async () => {
    const es = await generateKeyPair("ES256", { extractable: true });
    const rs = await generateKeyPair("RS256", { extractable: true });
    const pem = await exportSPKI(es.publicKey);
    herald = await startAuthServer({ auth: { tokens: { publicKeyFile: file("es.pem", pem) } } });
    const sign = (alg: string, key: CryptoKey | Uint8Array) =>
      new SignJWT(claims).setProtectedHeader({ alg }).setSubject("alice").setExpirationTime(exp()).sign(key);
    expect(await readStatus(await sign("ES256", es.privateKey))).toBe(200);
    expect(await readStatus(await sign("RS256", rs.privateKey))).toBe(401);
    expect(await readStatus(await sign("HS256", new TextEncoder().encode(pem)))).toBe(401);
    expect(await readStatus(await sign("HS512", new TextEncoder().encode(SECRET.repeat(2))))).toBe(401);
  });

  it("JWKS file: accepts RS256 and ES256 tokens by kid, refuses an unknown kid", async () => {
    const rs = await generateKeyPair("RS256", { extractable: true });
    const es = await generateKeyPair("ES256", { extractable: true });
    const other = await generateKeyPair("RS256", { extractable: true });
    const jwks = {
      keys: [
        { ...(await exportJWK(rs.publicKey)), kid: "rs1", alg: "RS256", use: "sig" },
        { ...(await exportJWK(es.publicKey)), kid: "es1", alg: "ES256", use: "sig" },
      ],
    };
    herald = await startAuthServer({ auth: { tokens: { jwksFile: file("jwks.json", JSON.stringify(jwks)) } } });
    const sign = (alg: string, kid: string, key: CryptoKey) =>
      new SignJWT(claims).setProtectedHeader({ alg, kid }).setSubject("alice").setExpirationTime(exp()).sign(key);
    expect(await readStatus(await sign("RS256", "rs1", rs.privateKey))).toBe(200);
    expect(await readStatus(await sign("ES256", "es1", es.privateKey))).toBe(200);
    expect(await readStatus(await sign("RS256", "rs2", other.privateKey))).toBe(401);
    expect(await readStatus(await sign("RS256", "rs1", other.privateKey))).toBe(401);
  });

  it("mints with a private key file when only a public key verifies", async () => {
    const es = await generateKeyPair("ES256", { extractable: true });
    const backend = makeKey("backend", [], { tokens: ["user:*"] });
    herald = await startAuthServer({
      auth: {
        keys: [backend.entry],
        tokens: {
          publicKeyFile: file("es-pub.pem", await exportSPKI(es.publicKey)),
          privateKeyFile: file("es-priv.pem", await exportPKCS8(es.privateKey)),
        },
      },
    });
    const minted = await fetch(`${herald.url}/v1/tokens`, {
      method: "POST",
      headers: { "content-type": "application/json", ...bearer(backend.key) },
      body: JSON.stringify({ sub: "alice", mailboxes: ["user:alice"] }),
    });
    expect(minted.status).toBe(201);
    const { token } = (await minted.json()) as { token: string };
    expect(JSON.parse(Buffer.from(token.split(".")[0] as string, "base64url").toString())).toMatchObject({
      alg: "ES256",
    });
    expect(await readStatus(token)).toBe(200);
  });

  it("says tokens are not configured, to anyone, on a server without a tokens section", async () => {
    const publisher = makeKey("app", ["*"]);
    herald = await startAuthServer({ auth: { keys: [publisher.entry], reads: "open" } });
    for (const headers of [bearer(publisher.key), {}]) {
      const response = await fetch(`${herald.url}/v1/tokens`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ sub: "alice", mailboxes: ["user:alice"] }),
      });
      expect(response.status).toBe(404);
      expect(await response.json()).toMatchObject({
        error: { code: "not_found", message: expect.stringContaining("tokens are not configured") },
      });
    }
  });

  it("refuses tokens whose claims are missing or malformed", async () => {
    herald = await startAuthServer({ auth: { tokens: { hs256Secret: SECRET } } });
    const key = new TextEncoder().encode(SECRET);
    const build = (payload: Record<string, unknown>, subject?: string, expires = true) => {
      let jwt = new SignJWT(payload).setProtectedHeader({ alg: "HS256" });
      if (subject) jwt = jwt.setSubject(subject);
      if (expires) jwt = jwt.setExpirationTime(exp());
      return jwt.sign(key);
    };
    expect(await readStatus(await build({ mailboxes: ["user:alice"] }, "alice"))).toBe(200);
    expect(await readStatus(await build({}, "alice"))).toBe(401);
    expect(await readStatus(await build({ mailboxes: "user:alice" }, "alice"))).toBe(401);
    expect(await readStatus(await build({ mailboxes: ["bad name!"] }, "alice"))).toBe(401);
    expect(await readStatus(await build({ mailboxes: ["user:alice"] }))).toBe(401);
    expect(await readStatus(await build({ mailboxes: ["user:alice"] }, "alice", false))).toBe(401);
    expect(await readStatus(await hsToken({ mailboxes: ["user:alice"], expiresIn: 600 }))).toBe(200);
  });
});

describe("auth and limits config", () => {
  const env = { HERALD_TEST_SECRET: SECRET };
  it("reads secrets from env vars and refuses what would silently misbehave", () => {
    expect(parseAuthSection({ tokens: { hs256SecretEnv: "HERALD_TEST_SECRET" } }, env).tokens?.key).toEqual({
      kind: "hs256",
      secret: SECRET,
    });
    const bad: [unknown, string][] = [
      [{ tokens: { hs256SecretEnv: "HERALD_UNSET_VAR" } }, "is not set"],
      [{ tokens: { hs256Secret: SECRET, hs256SecretEnv: "HERALD_TEST_SECRET" } }, "not both"],
      [{ tokens: { hs256Secret: SECRET, jwksFile: "x.json" } }, "exactly one"],
      [{ tokens: { hs256Secret: SECRET, algorithm: "none" } }, 'unknown field "algorithm"'],
      [{}, "must configure keys, tokens or both"],
      [{ keys: [{ name: "k", hash: "sha256:abc", publish: ["*"] }] }, "sha256:<64 hex digits>"],
      [{ keys: [makeKey("k", ["*"], { tokens: true }).entry] }, "auth.tokens is not configured"],
      [{ keys: [makeKey("k", ["bad pattern!"]).entry] }, "auth.keys[0].publish"],
      [{ tokens: { publicKeyFile: "/nonexistent.pem" } }, "cannot read"],
      [{ tokens: { hs256Secret: SECRET }, cors: { origins: ["app.example"] } }, "auth.cors.origins"],
    ];
    for (const [section, message] of bad) expect(() => parseAuthSection(section, env), message).toThrow(message);
  });

  it("checks limits", () => {
    expect(parseLimitsSection({ publish: { rate: 5 } }).publish).toEqual({ rate: 5, burst: 5 });
    expect(() => parseLimitsSection({ maxConnection: 5 })).toThrow('unknown field "maxConnection"');
    expect(() => parseLimitsSection({ streamsPerVisitor: 0 })).toThrow("limits.streamsPerVisitor");
    expect(() => parseLimitsSection({ trustedProxies: ["nope"] })).toThrow("limits.trustedProxies");
  });

  it("matches scope patterns on whole names with * as the only wildcard", () => {
    const scope = compileScope(["user:*", "room:4?", "a.b", "*:feed"]);
    expect(["user:x", "user:", "a.b", "cpu:feed"].every(scope)).toBe(true);
    expect(["xuser:x", "room:42", "axb", "cpu:feedx"].some(scope)).toBe(false);
  });
});
