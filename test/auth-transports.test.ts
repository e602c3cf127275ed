import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { bearer, hsToken, makeKey, noneToken, publishStatus, SECRET, startAuthServer, tamper } from "./helpers/auth.js";
import { StreamClient } from "./helpers/clients.js";

/** Each read transport, single- and multi-mailbox, as a path for the given mailboxes. */
const TRANSPORTS: Record<string, (mailboxes: string[]) => string> = {
  "read / long-poll": (m) => `/v1/mailboxes/${m[0]}/messages?limit=10`,
  "read / long-poll, several mailboxes": (m) => `/v1/messages?${m.map((x) => `mailbox=${x}`).join("&")}`,
  SSE: (m) => `/v1/mailboxes/${m[0]}/events`,
  "SSE, several mailboxes": (m) => `/v1/events?${m.map((x) => `mailbox=${x}`).join("&")}`,
  ndjson: (m) => `/v1/mailboxes/${m[0]}/stream`,
  "ndjson, several mailboxes": (m) => `/v1/stream?${m.map((x) => `mailbox=${x}`).join("&")}`,
};

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Status and head of a GET; a stream is cut once its head arrives. */
function get(base: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { headers }, (res) => {
      const streaming = /event-stream|ndjson/.test(String(res.headers["content-type"]));
      if (streaming) {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: "" });
        req.destroy();
        return;
      }
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

function withQuery(path: string, name: string, value: string): string {
  return `${path}${path.includes("?") ? "&" : "?"}${name}=${encodeURIComponent(value)}`;
}

let herald: RunningHerald;
const publisher = makeKey("ci", ["*"]);

beforeAll(async () => {
  herald = await startAuthServer({ auth: { keys: [publisher.entry], tokens: { hs256Secret: SECRET } } });
});
afterAll(() => herald.shutdown());

describe.each(Object.entries(TRANSPORTS))("%s", (_name, pathFor) => {
  it("refuses a request without a token with 401 and WWW-Authenticate", async () => {
    const answer = await get(herald.url, pathFor(["user:alice"]));
    expect(answer.status).toBe(401);
    expect(answer.headers["www-authenticate"]).toMatch(/^Bearer/);
    expect(JSON.parse(answer.body).error.code).toBe("unauthorized");
  });

  it("refuses an expired token with 401", async () => {
    const token = await hsToken({ mailboxes: ["user:alice"], expiresIn: -60 });
    const answer = await get(herald.url, pathFor(["user:alice"]), bearer(token));
    expect(answer.status).toBe(401);
    expect(answer.body).toContain("expired");
  });

  it("refuses a token for mailbox A on mailbox B with 403", async () => {
    const token = await hsToken({ mailboxes: ["user:alice"] });
    const answer = await get(herald.url, pathFor(["user:bob"]), bearer(token));
    expect(answer.status).toBe(403);
    expect(JSON.parse(answer.body).error.code).toBe("forbidden");
  });

  it("checks every mailbox of the request", async () => {
    const token = await hsToken({ mailboxes: ["user:alice"] });
    const answer = await get(herald.url, pathFor(["user:alice", "user:bob"]), bearer(token));
    // Single-mailbox forms only touch the first one, which is allowed.
    expect(answer.status).toBe(pathFor(["a", "b"]).includes("mailbox=b") ? 403 : 200);
  });

  it("honours wildcard scopes", async () => {
    const token = await hsToken({ mailboxes: ["room:4*", "user:*"] });
    expect((await get(herald.url, pathFor(["room:42", "user:zed"]), bearer(token))).status).toBe(200);
    expect((await get(herald.url, pathFor(["room:5"]), bearer(token))).status).toBe(403);
  });

  it("refuses alg none, HS384/HS512 with the right secret, a tampered signature and another secret", async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const none = noneToken({ sub: "alice", mailboxes: ["*"], exp });
    const good = await hsToken({ mailboxes: ["user:alice"] });
    const foreign = await hsToken({ mailboxes: ["user:alice"] }, "another-secret-that-is-long-enough-too!!");
    // Correctly signed with the configured secret, but only HS256 is accepted.
    const hs384 = await hsToken({ mailboxes: ["user:alice"] }, SECRET, "HS384");
    const hs512 = await hsToken({ mailboxes: ["user:alice"] }, SECRET, "HS512");
    for (const token of [none, hs384, hs512, tamper(good), foreign, "not-a-token"]) {
      const answer = await get(herald.url, pathFor(["user:alice"]), bearer(token));
      expect(answer.status, token).toBe(401);
    }
    expect((await get(herald.url, pathFor(["user:alice"]), bearer(good))).status).toBe(200);
  });

  it("accepts the token from the herald_token cookie and from ?token=", async () => {
    const token = await hsToken({ mailboxes: ["user:alice"] });
    expect((await get(herald.url, pathFor(["user:alice"]), { cookie: `other=1; herald_token=${token}` })).status).toBe(
      200,
    );
    expect((await get(herald.url, withQuery(pathFor(["user:alice"]), "token", token))).status).toBe(200);
    expect((await get(herald.url, withQuery(pathFor(["user:alice"]), "token", tamper(token)))).status).toBe(401);
    const hs512 = await hsToken({ mailboxes: ["user:alice"] }, SECRET, "HS512");
    expect((await get(herald.url, withQuery(pathFor(["user:alice"]), "token", hs512))).status).toBe(401);
    expect((await get(herald.url, pathFor(["user:alice"]), { cookie: `herald_token=${hs512}` })).status).toBe(401);
  });

  it("does not let a publisher API key read", async () => {
    const answer = await get(herald.url, pathFor(["user:alice"]), bearer(publisher.key));
    expect(answer.status).toBe(403);
    expect(answer.body).toContain("tokens");
  });
});

describe("an authorised subscriber", () => {
  it("receives what is published, on SSE (query token) and ndjson (cookie)", async () => {
    const token = await hsToken({ mailboxes: ["user:carol"] });
    const sse = new StreamClient(`${herald.url}/v1/mailboxes/user:carol/events?token=${token}`);
    const ndjson = new StreamClient(`${herald.url}/v1/stream?mailbox=user:carol`, { cookie: `herald_token=${token}` });
    await Promise.all([sse.opened, ndjson.opened]);
    expect([sse.status, ndjson.status]).toEqual([200, 200]);
    expect((await publishStatus(herald.url, "user:carol", bearer(publisher.key), { body: "hello" })).status).toBe(201);
    expect((await sse.untilMessages(1))[0]?.body).toBe("hello");
    expect((await ndjson.untilMessages(1))[0]?.body).toBe("hello");
    sse.close();
    ndjson.close();
  });

  it("gets a long-poll answer when a message arrives", async () => {
    const token = await hsToken({ mailboxes: ["user:dave"] });
    const held = fetch(`${herald.url}/v1/mailboxes/user:dave/messages?cursor=now&wait=10`, { headers: bearer(token) });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await publishStatus(herald.url, "user:dave", bearer(publisher.key), { body: "ping" });
    const answer = (await (await held).json()) as { messages: { body: string }[] };
    expect(answer.messages.map((m) => m.body)).toEqual(["ping"]);
  });
});
