import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { publish } from "./helpers/clients.js";
import { type PushFixture, startPushFixture, subscribePush } from "./helpers/push.js";
import type { ReceivedPush } from "./helpers/push-service.js";
import { startTestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";

let fixture: PushFixture;
let herald: RunningHerald;

beforeAll(async () => {
  fixture = await startPushFixture();
  herald = await startTestServer({ push: fixture.options({ maxSubscriptionsPerUser: 100, maxAttempts: 3 }) });
});
afterAll(async () => {
  await herald?.shutdown();
  await fixture?.close();
});

interface Created {
  id: string;
  mailboxes: string[];
}

async function subscribed(mailboxes: string[]) {
  const subscription = fixture.service.subscribe();
  const response = await subscribePush(herald.url, subscription, mailboxes);
  expect(response.status).toBe(201);
  return { subscription, created: (await response.json()) as Created };
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${herald.url}/metrics`)).text();
  const line = text.split("\n").find((candidate) => candidate.startsWith(`${name} `));
  return Number(line?.split(" ")[1] ?? Number.NaN);
}

const payloadOf = (push: ReceivedPush | undefined) => push?.payload as Record<string, unknown>;

describe("Web Push", () => {
  it("answers the VAPID public key browsers subscribe with", async () => {
    const response = await fetch(`${herald.url}/v1/push/vapid-public-key`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ publicKey: fixture.keys.publicKey });
  });

  it("pushes a published message, encrypted and signed, with Urgency from priority and TTL from its retention", async () => {
    const { subscription, created } = await subscribed(["user:ann"]);
    expect(created.mailboxes).toEqual(["user:ann"]);
    const published = await publish(herald.url, "user:ann", {
      title: "Order shipped",
      body: "It is on its way",
      tags: ["box"],
      priority: 4,
      ttl: 600,
      data: { url: "/orders/1" },
    });
    const [push] = await fixture.service.waitFor(1, { subscription });
    expect(payloadOf(push)).toEqual({
      id: published.id,
      mailbox: "user:ann",
      cursor: published.cursor,
      time: expect.any(Number),
      title: "Order shipped",
      body: "It is on its way",
      tags: ["box"],
      priority: 4,
      data: { url: "/orders/1" },
    });
    expect(push?.headers.urgency).toBe("high");
    expect(Number(push?.headers.ttl)).toBeGreaterThan(590);
    expect(Number(push?.headers.ttl)).toBeLessThanOrEqual(600);
    expect(push?.headers.contentEncoding).toBe("aes128gcm");
    expect(push?.vapid.aud).toBe(fixture.service.url);
  });

  it("pushes batches and fan-ins to every subscription of each mailbox, and leaves out push: false", async () => {
    const one = await subscribed(["room:a", "room:b"]);
    const other = await subscribed(["room:b"]);
    const response = await fetch(`${herald.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        messages: [
          { mailbox: "room:a", body: "a1" },
          { mailbox: "room:b", body: "quiet", push: false },
          { mailbox: "room:b", body: "b1" },
        ],
      }),
    });
    expect(response.status).toBe(201);
    const first = await fixture.service.waitFor(2, { subscription: one.subscription });
    expect(first.map((push) => payloadOf(push).body).sort()).toEqual(["a1", "b1"]);
    const second = await fixture.service.waitFor(1, { subscription: other.subscription });
    expect(second.map((push) => payloadOf(push).body)).toEqual(["b1"]);
    // The opted-out message is stored and streamed, just not pushed.
    const read = (await (await fetch(`${herald.url}/v1/mailboxes/room:b/messages`)).json()) as {
      messages: { body: string; push?: boolean }[];
    };
    expect(read.messages.map((message) => message.body)).toEqual(["quiet", "b1"]);
    expect(read.messages[0]?.push).toBe(false);
  });

  it("updates a re-posted endpoint in place, and stops pushing after DELETE", async () => {
    const { subscription, created } = await subscribed(["user:bob"]);
    const again = await subscribePush(herald.url, subscription, ["user:bob", "room:bob"]);
    expect(again.status).toBe(200);
    expect(((await again.json()) as Created).id).toBe(created.id);
    const fetched = await fetch(`${herald.url}/v1/push/subscriptions/${created.id}`);
    expect(((await fetched.json()) as Created).mailboxes).toEqual(["user:bob", "room:bob"]);

    await publish(herald.url, "room:bob", { body: "both" });
    await fixture.service.waitFor(1, { subscription });
    const deleted = await fetch(`${herald.url}/v1/push/subscriptions/${created.id}`, { method: "DELETE" });
    expect(deleted.status).toBe(204);
    expect((await fetch(`${herald.url}/v1/push/subscriptions/${created.id}`)).status).toBe(404);
    expect((await fetch(`${herald.url}/v1/push/subscriptions/${created.id}`, { method: "DELETE" })).status).toBe(404);
    await publish(herald.url, "room:bob", { body: "after" });
    const marker = await subscribed(["room:bob"]);
    await publish(herald.url, "room:bob", { body: "marker" });
    await fixture.service.waitFor(1, { subscription: marker.subscription });
    expect(fixture.service.received.filter((push) => push.subscription === subscription)).toHaveLength(1);
  });

  it("refuses endpoints off the allow-list, malformed subscriptions and more than the per-user bound", async () => {
    const subscription = fixture.service.subscribe();
    const elsewhere = await fetch(`${herald.url}/v1/push/subscriptions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        endpoint: "https://169.254.169.254/latest/meta-data",
        keys: subscription.keys,
        mailboxes: ["a"],
      }),
    });
    expect(elsewhere.status).toBe(400);
    expect(((await elsewhere.json()) as { error: { code: string } }).error.code).toBe("push_endpoint_not_allowed");
    const broken = await fetch(`${herald.url}/v1/push/subscriptions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ endpoint: subscription.endpoint, keys: { p256dh: "x", auth: "y" }, mailboxes: ["a"] }),
    });
    expect(broken.status).toBe(400);
  });

  it("holds each client without a token to push.maxSubscriptionsPerUser, however it names itself", async () => {
    const small = await startTestServer({ push: fixture.options({ maxSubscriptionsPerUser: 3 }) });
    try {
      const ids: string[] = [];
      for (const reader of ["carol", "dave", "erin"]) {
        const query = { query: `?reader=${reader}` };
        const response = await subscribePush(small.url, fixture.service.subscribe(), [`user:${reader}`], query);
        expect(response.status).toBe(201);
        ids.push(((await response.json()) as Created).id);
      }
      // A fourth name from the same address is the same client: refused until one is removed.
      const fourth = await subscribePush(small.url, fixture.service.subscribe(), ["user:fred"], {
        query: "?reader=fred",
      });
      expect(fourth.status).toBe(429);
      expect(((await fourth.json()) as { error: { code: string } }).error.code).toBe("too_many_push_subscriptions");
      expect((await fetch(`${small.url}/v1/push/subscriptions/${ids[0]}`, { method: "DELETE" })).status).toBe(204);
      expect((await subscribePush(small.url, fixture.service.subscribe(), ["user:fred"])).status).toBe(201);
    } finally {
      await small.shutdown();
    }
  });

  it("keeps a subscription at least an hour, whatever the browser says of its end", async () => {
    const subscription = fixture.service.subscribe();
    const post = (expirationTime: number) =>
      fetch(`${herald.url}/v1/push/subscriptions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          endpoint: subscription.endpoint,
          keys: subscription.keys,
          expirationTime,
          mailboxes: ["a"],
        }),
      });
    // Sooner would let a client make its subscriptions lapse at once and pass the per-user bound.
    const soon = await post(Date.now() + 1500);
    expect(soon.status).toBe(201);
    expect(Date.parse(((await soon.json()) as { expires: string }).expires)).toBeGreaterThan(Date.now() + 3590_000);
    const later = await post(Date.now() + 2 * 3600_000);
    expect(Date.parse(((await later.json()) as { expires: string }).expires)).toBeLessThanOrEqual(
      Date.now() + 2 * 3600_000,
    );
    // An end already past is refused.
    expect((await post(Date.now() - 1000)).status).toBe(400);
  });

  it("lets a subscription lapse when nobody renews it, and a renewal brings it back", async () => {
    const brief = await startTestServer({ push: fixture.options({ subscriptionTtlSeconds: 1 }) });
    try {
      const subscription = fixture.service.subscribe();
      const created = await subscribePush(brief.url, subscription, ["user:ivy"]);
      expect(created.status).toBe(201);
      const { id } = (await created.json()) as Created;
      await new Promise((resolve) => setTimeout(resolve, 1200));
      expect((await fetch(`${brief.url}/v1/push/subscriptions/${id}`)).status).toBe(404);
      await publish(brief.url, "user:ivy", { body: "to nobody" });
      // Renewed (the page posts it again on its next visit): the same id, pushed to again.
      const renewed = await subscribePush(brief.url, subscription, ["user:ivy"]);
      expect(renewed.status).toBe(200);
      expect(((await renewed.json()) as Created).id).toBe(id);
      await publish(brief.url, "user:ivy", { body: "to the renewed" });
      const [push] = await fixture.service.waitFor(1, { subscription });
      expect(payloadOf(push).body).toBe("to the renewed");
      expect(fixture.service.received.filter((received) => received.subscription === subscription)).toHaveLength(1);
    } finally {
      await brief.shutdown();
    }
  });

  it("removes a subscription its push service calls gone (410 and 404)", async () => {
    const gone = await subscribed(["user:erin"]);
    const unknown = await subscribed(["user:erin"]);
    fixture.service.answer(gone.subscription, { status: 410 });
    fixture.service.unsubscribe(unknown.subscription);
    const removedBefore = await metric("herald_push_subscriptions_removed_total");
    await publish(herald.url, "user:erin", { body: "anyone there?" });
    await until(async () => (await metric("herald_push_subscriptions_removed_total")) === removedBefore + 2);
    for (const { created } of [gone, unknown]) {
      expect((await fetch(`${herald.url}/v1/push/subscriptions/${created.id}`)).status).toBe(404);
    }
  });

  it("retries 429 after its Retry-After and 5xx with backoff, then gives up after maxAttempts", async () => {
    const limited = await subscribed(["user:fay"]);
    const flaky = await subscribed(["user:fay"]);
    const down = await subscribed(["user:fay"]);
    fixture.service.answer(limited.subscription, { status: 429, headers: { "Retry-After": "1" } });
    fixture.service.answer(flaky.subscription, { status: 500 }, { status: 503 });
    fixture.service.answer(down.subscription, { status: 500 }, { status: 500 }, { status: 500 }, { status: 500 });
    const failedBefore = await metric("herald_push_failed_total");
    const started = Date.now();
    await publish(herald.url, "user:fay", { body: "eventually" });
    const [late] = await fixture.service.waitFor(1, { subscription: limited.subscription });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(payloadOf(late).body).toBe("eventually");
    await fixture.service.waitFor(1, { subscription: flaky.subscription });
    await until(async () => (await metric("herald_push_failed_total")) === failedBefore + 1);
    const attempts = fixture.service.requests.filter((request) => request.subscription === down.subscription);
    expect(attempts.map((request) => request.status)).toEqual([500, 500, 500]);
    expect(await metric("herald_push_retries_total")).toBeGreaterThanOrEqual(1 + 2 + 2);
    // Gave up, not removed: a broken push service is not the user unsubscribing.
    expect((await fetch(`${herald.url}/v1/push/subscriptions/${down.created.id}`)).status).toBe(200);
  });

  it("sends again without data when the push service says 413", async () => {
    const { subscription } = await subscribed(["user:gus"]);
    fixture.service.answer(subscription, { status: 413 });
    await publish(herald.url, "user:gus", { body: "small", data: { big: "x".repeat(2000) } });
    const [push] = await fixture.service.waitFor(1, { subscription });
    expect(payloadOf(push).body).toBe("small");
    expect(payloadOf(push).data).toBeUndefined();
    expect(payloadOf(push).truncated).toEqual(["data"]);
  });

  it("pushes a scheduled message when it is delivered, not when it is scheduled", async () => {
    const { subscription } = await subscribed(["user:hal"]);
    const response = await fetch(`${herald.url}/v1/mailboxes/user:hal/messages?delay=1`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ body: "later" }),
    });
    expect(response.status).toBe(202);
    const scheduledAt = Date.now();
    const [push] = await fixture.service.waitFor(1, { subscription, timeoutMs: 10_000 });
    expect(Date.now() - scheduledAt).toBeGreaterThanOrEqual(900);
    expect(payloadOf(push).body).toBe("later");
  });

  it("counts what it sent in /metrics", async () => {
    expect(await metric("herald_push_sent_total")).toBeGreaterThanOrEqual(8);
    expect(await metric("herald_push_subscriptions")).toBeGreaterThan(5);
    expect(await metric("herald_push_queued")).toBe(0);
  });
});

describe("Web Push bounds", () => {
  it("holds pushes to push.concurrency in flight, and drops what push.maxQueue cannot hold", async () => {
    const bounded = await startTestServer({ push: fixture.options({ concurrency: 2, maxQueue: 4 }) });
    try {
      const subscriptions = Array.from({ length: 6 }, () => fixture.service.subscribe());
      for (const subscription of subscriptions) {
        fixture.service.answer(subscription, { delayMs: 300 });
        expect((await subscribePush(bounded.url, subscription, ["room:bounded"])).status).toBe(201);
      }
      const read = async (name: string) => {
        const text = await (await fetch(`${bounded.url}/metrics`)).text();
        return Number(
          text
            .split("\n")
            .find((line) => line.startsWith(`${name} `))
            ?.split(" ")[1],
        );
      };
      const started = Date.now();
      await publish(bounded.url, "room:bounded", { body: "to six browsers" });
      const inFlight: number[] = [];
      while (Date.now() - started < 500) {
        inFlight.push(await read("herald_push_in_flight"));
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // Four fit the queue (two of them at once), two are dropped.
      const ours = () => fixture.service.received.filter((push) => subscriptions.includes(push.subscription));
      await until(() => ours().length === 4);
      await until(async () => (await read("herald_push_in_flight")) === 0);
      expect(ours()).toHaveLength(4);
      expect(Date.now() - started).toBeGreaterThanOrEqual(600);
      expect(Math.max(...inFlight)).toBe(2);
      expect(await read("herald_push_dropped_total")).toBe(2);
      expect(await read("herald_push_failed_total")).toBe(2);
      expect(await read("herald_push_sent_total")).toBe(4);
    } finally {
      await bounded.shutdown();
    }
  });
});

describe("Web Push, not configured", () => {
  it("answers 404 push_unavailable on every push route", async () => {
    const plain = await startTestServer();
    try {
      for (const [method, path] of [
        ["GET", "/v1/push/vapid-public-key"],
        ["POST", "/v1/push/subscriptions"],
        ["GET", "/v1/push/subscriptions/abc"],
        ["DELETE", "/v1/push/subscriptions/abc"],
      ] as const) {
        const response = await fetch(`${plain.url}${path}`, { method, ...(method === "POST" ? { body: "{}" } : {}) });
        expect(response.status, `${method} ${path}`).toBe(404);
        expect(((await response.json()) as { error: { code: string } }).error.code).toBe("push_unavailable");
      }
    } finally {
      await plain.shutdown();
    }
  });
});
