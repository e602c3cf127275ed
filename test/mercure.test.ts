import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { createRedisPresence } from "../src/store/redis-presence.js";
import { createRedisStore } from "../src/store/redis-store.js";
import { StreamClient } from "./helpers/clients.js";
import { accessToken, legacyToken, mercurePublish, mercureSettings, subscribeUrl } from "./helpers/mercure.js";
import { deleteKeys, testRedis, uniquePrefix } from "./helpers/redis.js";
import { startTestServer } from "./helpers/server.js";

const redis = await testRedis();
// .ci/run sets HERALD_REQUIRE_REDIS=1, so testRedis() throws there instead of returning a reason: CI runs both.
const backends = "reason" in redis ? ["memory"] : ["memory", "redis"];
if ("reason" in redis) console.warn(`Mercure on Redis skipped: ${redis.reason}`);

const everything = [{ match: "*" }];
const clients: StreamClient[] = [];
const servers: RunningHerald[] = [];
const prefixes: string[] = [];

afterAll(async () => {
  for (const client of clients) client.close();
  for (const server of servers) await server.shutdown();
  if (!("reason" in redis)) {
    for (const prefix of prefixes) await deleteKeys(redis.url, prefix);
    await redis.stop();
  }
});

async function hub(backend: string, settings = mercureSettings()): Promise<RunningHerald> {
  let customStore: ReturnType<typeof createRedisStore> | undefined;
  if (backend === "redis" && !("reason" in redis)) {
    const keyPrefix = uniquePrefix("mercure");
    prefixes.push(keyPrefix);
    customStore = createRedisStore({ url: redis.url, keyPrefix, maxMessagesPerMailbox: 1000 });
    await customStore.whenReady(5000);
  }
  const server = await startTestServer({ mercure: settings, ...(customStore ? { customStore } : {}) });
  servers.push(server);
  return server;
}

async function subscribe(url: string, headers: Record<string, string> = {}): Promise<StreamClient> {
  const client = new StreamClient(url, headers);
  clients.push(client);
  await client.opened;
  // The first bytes (a comment) mean the subscription is registered: nothing published after is missed.
  await client.until(() => client.raw.length > 0);
  return client;
}

