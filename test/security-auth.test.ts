import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeJwt, SignJWT } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { parseAuthSection } from "../src/auth/auth-config.js";
import { compileScope, globMatches } from "../src/auth/keys.js";
import { createKeyFromArgs } from "../src/cli/key-create.js";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, publishStatus, SECRET, startAuthServer } from "./helpers/auth.js";
import { type HeraldChild, spawnHerald } from "./helpers/child.js";
import { until } from "./helpers/until.js";

let herald: RunningHerald | undefined;
const children: HeraldChild[] = [];
afterEach(async () => {
  await herald?.shutdown();
  herald = undefined;
  for (const child of children.splice(0)) {
    child.process.kill("SIGTERM");
    await child.exited;
  }
});

function running(): RunningHerald {
  if (herald === undefined) throw new Error("no server");
  return herald;
}

/** A plain dynamic-programming matcher, slow but obviously right, to check the fast one against. */
function referenceMatch(pattern: string, name: string): boolean {
  const table: boolean[][] = Array.from({ length: pattern.length + 1 }, () => new Array(name.length + 1).fill(false));
  (table[0] as boolean[])[0] = true;
  for (let p = 1; p <= pattern.length; p++) {
    const row = table[p] as boolean[];
    const previous = table[p - 1] as boolean[];
    const star = pattern[p - 1] === "*";
    row[0] = star && (previous[0] as boolean);
    for (let n = 1; n <= name.length; n++) {
      row[n] = star
        ? (previous[n] as boolean) || (row[n - 1] as boolean)
        : (previous[n - 1] as boolean) && pattern[p - 1] === name[n - 1];
    }
  }
  return (table[pattern.length] as boolean[])[name.length] as boolean;
}

describe("scope patterns", () => {
  it("match like globs, agreeing with a reference matcher on random patterns", () => {
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const text = (alphabet: string, length: number) =>
      Array.from({ length }, () => alphabet[random(alphabet.length)]).join("");
    for (let i = 0; i < 2000; i++) {
      const pattern = text("ab:*", 1 + random(12));
      const name = text("ab:", random(16));
      expect(globMatches(pattern, name), `${pattern} ~ ${name}`).toBe(referenceMatch(pattern, name));
    }
  });

  it("do not backtrack: many stars against a 128-character name take well under a millisecond", () => {
    // A regex from `*:*:*:*:*:*:X` took ~0.85 s on 60 colons; more stars never finished.
    const patterns = [`${"*:".repeat(6)}X`, `${"*:".repeat(40)}X`, "*".repeat(128), `${"*a".repeat(63)}b`];
    const names = [":".repeat(128), "a".repeat(128), `${"a:".repeat(63)}aa`];
    const compiled = compileScope(patterns);
    const rounds = 1000;
    const started = performance.now();
    for (let i = 0; i < rounds; i++) for (const name of names) compiled(name);
    const perMatch = (performance.now() - started) / (rounds * names.length * patterns.length);
    // A generous bound (the matcher takes microseconds): catches exponential work, not ordinary noise.
    expect(perMatch).toBeLessThan(1);
    expect(compiled("a".repeat(128))).toBe(true);
    expect(compileScope([`${"*:".repeat(6)}X`])(":".repeat(128))).toBe(false);
  });

  it("refuse a read with a hostile pattern and name promptly over HTTP", async () => {
    herald = await startAuthServer({ auth: { tokens: { hs256Secret: SECRET } } });
    const token = await hsToken({ mailboxes: [`${"*:".repeat(20)}X`] });
    const mailbox = ":".repeat(128);
    const read = await fetch(`${running().url}/v1/mailboxes/${mailbox}/messages`, { headers: bearer(token) });
    expect(read.status).toBe(403);
    expect((await fetch(`${running().url}/healthz`)).status).toBe(200);
  });
});

