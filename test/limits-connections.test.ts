import { afterEach, describe, expect, it } from "vitest";
import { addressVisitor, clientAddress, createTrustedProxies } from "../src/auth/visitor.js";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, SECRET, startAuthServer } from "./helpers/auth.js";
import { StreamClient } from "./helpers/clients.js";
import { until } from "./helpers/until.js";

let herald: RunningHerald | undefined;
const streams: StreamClient[] = [];

afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close();
  await herald?.shutdown();
  herald = undefined;
});

async function openStream(path: string, headers: Record<string, string> = {}): Promise<StreamClient> {
  const stream = new StreamClient(`${(herald as RunningHerald).url}${path}`, headers);
  streams.push(stream);
  await stream.opened;
  return stream;
}

describe("streams per visitor", () => {
  it("answers 429 beyond the cap across SSE and ndjson, and frees the slot when a stream closes", async () => {
    herald = await startAuthServer({ auth: { tokens: { hs256Secret: SECRET } }, limits: { streamsPerVisitor: 2 } });
    const alice = await hsToken({ sub: "alice", mailboxes: ["*"] });
    const bob = await hsToken({ sub: "bob", mailboxes: ["*"] });
    const first = await openStream("/v1/mailboxes/a/events", bearer(alice));
    await openStream("/v1/stream?mailbox=b", bearer(alice));
    const third = await openStream("/v1/mailboxes/c/events", bearer(alice));
    expect([first.status, third.status]).toEqual([200, 429]);
    expect(third.headers["retry-after"]).toBeDefined();
    // Another subject is another visitor.
    expect((await openStream("/v1/mailboxes/c/events", bearer(bob))).status).toBe(200);
    first.close();
    await until(() => herald?.access.connections.streams.total === 2);
    expect((await openStream("/v1/mailboxes/c/events", bearer(alice))).status).toBe(200);
  });

  it("counts anonymous loopback clients by address when configured without auth", async () => {
    herald = await startAuthServer({ limits: { streamsPerVisitor: 1 } });
    expect((await openStream("/v1/mailboxes/a/events")).status).toBe(200);
    expect((await openStream("/v1/mailboxes/a/events")).status).toBe(429);
  });

  it("does not limit streams on loopback without auth unless configured", async () => {
    herald = await startAuthServer();
    for (let i = 0; i < 30; i++) expect((await openStream("/v1/mailboxes/a/stream")).status).toBe(200);
  });
});

describe("long-polls per visitor", () => {
  it("answers 429 to one long-poll too many, but never limits plain reads", async () => {
    herald = await startAuthServer({ limits: { longPollsPerVisitor: 1 } });
    const controller = new AbortController();
    const held = fetch(`${herald.url}/v1/mailboxes/lp/messages?cursor=now&wait=30`, { signal: controller.signal });
    await until(() => herald?.access.connections.longPolls.total === 1);
    const second = await fetch(`${herald.url}/v1/mailboxes/lp/messages?cursor=now&wait=30`);
    expect(second.status).toBe(429);
    expect(second.headers.get("retry-after")).not.toBeNull();
    expect((await fetch(`${herald.url}/v1/mailboxes/lp/messages`)).status).toBe(200);
    controller.abort();
    await held.catch(() => undefined);
    await until(() => herald?.access.connections.longPolls.total === 0);
  });
});

describe("the whole server", () => {
  it("answers 503 with Retry-After when maxConnections streams and long-polls are held, and publishes still work", async () => {
    herald = await startAuthServer({ limits: { maxConnections: 2 } });
    await openStream("/v1/mailboxes/a/events");
    const controller = new AbortController();
    const held = fetch(`${herald.url}/v1/mailboxes/a/messages?cursor=now&wait=30`, { signal: controller.signal });
    await until(() => herald?.access.connections.longPolls.total === 1);
    const refused = await openStream("/v1/stream?mailbox=a");
    expect(refused.status).toBe(503);
    expect(refused.headers["retry-after"]).toBe("5");
    const poll = await fetch(`${herald.url}/v1/mailboxes/a/messages?cursor=now&wait=5`);
    expect(poll.status).toBe(503);
    expect((await poll.json()).error.code).toBe("server_full");
    const published = await fetch(`${herald.url}/v1/mailboxes/a/messages`, { method: "POST", body: "still open" });
    expect(published.status).toBe(201);
    await held;
    controller.abort();
    expect(herald.server.maxConnections).toBeGreaterThan(2);
  });
});

describe("visitor identity", () => {
  it("groups IPv6 clients by /64 and unwraps IPv4-mapped addresses", () => {
    expect(addressVisitor("2001:db8:1:2:aaaa::1")).toBe(addressVisitor("2001:db8:1:2:ffff:1:2:3"));
    expect(addressVisitor("2001:db8:1:2::1")).not.toBe(addressVisitor("2001:db8:1:3::1"));
    expect(addressVisitor("2001:0db8:0001:0002::")).toBe("ip:2001:db8:1:2::/64");
    expect(addressVisitor("::1")).toBe("ip:0:0:0:0::/64");
    expect(addressVisitor("::ffff:10.0.0.7")).toBe("ip:10.0.0.7");
    expect(addressVisitor("10.0.0.7")).not.toBe(addressVisitor("10.0.0.8"));
  });

  it("believes X-Forwarded-For only from trusted proxies, taking the nearest untrusted hop", () => {
    const trusted = createTrustedProxies(["10.0.0.0/8", "::1"]);
    expect(clientAddress("203.0.113.9", "198.51.100.1", trusted)).toBe("203.0.113.9");
    expect(clientAddress("10.1.2.3", "198.51.100.1", trusted)).toBe("198.51.100.1");
    expect(clientAddress("::ffff:10.1.2.3", "1.1.1.1, 198.51.100.1, 10.9.9.9", trusted)).toBe("198.51.100.1");
    expect(clientAddress("10.1.2.3", "garbage", trusted)).toBe("unparsed:garbage");
    expect(clientAddress("10.1.2.3", "198.51.100.1:5000", trusted)).toBe("198.51.100.1");
    expect(clientAddress("10.1.2.3", "[2001:db8::1]:443", trusted)).toBe("2001:db8::1");
    expect(clientAddress("10.1.2.3", undefined, trusted)).toBe("10.1.2.3");
    expect(() => createTrustedProxies(["10.0.0.0/33"])).toThrow();
    expect(() => createTrustedProxies(["proxy.local"])).toThrow();
  });

  it("limits a client behind a trusted proxy by its forwarded address", async () => {
    herald = await startAuthServer({ limits: { streamsPerVisitor: 1, trustedProxies: ["127.0.0.1", "::1"] } });
    const one = { "x-forwarded-for": "198.51.100.1" };
    const two = { "x-forwarded-for": "198.51.100.2" };
    expect((await openStream("/v1/mailboxes/a/events", one)).status).toBe(200);
    expect((await openStream("/v1/mailboxes/a/events", two)).status).toBe(200);
    expect((await openStream("/v1/mailboxes/a/events", one)).status).toBe(429);
  });

  it("ignores X-Forwarded-For from an untrusted peer", async () => {
    herald = await startAuthServer({ limits: { streamsPerVisitor: 1 } });
    expect((await openStream("/v1/mailboxes/a/events", { "x-forwarded-for": "198.51.100.1" })).status).toBe(200);
    expect((await openStream("/v1/mailboxes/a/events", { "x-forwarded-for": "198.51.100.2" })).status).toBe(429);
  });
});