describe.each(backends)("Mercure hub on %s", (backend) => {
  let server: RunningHerald;
  let publisher: string;
  beforeAll(async () => {
    server = await hub(backend);
    publisher = await accessToken({ publish: everything });
  });

  it("delivers an update to exact, URL-pattern, URI-template and wildcard matchers, and not to others", async () => {
    const topic = `https://example.com/books/${crypto.randomUUID()}`;
    const exact = await subscribe(subscribeUrl(server.url, [["match", topic]]));
    const pattern = await subscribe(subscribeUrl(server.url, [["match_urlpattern", "https://example.com/books/:id"]]));
    const template = await subscribe(subscribeUrl(server.url, [["topic", "https://example.com/books/{id}"]]));
    const wildcard = await subscribe(subscribeUrl(server.url, [["match", "*"]]));
    const other = await subscribe(subscribeUrl(server.url, [["match_urlpattern", "https://example.com/films/:id"]]));
    const published = await mercurePublish(
      server.url,
      [
        ["topic", topic],
        ["data", "first line\nsecond line\r\nthird"],
        ["id", `id-${topic}`],
        ["type", "book"],
        ["retry", "3000"],
      ],
      publisher,
    );
    expect(published.status).toBe(200);
    expect(published.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(published.text).toBe(`id-${topic}`);
    for (const client of [exact, pattern, template, wildcard]) {
      await client.until(() => client.events.some((event) => event.id === `id-${topic}`));
      const event = client.events.find((candidate) => candidate.id === `id-${topic}`);
      expect(event).toEqual({ event: "book", id: `id-${topic}`, data: "first line\nsecond line\nthird" });
    }
    expect(exact.raw).toContain("retry: 3000\n");
    // A later update reaches the wildcard after the first one, so the non-matching subscriber had its chance.
    await mercurePublish(server.url, [["topic", "elsewhere"]], publisher);
    await wildcard.until(() => wildcard.events.length === 2);
    expect(other.events).toEqual([]);
  });

  it("generates urn:uuid ids, and sends alternate topics' subscribers the update once", async () => {
    const alternate = `alt-${crypto.randomUUID()}`;
    const client = await subscribe(
      subscribeUrl(server.url, [
        ["match", "canonical"],
        ["match", alternate],
      ]),
    );
    const published = await mercurePublish(
      server.url,
      [
        ["topic", "canonical"],
        ["topic", alternate],
        ["data", "x"],
      ],
      publisher,
    );
    expect(published.text).toMatch(/^urn:uuid:[0-9a-f-]{36}$/);
    await client.until(() => client.events.some((event) => event.id === published.text));
    await mercurePublish(server.url, [["topic", alternate]], publisher);
    await client.until(() => client.events.length === 2);
    expect(client.events.filter((event) => event.id === published.text)).toHaveLength(1);
  });

  it("sends private updates only to subscribers whose token grants one of their topics", async () => {
    const topic = `https://example.com/users/${crypto.randomUUID()}`;
    const anonymous = await subscribe(subscribeUrl(server.url, [["match", topic]]));
    const allowed = await subscribe(subscribeUrl(server.url, [["match", topic]]), {
      Authorization: `Bearer ${await accessToken({ subscribe: [{ match: "https://example.com/users/:id", match_type: "urlpattern" }] })}`,
    });
    const elsewhere = await subscribe(subscribeUrl(server.url, [["match", topic]]), {
      Cookie: `mercureAuthorization=${await accessToken({ subscribe: [{ match: "https://example.com/other" }] })}`,
    });
    const secret = await mercurePublish(
      server.url,
      [
        ["topic", topic],
        ["data", "secret"],
        ["private", ""],
      ],
      publisher,
    );
    const open = await mercurePublish(
      server.url,
      [
        ["topic", topic],
        ["data", "public"],
      ],
      publisher,
    );
    await allowed.until(() => allowed.events.length === 2);
    expect(allowed.events.map((event) => event.id)).toEqual([secret.text, open.text]);
    for (const client of [anonymous, elsewhere]) {
      await client.until(() => client.events.length === 1);
      expect(client.events.map((event) => event.data)).toEqual(["public"]);
    }
  });

  it("resumes exactly after Last-Event-ID, last_event_id or lastEventID, and says earliest for an unknown id", async () => {
    const topic = `resume-${crypto.randomUUID()}`;
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) {
      ids.push(
        (
          await mercurePublish(
            server.url,
            [
              ["topic", topic],
              ["data", `m${i}`],
            ],
            publisher,
          )
        ).text,
      );
    }
    const byHeader = await subscribe(subscribeUrl(server.url, [["match", topic]]), {
      "Last-Event-ID": ids[1] as string,
    });
    const byQuery = await subscribe(
      subscribeUrl(server.url, [
        ["match", topic],
        ["last_event_id", ids[2] as string],
      ]),
    );
    const byLegacy = await subscribe(
      subscribeUrl(server.url, [
        ["topic", topic],
        ["lastEventID", ids[3] as string],
      ]),
    );
    const earliest = await subscribe(
      subscribeUrl(server.url, [
        ["match", topic],
        ["last_event_id", "earliest"],
      ]),
    );
    const unknown = await subscribe(subscribeUrl(server.url, [["match", topic]]), { "Last-Event-ID": "no-such-id" });
    const live = await mercurePublish(
      server.url,
      [
        ["topic", topic],
        ["data", "m6"],
      ],
      publisher,
    );
    const expectations: [StreamClient, string[], string][] = [
      [byHeader, ["m3", "m4", "m5", "m6"], ids[1] as string],
      [byQuery, ["m4", "m5", "m6"], ids[2] as string],
      [byLegacy, ["m5", "m6"], ids[3] as string],
      [earliest, ["m1", "m2", "m3", "m4", "m5", "m6"], "earliest"],
      [unknown, ["m1", "m2", "m3", "m4", "m5", "m6"], "earliest"],
    ];
    for (const [client, data, header] of expectations) {
      await client.until(() => client.events.some((event) => event.id === live.text));
      expect(client.events.map((event) => event.data)).toEqual(data);
      expect(client.headers["mercure-last-event-id"]).toBe(header);
    }
  });

  it("loses nothing and repeats nothing across reconnects while updates keep coming", async () => {
    const topic = `churn-${crypto.randomUUID()}`;
    const received: string[] = [];
    let lastId: string | undefined;
    const publishing = (async () => {
      for (let i = 0; i < 60; i++)
        await mercurePublish(
          server.url,
          [
            ["topic", topic],
            ["data", `n${i}`],
          ],
          publisher,
        );
    })();
    let done = false;
    void publishing.then(() => {
      done = true;
    });
    for (let round = 0; round < 40 && !(done && received.length === 60); round++) {
      const client = await subscribe(
        subscribeUrl(server.url, [["match", topic]]),
        lastId ? { "Last-Event-ID": lastId } : { "Last-Event-ID": "earliest" },
      );
      await new Promise((resolve) => setTimeout(resolve, 15));
      client.close();
      await client.closed;
      for (const event of client.events) {
        received.push(event.data);
        lastId = event.id;
      }
    }
    await publishing;
    const tail = await subscribe(subscribeUrl(server.url, [["match", topic]]), {
      "Last-Event-ID": lastId ?? "earliest",
    });
    await tail.until(() => received.length + tail.events.length >= 60);
    received.push(...tail.events.map((event) => event.data));
    expect(received).toEqual(Array.from({ length: 60 }, (_, i) => `n${i}`));
  });
});

