import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { bodies, publish, type WireMessage } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";

let herald: RunningHerald;
let base: string;

beforeAll(async () => {
  herald = await startTestServer({ config: { maxBodyBytes: 4096 } });
  base = herald.url;
});
afterAll(async () => {
  await herald.shutdown();
});

async function stored(mailbox: string): Promise<WireMessage[]> {
  const response = await fetch(`${base}/v1/mailboxes/${mailbox}/messages?limit=1000`);
  return ((await response.json()) as { messages: WireMessage[] }).messages;
}

async function expectError(response: Response, status: number, code: string): Promise<string> {
  expect(response.status).toBe(status);
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  const body = (await response.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe(code);
  expect(body.error.message.length).toBeGreaterThan(0);
  return body.error.message;
}

const post = (path: string, body: string, headers: Record<string, string> = { "content-type": "application/json" }) =>
  fetch(`${base}${path}`, { method: "POST", headers, body });

describe("publish", () => {
  it("stores JSON fields and answers 201 with seq, time, id and cursor", async () => {
    const response = await post(
      "/v1/mailboxes/user:alice@example.com/messages",
      JSON.stringify({ title: "t", body: "b", data: { n: [1, 2] }, tags: ["x"], priority: 5, ttl: 60 }),
    );
    expect(response.status).toBe(201);
    const message = (await response.json()) as WireMessage;
    expect(message).toMatchObject({ mailbox: "user:alice@example.com", seq: 1, title: "t", data: { n: [1, 2] } });
    expect(Date.parse(message.time)).toBeGreaterThan(0);
    expect(Date.parse(message.expires) - Date.parse(message.time)).toBe(60_000);
    expect(message.cursor).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it("stores any non-JSON body as text, and +json media types as JSON", async () => {
    await publish(base, "text-box", "<b>not json</b>", { "content-type": "text/html" });
    const vendor = await post("/v1/mailboxes/text-box/messages", '{"body":"vendor"}', {
      "content-type": "application/vnd.herald+json; charset=utf-8",
    });
    expect(vendor.status).toBe(201);
    expect(bodies(await stored("text-box"))).toEqual(["<b>not json</b>", "vendor"]);
  });

  it("answers a repeated Idempotency-Key with the original and stores nothing", async () => {
    const headers = { "content-type": "application/json", "idempotency-key": "order-17" };
    const first = await post("/v1/mailboxes/idem/messages", '{"body":"paid"}', headers);
    expect(first.status).toBe(201);
    const original = (await first.json()) as WireMessage;
    const again = await post("/v1/mailboxes/idem/messages", '{"body":"paid"}', headers);
    expect(again.status).toBe(200);
    expect(((await again.json()) as WireMessage).id).toBe(original.id);
    await expectError(
      await post("/v1/mailboxes/idem/messages", '{"body":"refunded"}', headers),
      409,
      "idempotency_conflict",
    );
    expect((await stored("idem")).map((m) => m.id)).toEqual([original.id]);
    // Keys are per mailbox.
    expect((await post("/v1/mailboxes/idem-2/messages", '{"body":"paid"}', headers)).status).toBe(201);
  });

  it("publishes a batch in order and fans one message in to several mailboxes", async () => {
    const batch = await post(
      "/v1/messages",
      JSON.stringify({
        messages: [
          { mailbox: "batch-a", body: "1" },
          { mailbox: "batch-b", body: "2" },
          { mailbox: "batch-a", body: "3" },
        ],
      }),
    );
    expect(batch.status).toBe(201);
    const result = (await batch.json()) as { messages: WireMessage[] };
    expect(result.messages.map((m) => [m.mailbox, m.seq, m.body])).toEqual([
      ["batch-a", 1, "1"],
      ["batch-b", 1, "2"],
      ["batch-a", 2, "3"],
    ]);
    const fanIn = await post(
      "/v1/messages",
      JSON.stringify({ mailboxes: ["fan-1", "fan-2"], message: { title: "all" } }),
    );
    expect(fanIn.status).toBe(201);
    expect((await stored("fan-1"))[0]?.title).toBe("all");
    expect((await stored("fan-2"))[0]?.title).toBe("all");
  });
});

describe("bad input gets a JSON error and loses nothing", () => {
  const mailbox = "guarded";

  it("keeps what was stored before every rejection", async () => {
    await publish(base, mailbox, { body: "keep-1" });
    await publish(base, mailbox, { body: "keep-2" });
    const cases: [Promise<Response>, number, string][] = [
      [post("/v1/mailboxes/bad%20name/messages", "{}"), 400, "bad_mailbox"],
      [post(`/v1/mailboxes/${"x".repeat(129)}/messages`, "{}"), 400, "bad_mailbox"],
      [post(`/v1/mailboxes/${mailbox}/messages`, "{not json"), 400, "bad_json"],
      [post(`/v1/mailboxes/${mailbox}/messages`, '{"titel":"typo"}'), 400, "bad_message"],
      [post(`/v1/mailboxes/${mailbox}/messages`, '{"priority":9}'), 400, "bad_message"],
      [post(`/v1/mailboxes/${mailbox}/messages`, '{"ttl":-1}'), 400, "bad_message"],
      [post(`/v1/mailboxes/${mailbox}/messages`, '{"tags":"x"}'), 400, "bad_message"],
      [post(`/v1/mailboxes/${mailbox}/messages`, "[1,2]"), 400, "bad_message"],
      [post(`/v1/mailboxes/${mailbox}/messages`, JSON.stringify({ body: "x".repeat(5000) })), 413, "payload_too_large"],
      [
        post(`/v1/mailboxes/${mailbox}/messages`, "{}", { "content-type": "application/json", "idempotency-key": "" }),
        400,
        "bad_parameter",
      ],
      [
        post(
          "/v1/messages",
          JSON.stringify({
            messages: [
              { mailbox, body: "ok" },
              { mailbox, prio: 1 },
            ],
          }),
        ),
        400,
        "bad_message",
      ],
      [post("/v1/messages", JSON.stringify({ messages: [{ mailbox: "no way", body: "ok" }] })), 400, "bad_mailbox"],
      [post("/v1/messages", JSON.stringify({ messages: Array(101).fill({ mailbox: "g" }) })), 400, "bad_message"],
      [post("/v1/messages", "x", { "content-type": "text/plain" }), 400, "bad_json"],
      [fetch(`${base}/v1/mailboxes/${mailbox}/messages?cursor=%%%`), 400, "bad_cursor"],
      [
        fetch(`${base}/v1/mailboxes/${mailbox}/messages?cursor=${Buffer.from("[1]").toString("base64url")}`),
        400,
        "bad_cursor",
      ],
      [fetch(`${base}/v1/mailboxes/${mailbox}/events?cursor=bm9wZQ`), 400, "bad_cursor"],
      [fetch(`${base}/v1/mailboxes/${mailbox}/stream`, { headers: { "last-event-id": "???" } }), 400, "bad_cursor"],
      [fetch(`${base}/v1/mailboxes/${mailbox}/messages?limit=0`), 400, "bad_parameter"],
      [fetch(`${base}/v1/mailboxes/${mailbox}/messages?limit=1001`), 400, "bad_parameter"],
      [fetch(`${base}/v1/mailboxes/${mailbox}/messages?wait=61`), 400, "bad_parameter"],
      [fetch(`${base}/v1/mailboxes/${mailbox}/messages?wait=soon`), 400, "bad_parameter"],
      [fetch(`${base}/v1/messages`), 400, "bad_parameter"],
      [
        fetch(`${base}/v1/events?${Array.from({ length: 65 }, (_, i) => `mailbox=m${i}`).join("&")}`),
        400,
        "bad_parameter",
      ],
      [fetch(`${base}/v1/stream?mailbox=ok&mailbox=not%20ok`), 400, "bad_mailbox"],
      [fetch(`${base}/v1/nothing-here`), 404, "not_found"],
      [fetch(`${base}/v1/mailboxes/${mailbox}/messages`, { method: "DELETE" }), 405, "method_not_allowed"],
      [fetch(`${base}/v1/mailboxes/${mailbox}/events`, { method: "POST" }), 405, "method_not_allowed"],
    ];
    for (const [response, status, code] of cases) await expectError(await response, status, code);
    expect(bodies(await stored(mailbox))).toEqual(["keep-1", "keep-2"]);
  });

  it("names the allowed methods on a 405", async () => {
    const response = await fetch(`${base}/v1/messages`, { method: "PUT" });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST, GET");
  });

  it("refuses a chunked body over the limit while streaming it", async () => {
    const chunks = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 4; i++) controller.enqueue(new TextEncoder().encode("y".repeat(1200)));
        controller.close();
      },
    });
    const response = await fetch(`${base}/v1/mailboxes/${mailbox}/messages`, {
      method: "POST",
      body: chunks,
      duplex: "half",
    } as RequestInit);
    await expectError(response, 413, "payload_too_large");
  });
});

describe("health", () => {
  it("is live and ready", async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${base}/readyz`)).json()).toEqual({ status: "ready" });
  });
});