describe("token minting", () => {
  it("grants reading only within the key's token patterns", async () => {
    const users = makeKey("users", ["user:*"], { tokens: true });
    const feeds = makeKey("feeds", ["feed:ops"], { tokens: ["feed:*", "user:alice"] });
    herald = await startAuthServer({ auth: { keys: [users.entry, feeds.entry], tokens: { hs256Secret: SECRET } } });
    const mint = (key: string, mailboxes: string[], publish: string[] = []) =>
      fetch(`${running().url}/v1/tokens`, {
        method: "POST",
        headers: { "content-type": "application/json", ...bearer(key) },
        body: JSON.stringify({ sub: "s", mailboxes, publish }),
      });
    for (const wide of [["*"], ["user*"], ["u*"], ["room:1"], ["user:alice", "room:1"]]) {
      const refused = await mint(users.key, wide);
      expect(refused.status, wide.join()).toBe(403);
      expect(((await refused.json()) as { error: { message: string } }).error.message).toContain(
        "may not grant reading",
      );
    }
    for (const narrow of [["user:*"], ["user:alice"], ["user:a*"], ["user:*:inbox"]]) {
      expect((await mint(users.key, narrow)).status, narrow.join()).toBe(201);
    }
    expect((await mint(feeds.key, ["feed:cpu", "user:alice"])).status).toBe(201);
    expect((await mint(feeds.key, ["user:bob"])).status).toBe(403);
    // Reading and publishing are separate grants: this key reads feed:* but publishes only feed:ops.
    expect((await mint(feeds.key, ["feed:cpu"], ["feed:*"])).status).toBe(403);
    const minted = (await (await mint(users.key, ["user:alice"])).json()) as { token: string };
    const other = await fetch(`${running().url}/v1/mailboxes/user:bob/messages`, { headers: bearer(minted.token) });
    expect(other.status).toBe(403);
  });

  it("refuses a key whose token grant is empty, and says so at the CLI", () => {
    const entry = makeKey("mint-only", [], { tokens: true }).entry;
    expect(() => parseAuthSection({ keys: [entry], tokens: { hs256Secret: SECRET } }, {})).toThrow(
      'list what its tokens may read instead, e.g. "tokens": ["user:*"]',
    );
    expect(() => createKeyFromArgs(["--name", "m", "--tokens"])).toThrow("--token-mailboxes");
    expect(createKeyFromArgs(["--name", "m", "--token-mailboxes", "user:*"]).entry).toMatchObject({
      publish: [],
      tokens: ["user:*"],
    });
  });
});

describe("tokens bound to this deployment", () => {
  it("checks issuer and audience when configured, and sets them on minted tokens", async () => {
    const backend = makeKey("backend", ["user:*"], { tokens: true });
    herald = await startAuthServer({
      auth: {
        keys: [backend.entry],
        tokens: { hs256Secret: SECRET, issuer: "https://auth.example", audience: "herald-prod" },
      },
    });
    const sign = (claims: { iss?: string; aud?: string }) => {
      const jwt = new SignJWT({ mailboxes: ["user:alice"] })
        .setProtectedHeader({ alg: "HS256" })
        .setSubject("alice")
        .setExpirationTime(Math.floor(Date.now() / 1000) + 600);
      if (claims.iss) jwt.setIssuer(claims.iss);
      if (claims.aud) jwt.setAudience(claims.aud);
      return jwt.sign(new TextEncoder().encode(SECRET));
    };
    const read = async (token: string) =>
      (await fetch(`${running().url}/v1/mailboxes/user:alice/messages`, { headers: bearer(token) })).status;
    expect(await read(await sign({ iss: "https://auth.example", aud: "herald-prod" }))).toBe(200);
    expect(await read(await sign({ iss: "https://auth.example", aud: "herald-staging" }))).toBe(401);
    expect(await read(await sign({ iss: "https://other.example", aud: "herald-prod" }))).toBe(401);
    expect(await read(await sign({}))).toBe(401);
    const minted = await fetch(`${running().url}/v1/tokens`, {
      method: "POST",
      headers: { "content-type": "application/json", ...bearer(backend.key) },
      body: JSON.stringify({ sub: "alice", mailboxes: ["user:alice"] }),
    });
    const { token } = (await minted.json()) as { token: string };
    expect(decodeJwt(token)).toMatchObject({ iss: "https://auth.example", aud: "herald-prod" });
    expect(await read(token)).toBe(200);
  });
});

describe("keys without tokens", () => {
  it("need an explicit reads: open, and then the start-up banner says reads are open", async () => {
    const publisher = makeKey("ci", ["*"]);
    expect(() => parseAuthSection({ keys: [publisher.entry] }, {})).toThrow('"reads": "open"');
    expect(() => parseAuthSection({ keys: [publisher.entry], reads: "maybe" }, {})).toThrow("auth.reads must be");
    const dir = mkdtempSync(join(tmpdir(), "herald-reads-"));
    const config = join(dir, "herald.json");
    writeFileSync(config, JSON.stringify({ auth: { keys: [publisher.entry], reads: "open" } }));
    const child = await spawnHerald(["--config", config]);
    children.push(child);
    // Warnings go to stderr, the rest to stdout: wait for both.
    await until(() => child.output().includes("Limits:") && child.output().includes("WARNING"), "the notices");
    expect(child.output()).toContain('WARNING: auth.reads is "open"');
    expect(child.output()).toContain("auth on for publishing only");
    expect(child.output()).toContain("Sockets per client address: 512");
    expect(child.output()).toContain("limits.trustedProxies");
    expect((await publishStatus(child.url, "feed:x", {})).status).toBe(401);
    expect((await fetch(`${child.url}/v1/mailboxes/feed:x/messages`)).status).toBe(200);
  });
});