describe("Mercure authorization and validation", () => {
  let server: RunningHerald;
  let publisher: string;
  beforeAll(async () => {
    server = await hub("memory", mercureSettings({ anonymousSubscribers: false }));
    publisher = await accessToken({ publish: everything });
  });

  it("answers 401 with a Bearer challenge without a token, invalid_token for a bad one, insufficient_scope beyond its grants", async () => {
    const noToken = await mercurePublish(server.url, [["topic", "a"]]);
    expect(noToken.status).toBe(401);
    expect(noToken.headers.get("www-authenticate")).toBe("Bearer");
    const tokens = [
      await accessToken({ publish: everything, secret: "another secret of at least thirty-two bytes" }),
      await accessToken({ publish: everything, audience: "https://elsewhere.example/.well-known/mercure" }),
      await accessToken({ publish: everything, issuer: "https://untrusted.example" }),
      await accessToken({ publish: everything, expiresInSeconds: -60 }),
      "not.a.token",
    ];
    for (const token of tokens) {
      const answer = await mercurePublish(server.url, [["topic", "a"]], token);
      expect(answer.status, token).toBe(401);
      expect(answer.headers.get("www-authenticate")).toBe('Bearer error="invalid_token"');
    }
    const narrow = await accessToken({
      publish: [{ match: "https://example.com/books/:id", match_type: "urlpattern" }],
    });
    const outside = await mercurePublish(
      server.url,
      [
        ["topic", "https://example.com/books/1"],
        ["topic", "https://example.com/films/1"],
      ],
      narrow,
    );
    expect(outside.status).toBe(403);
    expect(outside.headers.get("www-authenticate")).toBe('Bearer error="insufficient_scope"');
    expect((await mercurePublish(server.url, [["topic", "https://example.com/books/1"]], narrow)).status).toBe(200);
    const subscriberOnly = await accessToken({ subscribe: everything });
    expect((await mercurePublish(server.url, [["topic", "a"]], subscriberOnly)).status).toBe(403);
  });

  it("takes pre-standard tokens: the mercure claim's selectors, in the header, the cookie or ?authorization=", async () => {
    const token = await legacyToken({ publish: ["https://example.com/books/{id}"], subscribe: ["*"] });
    expect((await mercurePublish(server.url, [["topic", "https://example.com/books/7"]], token)).status).toBe(200);
    expect((await mercurePublish(server.url, [["topic", "https://example.com/films/7"]], token)).status).toBe(403);
    const byQuery = await subscribe(
      subscribeUrl(server.url, [
        ["topic", "https://example.com/books/{id}"],
        ["authorization", token],
      ]),
    );
    expect(byQuery.status).toBe(200);
    await mercurePublish(
      server.url,
      [
        ["topic", "https://example.com/books/8"],
        ["private", "on"],
        ["data", "p"],
      ],
      token,
    );
    await byQuery.until(() => byQuery.events.length === 1);
    expect(byQuery.events[0]?.data).toBe("p");
  });

  it("refuses anonymous subscribers when configured to, and malformed subscriptions with 400", async () => {
    expect((await fetch(subscribeUrl(server.url, [["match", "a"]]))).status).toBe(401);
    const subscriber = await accessToken({ subscribe: everything });
    const bad = [
      [],
      [["match_regex", "a"]],
      [["MATCH", "a"]],
      [["match_urlpattern", "https://example.com/("]],
      // Shapes whose regular expressions backtrack without bound on a hostile topic.
      [["match_urlpattern", "https://example.com/:a+:b+:c+/x"]],
      [["match_urlpattern", "https://example.com/:a:b:c:d"]],
      [["match_urlpattern", "https://example.com/((a+)+)"]],
      [["match_urlpattern", "https://example.com/*/*/*"]],
      [["match", "a\u0000b"]],
    ] as [string, string][][];
    for (const params of bad) {
      const response = await fetch(subscribeUrl(server.url, params), {
        headers: { Authorization: `Bearer ${subscriber}` },
      });
      expect(response.status, JSON.stringify(params)).toBe(400);
      await response.body?.cancel();
    }
  });

  it("validates updates: 400 for what the standard forbids, 413 past the bounds", async () => {
    const cases: [[string, string][], number][] = [
      [[["data", "no topic"]], 400],
      [[["topic", "*"]], 400],
      [[["topic", "/.well-known/mercure/subscriptions/x"]], 400],
      [[["topic", "https://any.example/.well-known/%6Dercure"]], 400],
      [[["topic", "/a/../.well-known/mercure/x"]], 400],
      [
        [
          ["topic", "a"],
          ["type", "mercure"],
        ],
        400,
      ],
      [
        [
          ["topic", "a"],
          ["id", "#fragment"],
        ],
        400,
      ],
      [
        [
          ["topic", "a"],
          ["id", "earliest"],
        ],
        400,
      ],
      [
        [
          ["topic", "a"],
          ["retry", "soon"],
        ],
        400,
      ],
      [[["topic", "a\u202eb"]], 400],
      [Array.from({ length: 33 }, (_, i) => ["topic", `t${i}`] as [string, string]), 413],
    ];
    for (const [fields, status] of cases) {
      const answer = await mercurePublish(server.url, fields, publisher);
      expect(answer.status, JSON.stringify(fields)).toBe(status);
    }
    const json = await fetch(`${server.url}/.well-known/mercure`, {
      method: "POST",
      headers: { Authorization: `Bearer ${publisher}`, "Content-Type": "application/json" },
      body: JSON.stringify({ topic: "a" }),
    });
    expect(json.status).toBe(400);
  });

  it("adds the discovery Link header to Herald's own responses", async () => {
    const response = await fetch(`${server.url}/v1/mailboxes/news/messages`);
    expect(response.headers.get("link")).toBe(`<${server.url}/.well-known/mercure>; rel="mercure"`);
  });

  it("ends a subscriber's stream when its token expires", async () => {
    const shortLived = await accessToken({ subscribe: everything, expiresInSeconds: 2 });
    const client = await subscribe(subscribeUrl(server.url, [["match", "a"]]), {
      Authorization: `Bearer ${shortLived}`,
    });
    await client.closed;
    expect(client.ended).toBe(true);
  });
});

