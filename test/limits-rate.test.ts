import { afterEach, describe, expect, it } from "vitest";
import { createRateLimiter } from "../src/auth/rate-limit.js";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, publishStatus, SECRET, startAuthServer } from "./helpers/auth.js";

let herald: RunningHerald | undefined;
afterEach(async () => {
  await herald?.shutdown();
  herald = undefined;
});

describe("publish rate limit", () => {
  it("answers 429 with Retry-After once a key's bucket is empty, per key, and recovers", async () => {
    const a = makeKey("a", ["*"]);
    const b = makeKey("b", ["*"]);
    herald = await startAuthServer({
      auth: { keys: [a.entry, b.entry], reads: "open" },
      limits: { publish: { rate: 0.5, burst: 3 } },
    });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await publishStatus(herald.url, "m", bearer(a.key))).status);
    expect(statuses).toEqual([201, 201, 201, 429]);
    const limited = await publishStatus(herald.url, "m", bearer(a.key));
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect((await limited.json()).error.code).toBe("too_many_requests");
    // Another key has its own bucket.
    expect((await publishStatus(herald.url, "m", bearer(b.key))).status).toBe(201);
    // Nothing was stored for the refused publishes.
    expect(herald.hub.counters.published).toBe(4);
    await new Promise((resolve) => setTimeout(resolve, Number(limited.headers.get("retry-after")) * 1000 + 100));
    expect((await publishStatus(herald.url, "m", bearer(a.key))).status).toBe(201);
  });

  it("counts a batch as one request and limits token holders by subject", async () => {
    herald = await startAuthServer({
      auth: { tokens: { hs256Secret: SECRET } },
      limits: { publish: { rate: 0.1, burst: 1 } },
    });
    const first = await hsToken({ sub: "zoe", mailboxes: ["room:1"], publish: ["room:*"] });
    const second = await hsToken({ sub: "zoe", mailboxes: ["room:2"], publish: ["room:*"] });
    const other = await hsToken({ sub: "yann", mailboxes: ["room:1"], publish: ["room:*"] });
    const batch = await fetch(`${herald.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", ...bearer(first) },
      body: JSON.stringify({ mailboxes: ["room:1", "room:2", "room:3"], message: { body: "x" } }),
    });
    expect(batch.status).toBe(201);
    // Same subject, different token: same bucket.
    expect((await publishStatus(herald.url, "room:1", bearer(second))).status).toBe(429);
    expect((await publishStatus(herald.url, "room:1", bearer(other))).status).toBe(201);
  });

  it("applies no publish limit on loopback without auth unless configured", async () => {
    herald = await startAuthServer();
    for (let i = 0; i < 60; i++) expect((await publishStatus(herald.url, "dev", {})).status).toBe(201);
  });

  it("limits anonymous publishers by address when configured without auth", async () => {
    herald = await startAuthServer({ limits: { publish: { rate: 0.1, burst: 2 } } });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await publishStatus(herald.url, "dev", {})).status);
    expect(statuses).toEqual([201, 201, 429]);
  });
});

describe("token bucket", () => {
  it("refills at the configured rate, caps at the burst, and forgets the least recent visitor beyond its bound", () => {
    let now = 0;
    const limiter = createRateLimiter({ rate: 2, burst: 2 }, () => now, 2);
    expect([limiter.take("v"), limiter.take("v"), limiter.take("v")].map((r) => r.ok)).toEqual([true, true, false]);
    expect(limiter.take("v")).toEqual({ ok: false, retryAfterSeconds: 1 });
    now += 500;
    expect(limiter.take("v").ok).toBe(true);
    expect(limiter.take("v").ok).toBe(false);
    now += 60_000;
    expect([limiter.take("v"), limiter.take("v"), limiter.take("v")].map((r) => r.ok)).toEqual([true, true, false]);
    // Two other visitors push "v" out; it comes back with a full bucket.
    limiter.take("w");
    limiter.take("x");
    expect(limiter.take("v").ok).toBe(true);
  });
});
