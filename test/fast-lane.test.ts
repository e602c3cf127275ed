import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { startTestServer } from "./helpers/server.js";

/**
 * A publish to one mailbox without an Origin header is answered by the fast
 * lane (straight from Node's request and response); with one, by Hono and its
 * middleware. Both must answer every case alike.
 */

let herald: RunningHerald;
beforeAll(async () => {
  herald = await startTestServer({ config: { maxBodyBytes: 1024 } });
});
afterAll(async () => {
  await herald.shutdown();
});

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

function post(path: string, body: string, headers: Record<string, string>, method = "POST"): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${herald.url}${path}`, { method, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on("error", reject);
    req.end(method === "GET" ? undefined : body);
  });
}

/** What must match between the two paths: ids, times and cursors differ by nature. */
function shape(answer: Answer): unknown {
  const parsed = answer.body.length > 0 ? (JSON.parse(answer.body) as Record<string, unknown>) : undefined;
  const { id: _i, time: _t, expires: _e, cursor: _c, seq: _s, scheduledFor: _f, ...rest } = parsed ?? {};
  return {
    status: answer.status,
    contentType: answer.headers["content-type"],
    requestIdEchoed: answer.headers["x-request-id"] === "lane-test-1",
    retryAfter: answer.headers["retry-after"],
    body: rest,
  };
}

const CASES: { name: string; path: string; body: string; headers?: Record<string, string>; method?: string }[] = [
  { name: "a JSON message", path: "/v1/mailboxes/room:lane/messages", body: '{"body":"hi","data":{"n":1}}' },
  {
    name: "a text message",
    path: "/v1/mailboxes/room:lane/messages",
    body: "plain",
    headers: { "Content-Type": "text/plain" },
  },
  { name: "an encoded mailbox name", path: "/v1/mailboxes/room%3Aencoded/messages", body: '{"body":"x"}' },
  { name: "bad JSON", path: "/v1/mailboxes/room:lane/messages", body: "{nope" },
  { name: "a bad mailbox name", path: "/v1/mailboxes/%20bad%20/messages", body: '{"body":"x"}' },
  { name: "a malformed escape", path: "/v1/mailboxes/room%zz/messages", body: '{"body":"x"}' },
  { name: "a body over the limit", path: "/v1/mailboxes/room:lane/messages", body: `{"body":"${"x".repeat(2000)}"}` },
  { name: "a scheduled message", path: "/v1/mailboxes/room:lane/messages?delay=60", body: '{"body":"later"}' },
  { name: "delay and at both", path: "/v1/mailboxes/room:lane/messages?delay=60&at=2030-01-01T00:00:00Z", body: "{}" },
  {
    name: "a host that is not loopback",
    path: "/v1/mailboxes/room:lane/messages",
    body: "{}",
    headers: { Host: "evil.example" },
  },
  { name: "a read", path: "/v1/mailboxes/room:lane/messages?limit=2", body: "", method: "GET" },
  { name: "a read of an encoded name", path: "/v1/mailboxes/room%3Aencoded/messages", body: "", method: "GET" },
  {
    name: "a filtered read",
    path: "/v1/mailboxes/room:lane/messages?tags=a&tags=b&priority=3",
    body: "",
    method: "GET",
  },
  { name: "a bad cursor", path: "/v1/mailboxes/room:lane/messages?cursor=%%%", body: "", method: "GET" },
  { name: "a bad limit", path: "/v1/mailboxes/room:lane/messages?limit=0", body: "", method: "GET" },
  { name: "a bad wait", path: "/v1/mailboxes/room:lane/messages?wait=99", body: "", method: "GET" },
  { name: "a stream with a bad cursor", path: "/v1/mailboxes/room:lane/events?cursor=%%%", body: "", method: "GET" },
  { name: "a stream of a bad name", path: "/v1/mailboxes/%20/stream", body: "", method: "GET" },
  {
    name: "a stream for unread counts with no reader",
    path: "/v1/mailboxes/room:lane/events?unread=1",
    body: "",
    method: "GET",
  },
];

/** A stream's head and first bytes (up to its first blank line), then the stream is dropped. */
function openStream(path: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${herald.url}${path}`, { headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
        const end = text.indexOf("\n\n") >= 0 ? text.indexOf("\n\n") + 2 : text.indexOf("\n") + 1;
        if (end <= 0) return;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text.slice(0, end) });
        req.destroy();
      });
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the publish fast lane", () => {
  for (const each of CASES) {
    it(`answers ${each.name} as the generic path does`, async () => {
      const headers = {
        "Content-Type": "application/json",
        "X-Request-Id": "lane-test-1",
        ...each.headers,
      };
      const lane = await post(each.path, each.body, headers, each.method);
      const generic = await post(each.path, each.body, { ...headers, Origin: herald.url }, each.method);
      expect(shape(lane)).toEqual(shape(generic));
      expect(lane.headers["content-length"]).toBe(String(Buffer.byteLength(lane.body)));
    });
  }

  it("stores a repeated idempotent publish once, answering 200 the second time", async () => {
    const headers = { "Content-Type": "application/json", "Idempotency-Key": "lane-once" };
    const first = await post("/v1/mailboxes/room:idem/messages", '{"body":"once"}', headers);
    const again = await post("/v1/mailboxes/room:idem/messages", '{"body":"once"}', headers);
    expect([first.status, again.status]).toEqual([201, 200]);
    expect(JSON.parse(again.body).seq).toBe(JSON.parse(first.body).seq);
  });

  for (const kind of ["events", "stream"]) {
    it(`opens a ${kind === "events" ? "SSE" : "JSON-lines"} stream as the generic path does`, async () => {
      const path = `/v1/mailboxes/room:lane/${kind}?cursor=now`;
      const lane = await openStream(path, { "X-Request-Id": "lane-test-1" });
      const generic = await openStream(path, { "X-Request-Id": "lane-test-1", Origin: herald.url });
      // CORS headers answer the Origin the generic request carried; nothing else may differ.
      const {
        "access-control-allow-origin": _origin,
        "access-control-expose-headers": _exposed,
        vary: _vary,
        date: _date,
        ...genericHeaders
      } = generic.headers;
      const { date: _laneDate, ...laneHeaders } = lane.headers;
      expect(lane.status).toBe(200);
      expect(laneHeaders).toEqual(genericHeaders);
      expect(lane.body).toBe(generic.body);
    });
  }

  it("holds a long-poll until a publish wakes it", async () => {
    const mailbox = "room:lane-poll";
    const first = await post(`/v1/mailboxes/${mailbox}/messages?cursor=now`, "", {}, "GET");
    const { cursor } = JSON.parse(first.body) as { cursor: string };
    const held = post(`/v1/mailboxes/${mailbox}/messages?cursor=${cursor}&wait=10`, "", {}, "GET");
    await new Promise((resolve) => setTimeout(resolve, 100));
    await post(`/v1/mailboxes/${mailbox}/messages`, '{"body":"woke"}', { "Content-Type": "application/json" });
    const answer = await held;
    expect(answer.status).toBe(200);
    expect((JSON.parse(answer.body) as { messages: { body: string }[] }).messages.map((m) => m.body)).toEqual(["woke"]);
  });

  it("counts its publishes in /metrics and closes connections while draining", async () => {
    const metrics = async () => {
      const text = await (await fetch(`${herald.url}/metrics`)).text();
      return Number(/^herald_publish_duration_seconds_count (\d+)/m.exec(text)?.[1]);
    };
    const before = await metrics();
    await post("/v1/mailboxes/room:count/messages", '{"body":"x"}', { "Content-Type": "application/json" });
    expect(await metrics()).toBe(before + 1);
    const drained = await startTestServer();
    const draining = drained.hub.drain();
    const answer = await new Promise<Answer>((resolve, reject) => {
      const req = request(`${drained.url}/v1/mailboxes/room:drain/messages`, { method: "POST" }, (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: "" }));
      });
      req.on("error", reject);
      req.end("x");
    });
    expect(answer.status).toBe(503);
    expect(answer.headers.connection).toBe("close");
    await draining;
    await drained.shutdown();
  });
});