describe("Mercure active subscriptions", () => {
  it("announces subscriptions as private updates and lists them, to tokens granted their topics", async () => {
    const server = await hub("memory", mercureSettings({ subscriptions: true }));
    const watcherToken = await accessToken({
      subscribe: [{ match: "/.well-known/mercure/subscriptions{/*}?", match_type: "urlpattern" }],
    });
    const watcher = await subscribe(
      subscribeUrl(server.url, [["match_urlpattern", "/.well-known/mercure/subscriptions/:type/:match/:subscriber"]]),
      { Authorization: `Bearer ${watcherToken}` },
    );
    const anonymousWatcher = await subscribe(
      subscribeUrl(server.url, [["match_urlpattern", "/.well-known/mercure/subscriptions/:type/:match/:subscriber"]]),
    );
    const member = await subscribe(subscribeUrl(server.url, [["match", "https://example.com/room"]]), {
      Authorization: `Bearer ${await accessToken({ subscribe: everything, payload: { name: "ada" } })}`,
    });
    await watcher.until(() => watcher.events.some((event) => event.data.includes("example.com%2Froom")));
    const joined = watcher.events.find((event) => event.data.includes("example.com%2Froom"));
    expect(joined?.event).toBe("mercure");
    const document = JSON.parse(joined?.data ?? "{}") as Record<string, unknown>;
    expect(document).toMatchObject({
      type: "subscription",
      match_type: "exact",
      match: "https://example.com/room",
      active: true,
      payload: { name: "ada" },
    });
    expect(String(document.id)).toMatch(
      /^\/\.well-known\/mercure\/subscriptions\/exact\/https%3A%2F%2Fexample\.com%2Froom\/urn%3Auuid%3A/,
    );

    const list = async (path: string, token = watcherToken) =>
      fetch(`${server.url}${path}`, { headers: { Authorization: `Bearer ${token}` } });
    const all = await list("/.well-known/mercure/subscriptions");
    expect(all.status).toBe(200);
    expect(all.headers.get("link")).toMatch(/rel="mercure"; last-event-id="urn:uuid:[^"]+"; type="mercure"/);
    const collection = (await all.json()) as { type: string; subscriptions: { id: string }[] };
    expect(collection.type).toBe("subscriptions");
    expect(collection.subscriptions.map((entry) => entry.id)).toContain(document.id);
    const one = await list(String(document.id));
    expect(await one.json()).toEqual(document);
    const byMatcher = (await (
      await list("/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fexample.com%2Froom")
    ).json()) as { subscriptions: unknown[] };
    expect(byMatcher.subscriptions).toEqual([document]);
    expect((await list("/.well-known/mercure/subscriptions/exact/x/urn%3Auuid%3Anone")).status).toBe(404);
    const outsider = await accessToken({ subscribe: [{ match: "https://example.com/room" }] });
    expect((await list("/.well-known/mercure/subscriptions", outsider)).status).toBe(403);
    expect((await fetch(`${server.url}/.well-known/mercure/subscriptions`)).status).toBe(401);

    member.close();
    await watcher.until(() => watcher.events.some((event) => event.data.includes('"active":false')));
    const left = JSON.parse(watcher.events.find((event) => event.data.includes('"active":false'))?.data ?? "{}");
    expect(left).toMatchObject({ id: document.id, active: false });
    expect(anonymousWatcher.events).toEqual([]);
  });
});

