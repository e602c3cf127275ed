import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_MAX_TOKEN_TTL_SECONDS } from "../src/auth/auth-config.js";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, publishStatus, SECRET, startAuthServer } from "./helpers/auth.js";
import { StreamClient } from "./helpers/clients.js";

let herald: RunningHerald;
const users = makeKey("users", ["user:*"]);
const backend = makeKey("backend", ["room:*"], { tokens: ["*"] });

beforeAll(async () => {
  herald = await startAuthServer({
    auth: { keys: [users.entry, backend.entry], tokens: { hs256Secret: SECRET, maxTtl: 7200 } },
  });
});
afterAll(() => herald.shutdown());

function batch(headers: Record<string, string>, body: unknown): Promise<Response> {
  return fetch(`${herald.url}/v1/messages`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

function mint(headers: Record<string, string>, body: unknown): Promise<Response> {
  return fetch(`${herald.url}/v1/tokens`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

describe("publisher keys", () => {
  it("publish within their patterns, 403 outside, 401 when missing or unknown", async () => {
    expect((await publishStatus(herald.url, "user:alice", bearer(users.key))).status).toBe(201);
    const outside = await publishStatus(herald.url, "room:1", bearer(users.key));
    expect(outside.status).toBe(403);
    expect((await outside.json()).error.code).toBe("forbidden");
    const missing = await publishStatus(herald.url, "user:alice", {});
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect((await publishStatus(herald.url, "user:alice", bearer("hk_unknown"))).status).toBe(401);
    expect((await publishStatus(herald.url, "user:alice", { authorization: "Basic abc" })).status).toBe(401);
  });

  it("are checked for every mailbox of a batch and a fan-in, storing nothing when one is out of scope", async () => {
    const mixed = await batch(bearer(users.key), {
      messages: [
        { mailbox: "user:batch", body: "a" },
        { mailbox: "room:batch", body: "b" },
      ],
    });
    expect(mixed.status).toBe(403);
    const fanIn = await batch(bearer(users.key), { mailboxes: ["user:x", "room:x"], message: { body: "c" } });
    expect(fanIn.status).toBe(403);
    const token = await hsToken({ mailboxes: ["user:batch"] });
    const read = await fetch(`${herald.url}/v1/mailboxes/user:batch/messages`, { headers: bearer(token) });
    expect((await read.json()).messages).toEqual([]);
    expect((await batch(bearer(users.key), { mailboxes: ["user:x", "user:y"], message: { body: "d" } })).status).toBe(
      201,
    );
  });

  it("are not accepted from the query string or cookie", async () => {
    const response = await fetch(`${herald.url}/v1/mailboxes/user:q/messages?token=${users.key}`, {
      method: "POST",
      body: "x",
    });
    expect(response.status).toBe(401);
  });
});

describe("token holders", () => {
  it("publish only where their publish claim allows (chat)", async () => {
    const token = await hsToken({ sub: "bob", mailboxes: ["room:7"], publish: ["room:7"] });
    expect((await publishStatus(herald.url, "room:7", bearer(token))).status).toBe(201);
    expect((await publishStatus(herald.url, "room:8", bearer(token))).status).toBe(403);
    const readOnly = await hsToken({ sub: "eve", mailboxes: ["room:7"] });
    expect((await publishStatus(herald.url, "room:7", bearer(readOnly))).status).toBe(403);
  });
});

describe("POST /v1/tokens", () => {
  it("mints a token that reads its mailboxes and publishes within the key's scope", async () => {
    const before = Date.now();
    const response = await mint(bearer(backend.key), {
      sub: "alice",
      mailboxes: ["user:alice", "room:9"],
      publish: ["room:9"],
      ttl: 600,
    });
    expect(response.status).toBe(201);
    const { token, expiresAt } = (await response.json()) as { token: string; expiresAt: string };
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ sub: "alice", mailboxes: ["user:alice", "room:9"], publish: ["room:9"] });
    expect(Date.parse(expiresAt)).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 600_000);
    expect(Date.parse(expiresAt)).toBeLessThanOrEqual(Date.now() + 601_000);

    const stream = new StreamClient(`${herald.url}/v1/mailboxes/room:9/events?token=${token}`);
    await stream.opened;
    expect(stream.status).toBe(200);
    expect((await publishStatus(herald.url, "room:9", bearer(token), { body: "from alice" })).status).toBe(201);
    expect((await stream.untilMessages(1))[0]?.body).toBe("from alice");
    stream.close();
    expect((await publishStatus(herald.url, "room:10", bearer(token))).status).toBe(403);
  });

  it("uses the default lifetime when none is asked for", async () => {
    const response = await mint(bearer(backend.key), { sub: "a", mailboxes: ["user:a"] });
    expect(response.status).toBe(201);
    const claims = decodeJwt(((await response.json()) as { token: string }).token);
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(3600);
  });

  it("bounds the lifetime and checks the request", async () => {
    const bad = [
      { sub: "a", mailboxes: ["user:a"], ttl: 7201 },
      { sub: "a", mailboxes: ["user:a"], ttl: 0 },
      { sub: "a", mailboxes: ["user:a"], ttl: 1.5 },
      { sub: "a", mailboxes: [] },
      { sub: "", mailboxes: ["user:a"] },
      { sub: "a", mailboxes: ["bad name!"] },
      { sub: "a", mailboxes: ["user:a"], extra: true },
    ];
    for (const body of bad) {
      const response = await mint(bearer(backend.key), body);
      expect(response.status, JSON.stringify(body)).toBe(400);
    }
    expect(DEFAULT_MAX_TOKEN_TTL_SECONDS).toBeGreaterThan(7200);
  });

  it("needs a key with the tokens right, and grants no publishing beyond the key's own", async () => {
    expect((await mint({}, { sub: "a", mailboxes: ["user:a"] })).status).toBe(401);
    expect((await mint(bearer(users.key), { sub: "a", mailboxes: ["user:a"] })).status).toBe(403);
    const token = await hsToken({ mailboxes: ["*"] });
    expect((await mint(bearer(token), { sub: "a", mailboxes: ["user:a"] })).status).toBe(401);
    for (const publish of [["user:a"], ["*"], ["room*"]]) {
      const response = await mint(bearer(backend.key), { sub: "a", mailboxes: ["room:1"], publish });
      expect(response.status, publish.join()).toBe(403);
    }
    expect((await mint(bearer(backend.key), { sub: "a", mailboxes: ["room:1"], publish: ["room:1*"] })).status).toBe(
      201,
    );
  });
});

describe("keys without a token section", () => {
  it("protect publishing while reading stays open", async () => {
    const only = makeKey("only", ["feed:*"]);
    const open = await startAuthServer({ auth: { keys: [only.entry], reads: "open" } });
    try {
      expect((await publishStatus(open.url, "feed:cpu", {})).status).toBe(401);
      expect((await publishStatus(open.url, "feed:cpu", bearer(only.key))).status).toBe(201);
      const read = await fetch(`${open.url}/v1/mailboxes/feed:cpu/messages`);
      expect(read.status).toBe(200);
      expect((await read.json()).messages).toHaveLength(1);
      // A bearer that is not a key is refused rather than ignored.
      expect((await fetch(`${open.url}/v1/mailboxes/feed:cpu/messages`, { headers: bearer("eyJ.x.y") })).status).toBe(
        401,
      );
    } finally {
      await open.shutdown();
    }
  });
});