describe.skipIf("reason" in redis)("Mercure on Redis, two nodes", () => {
  it("delivers, resumes by id and lists subscriptions across nodes", async () => {
    if ("reason" in redis) return;
    const keyPrefix = uniquePrefix("mercure-two");
    prefixes.push(keyPrefix);
    const node = async () => {
      const store = createRedisStore({ url: redis.url, keyPrefix, maxMessagesPerMailbox: 1000 });
      await store.whenReady(5000);
      const presence = createRedisPresence({ url: redis.url, keyPrefix });
      await presence.whenReady(5000);
      const server = await startTestServer({
        customStore: store,
        presence,
        mercure: mercureSettings({ subscriptions: true }),
      });
      servers.push(server);
      return server;
    };
    const [a, b] = [await node(), await node()];
    const publisher = await accessToken({ publish: everything });
    const topic = `https://example.com/two/${crypto.randomUUID()}`;
    const onB = await subscribe(subscribeUrl(b.url, [["match", topic]]));
    const first = await mercurePublish(
      a.url,
      [
        ["topic", topic],
        ["data", "one"],
      ],
      publisher,
    );
    const second = await mercurePublish(
      a.url,
      [
        ["topic", topic],
        ["data", "two"],
      ],
      publisher,
    );
    await onB.until(() => onB.events.length === 2);
    expect(onB.events.map((event) => event.id)).toEqual([first.text, second.text]);
    // Node B never saw these ids published: it finds them in the shared log.
    const resumed = await subscribe(subscribeUrl(b.url, [["match", topic]]), { "Last-Event-ID": first.text });
    await resumed.until(() => resumed.events.length === 1);
    expect(resumed.events[0]?.data).toBe("two");
    expect(resumed.headers["mercure-last-event-id"]).toBe(first.text);
    const admin = await accessToken({ subscribe: everything });
    const listed = await fetch(`${a.url}/.well-known/mercure/subscriptions/exact/${encodeURIComponent(topic)}`, {
      headers: { Authorization: `Bearer ${admin}` },
    });
    const collection = (await listed.json()) as { subscriptions: { match: string; active: boolean }[] };
    expect(collection.subscriptions).toHaveLength(2);
    expect(collection.subscriptions.every((entry) => entry.match === topic && entry.active)).toBe(true);
  });
});

describe("the hub's mailboxes are the hub's", () => {
  it("refuses Herald's own routes, the ntfy API and webhooks-alike publishes on them", async () => {
    const server = await hub("memory", mercureSettings({ subscriptions: true }));
    const publisher = await accessToken({ publish: everything });
    await mercurePublish(
      server.url,
      [
        ["topic", "secret"],
        ["data", "TOP SECRET"],
        ["private", "on"],
      ],
      publisher,
    );
    for (const mailbox of ["mercure", "mercure.subscriptions"]) {
      const reads = [
        `${server.url}/v1/mailboxes/${mailbox}/messages`,
        `${server.url}/v1/messages?mailbox=${mailbox}`,
        `${server.url}/v1/mailboxes/${mailbox}/latest`,
        `${server.url}/v1/mailboxes/${mailbox}/presence`,
      ];
      for (const url of reads) {
        const response = await fetch(url);
        expect(response.status, url).toBe(403);
        expect(await response.text()).not.toContain("TOP SECRET");
      }
      const forged = await fetch(`${server.url}/v1/mailboxes/${mailbox}/messages`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ data: { mercure: { topics: ["secret"], id: "forged" } } }),
      });
      expect(forged.status).toBe(403);
    }
    expect((await fetch(`${server.url}/ntfy/mercure/json?poll=1&since=all`)).status).toBe(403);
    expect((await fetch(`${server.url}/ntfy/mercure`, { method: "POST", body: "x" })).status).toBe(403);
  });

  it("keeps subscription events out of the updates' history: connections coming and going evict nothing", async () => {
    const server = await startTestServer({
      mercure: mercureSettings({ subscriptions: true }),
      store: { maxMessagesPerMailbox: 5 },
    });
    servers.push(server);
    const publisher = await accessToken({ publish: everything });
    const topic = `kept-${crypto.randomUUID()}`;
    for (const data of ["u1", "u2", "u3"])
      await mercurePublish(
        server.url,
        [
          ["topic", topic],
          ["data", data],
        ],
        publisher,
      );
    for (let i = 0; i < 5; i++) {
      const passing = await subscribe(
        subscribeUrl(server.url, [
          ["match", "*"],
          ["match_urlpattern", "https://x/:y"],
        ]),
      );
      passing.close();
      await passing.closed;
    }
    const resumed = await subscribe(
      subscribeUrl(server.url, [
        ["match", topic],
        ["last_event_id", "earliest"],
      ]),
    );
    await resumed.until(() => resumed.events.length === 3);
    expect(resumed.events.map((event) => event.data)).toEqual(["u1", "u2", "u3"]);
  });
});
