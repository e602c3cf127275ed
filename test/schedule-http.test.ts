import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { RunningHerald } from "../src/server.js";
import { publish, StreamClient, type WireMessage } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";
import { until } from "./helpers/until.js";

/** Long enough that nothing scheduled this far ahead is delivered during the run. */
const FAR_S = 3600;
/** How long a short-delay message may take to arrive on a loaded machine. */
const DELIVERY_WAIT_MS = 15_000;

interface ScheduledAnswer {
  id: string;
  mailbox: string;
  scheduledFor: string;
}

interface ErrorAnswer {
  error: { code: string; message: string };
}

let herald: RunningHerald;
let base: string;

beforeAll(async () => {
  herald = await startTestServer();
  base = herald.url;
});
afterAll(() => herald.shutdown());

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const text = typeof body === "string";
  return fetch(`${base}${path}`, {
    method: "POST",
    headers: { ...(text ? {} : { "content-type": "application/json" }), ...headers },
    body: text ? body : JSON.stringify(body),
  });
}

async function schedule(mailbox: string, message: unknown, headers: Record<string, string> = {}, query = "") {
  const response = await post(`/v1/mailboxes/${mailbox}/messages${query}`, message, headers);
  return { status: response.status, body: (await response.json()) as ScheduledAnswer & ErrorAnswer };
}

async function read(mailbox: string): Promise<WireMessage[]> {
  const response = await fetch(`${base}/v1/mailboxes/${mailbox}/messages?limit=1000`);
  return ((await response.json()) as { messages: WireMessage[] }).messages;
}

async function pending(mailbox: string, query = ""): Promise<{ scheduled: Record<string, unknown>[]; more: boolean }> {
  const response = await fetch(`${base}/v1/mailboxes/${mailbox}/scheduled${query}`);
  expect(response.status).toBe(200);
  return (await response.json()) as { scheduled: Record<string, unknown>[]; more: boolean };
}

const cancel = (id: string) => fetch(`${base}/v1/scheduled/${id}`, { method: "DELETE" });

describe("scheduled delivery over HTTP", () => {
  it("answers 202, keeps the message out of reads and streams until due, then appends it with the next seq", async () => {
    const mailbox = "sched:order";
    const stream = new StreamClient(`${base}/v1/mailboxes/${mailbox}/events`);
    const lines = new StreamClient(`${base}/v1/mailboxes/${mailbox}/stream`);
    await Promise.all([stream.opened, lines.opened]);
    const first = await publish(base, mailbox, { body: "now-1" });
    const before = Date.now();
    const a = await schedule(mailbox, { title: "later", body: "sched-a", ttl: 120, delay: "2s" });
    const b = await schedule(mailbox, "sched-b as text", {}, "?delay=2.5");
    const far = await schedule(mailbox, { body: "far", delay: FAR_S });
    expect(a.status).toBe(202);
    expect(Object.keys(a.body).sort()).toEqual(["id", "mailbox", "scheduledFor"]);
    expect(a.body.mailbox).toBe(mailbox);
    expect(Date.parse(a.body.scheduledFor)).toBeGreaterThanOrEqual(before + 2000);
    expect(b.status).toBe(202);
    // Scheduled messages take no seq: the next publish is 2.
    const second = await publish(base, mailbox, { body: "now-2" });
    expect(second.seq).toBe(2);

    await stream.untilMessages(4, DELIVERY_WAIT_MS);
    const delivered = stream.messages();
    expect(delivered.map((m) => [m.seq, m.id, m.body])).toEqual([
      [1, first.id, "now-1"],
      [2, second.id, "now-2"],
      [3, a.body.id, "sched-a"],
      [4, b.body.id, "sched-b as text"],
    ]);
    const [, , deliveredA, deliveredB] = delivered as [WireMessage, WireMessage, WireMessage, WireMessage];
    // Appended like a fresh publish when due: its time is the delivery time, its expiry that plus its ttl.
    expect(Date.parse(deliveredA.time)).toBeGreaterThanOrEqual(Date.parse(a.body.scheduledFor));
    expect(Date.parse(deliveredA.expires) - Date.parse(deliveredA.time)).toBe(120_000);
    expect(deliveredA.title).toBe("later");
    expect(Date.parse(deliveredB.time)).toBeGreaterThanOrEqual(Date.parse(b.body.scheduledFor));
    expect(Object.keys(deliveredA)).not.toContain("delay");
    await lines.untilMessages(4, DELIVERY_WAIT_MS);
    expect(lines.messages().map((m) => m.id)).toEqual(delivered.map((m) => m.id));
    // The far one is still waiting and was in no read or stream.
    expect((await read(mailbox)).map((m) => m.id)).toEqual(delivered.map((m) => m.id));
    expect((await pending(mailbox)).scheduled.map((entry) => entry.id)).toEqual([far.body.id]);
    stream.close();
    lines.close();
    // A resumed cursor from before the scheduled ones gets exactly them, no gap.
    const resumed = await fetch(`${base}/v1/mailboxes/${mailbox}/messages?cursor=${second.cursor}`);
    const answer = (await resumed.json()) as { messages: WireMessage[]; gap: boolean };
    expect(answer.gap).toBe(false);
    expect(answer.messages.map((m) => m.id)).toEqual([a.body.id, b.body.id]);
    // Once delivered it can no longer be cancelled.
    expect((await cancel(a.body.id)).status).toBe(404);
    expect((await cancel(far.body.id)).status).toBe(204);
  });

  it("lists pending messages earliest due first with their fields, bounded by limit; cancels them", async () => {
    const mailbox = "sched:list";
    const at = new Date(Date.now() + 2 * FAR_S * 1000).toISOString();
    const third = await schedule(mailbox, { title: "third", at });
    const first = await schedule(mailbox, { body: "first", tags: ["x"], data: { n: 1 }, delay: "30m" });
    const second = await schedule(mailbox, { body: "second", delay: "1h" });
    expect(third.body.scheduledFor).toBe(at);
    const listed = await pending(mailbox);
    expect(listed.more).toBe(false);
    expect(listed.scheduled.map((entry) => entry.id)).toEqual([first.body.id, second.body.id, third.body.id]);
    expect(listed.scheduled[0]).toEqual({
      id: first.body.id,
      mailbox,
      scheduledFor: first.body.scheduledFor,
      body: "first",
      tags: ["x"],
      data: { n: 1 },
    });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(Number(/^herald_scheduled_pending (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(3);
    const page = await pending(mailbox, "?limit=2");
    expect(page.scheduled.length).toBe(2);
    expect(page.more).toBe(true);
    expect((await fetch(`${base}/v1/mailboxes/${mailbox}/scheduled?limit=0`)).status).toBe(400);

    expect((await cancel(second.body.id)).status).toBe(204);
    const again = await cancel(second.body.id);
    expect(again.status).toBe(404);
    expect(((await again.json()) as ErrorAnswer).error.code).toBe("not_found");
    expect((await cancel("no-such-id")).status).toBe(404);
    expect((await cancel("not%20an%20id")).status).toBe(404);
    expect((await pending(mailbox)).scheduled.map((entry) => entry.id)).toEqual([first.body.id, third.body.id]);
    expect(await read(mailbox)).toEqual([]);
    const wrongMethod = await fetch(`${base}/v1/scheduled/${first.body.id}`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("allow")).toBe("DELETE");
  });

  it("refuses a bad delay or at with a 400 that says what is wrong", async () => {
    const cases: [unknown, string, string, RegExp][] = [
      [{ body: "x", delay: 0 }, "", "bad_message", /"delay" must be a number of seconds greater than 0/],
      [{ body: "x", delay: -5 }, "", "bad_message", /greater than 0/],
      [{ body: "x", delay: "5 minutes" }, "", "bad_message", /duration such as "90s"/],
      [{ body: "x", delay: "8d" }, "", "bad_message", /"delay" may be at most 604800 seconds \(7 days\) ahead/],
      [{ body: "x", at: "2001-01-01T00:00:00Z" }, "", "bad_message", /"at" must be in the future/],
      [{ body: "x", at: "tomorrow" }, "", "bad_message", /RFC 3339/],
      [{ body: "x", at: "2030-02-30T00:00:00Z" }, "", "bad_message", /RFC 3339/],
      [{ body: "x", delay: 10, at: "2030-01-01T00:00:00Z" }, "", "bad_message", /not both/],
      [{ body: "x", delay: 10 }, "?delay=10", "bad_parameter", /in the query or in the message, not both/],
      ["text", "?delay=0", "bad_parameter", /"delay" must be/],
      ["text", "?delay=1&at=2030-01-01T00:00:00Z", "bad_parameter", /not both/],
      [{ body: "x", delay: 10, colour: "red" }, "", "bad_message", /unknown field "colour"/],
    ];
    const far = new Date(Date.now() + 8 * 86_400_000).toISOString();
    cases.push([{ body: "x", at: far }, "", "bad_message", /"at" may be at most/]);
    for (const [message, query, code, text] of cases) {
      const { status, body } = await schedule("sched:bad", message, {}, query);
      expect([status, body.error?.code], JSON.stringify(message) + query).toEqual([400, code]);
      expect(body.error.message).toMatch(text);
    }
    expect(await pending("sched:bad")).toEqual({ scheduled: [], more: false });
  });

  it("makes a repeat with the same Idempotency-Key answer the same entry, before and after delivery", async () => {
    const mailbox = "sched:idem";
    const headers = { "idempotency-key": "invoice-77" };
    const first = await schedule(mailbox, { body: "paid", delay: "2s" }, headers);
    expect(first.status).toBe(202);
    const repeat = await schedule(mailbox, { body: "paid", delay: "2s" }, headers);
    expect(repeat).toEqual({ status: 200, body: first.body });
    const conflict = await schedule(mailbox, { body: "refunded", delay: "2s" }, headers);
    expect([conflict.status, conflict.body.error.code]).toEqual([409, "idempotency_conflict"]);
    expect((await pending(mailbox)).scheduled.length).toBe(1);

    await until(async () => (await read(mailbox)).length === 1, "the scheduled message", DELIVERY_WAIT_MS);
    const [delivered] = await read(mailbox);
    expect(delivered?.id).toBe(first.body.id);
    // Repeating the scheduled publish after delivery still stores nothing.
    expect(await schedule(mailbox, { body: "paid", delay: "2s" }, headers)).toEqual({ status: 200, body: first.body });
    expect((await read(mailbox)).length).toBe(1);
  });

  it("keeps the keys of scheduled and immediate publishes apart, so neither drops the other", async () => {
    const mailbox = "sched:idem-apart";
    const headers = { "idempotency-key": "k1" };
    const now = await post(`/v1/mailboxes/${mailbox}/messages`, { body: "A" }, headers);
    expect(now.status).toBe(201);
    const later = await schedule(mailbox, { body: "B", delay: "1s" }, headers);
    expect(later.status).toBe(202);
    await until(async () => (await read(mailbox)).length === 2, "the scheduled message too", DELIVERY_WAIT_MS);
    const bodies = (await read(mailbox)).map((message) => message.body);
    expect(bodies).toEqual(["A", "B"]);
    // And the immediate key is still the immediate publish's.
    const again = await post(`/v1/mailboxes/${mailbox}/messages`, { body: "A" }, headers);
    expect(again.status).toBe(200);
  });

  it("refuses a scheduled ttl shorter than the claim lease", async () => {
    const { status, body } = await schedule("sched:ttl", { body: "x", ttl: 5, delay: "2s" });
    expect([status, body.error?.code]).toEqual([400, "bad_message"]);
    expect(body.error.message).toMatch(/at least 30 seconds/);
  });

  it("schedules a whole batch or fan-in, refusing one that is only partly scheduled", async () => {
    const at = new Date(Date.now() + FAR_S * 1000).toISOString();
    const batch = await post("/v1/messages", {
      messages: [
        { mailbox: "sched:b1", body: "one", delay: "2h" },
        { mailbox: "sched:b2", body: "two", at },
      ],
    });
    expect(batch.status).toBe(202);
    const { scheduled } = (await batch.json()) as { scheduled: ScheduledAnswer[] };
    expect(scheduled.map((entry) => entry.mailbox)).toEqual(["sched:b1", "sched:b2"]);
    expect(scheduled[1]?.scheduledFor).toBe(at);
    const mixed = await post("/v1/messages", {
      messages: [
        { mailbox: "sched:b1", body: "one", delay: "2h" },
        { mailbox: "sched:b2", body: "now" },
      ],
    });
    expect(mixed.status).toBe(400);
    expect(((await mixed.json()) as ErrorAnswer).error.message).toMatch(/scheduled whole or not at all.*messages\[1\]/);
    const headers = { "content-type": "application/json", "idempotency-key": "fan-1" };
    const fanIn = { mailboxes: ["sched:f1", "sched:f2"], message: { title: "maintenance", delay: 7200 } };
    const first = await post("/v1/messages", fanIn, headers);
    expect(first.status).toBe(202);
    const again = await post("/v1/messages", fanIn, headers);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual(await first.json());
    expect((await pending("sched:f2")).scheduled.map((entry) => entry.title)).toEqual(["maintenance"]);
    expect(await read("sched:b2")).toEqual([]);
  });

  it("schedules from a WebSocket publish frame", async () => {
    const socket = new WebSocket(`${base.replace(/^http/, "ws")}/v1/ws`);
    const frames: Record<string, unknown>[] = [];
    socket.on("message", (data) => frames.push(JSON.parse(String(data))));
    await new Promise((resolve) => socket.once("open", resolve));
    try {
      const message = { body: "from ws", delay: "1h" };
      socket.send(JSON.stringify({ type: "publish", mailbox: "sched:ws", message, idempotencyKey: "ws-1", ref: 7 }));
      socket.send(JSON.stringify({ type: "publish", mailbox: "sched:ws", message, idempotencyKey: "ws-1", ref: 8 }));
      await until(() => frames.length >= 2, "two answers");
      const [first, second] = frames as [Record<string, unknown>, Record<string, unknown>];
      expect(first).toMatchObject({ type: "scheduled", ref: 7, duplicate: false });
      expect(second).toMatchObject({ type: "scheduled", ref: 8, duplicate: true, scheduled: first.scheduled });
      const listed = await pending("sched:ws");
      expect(listed.scheduled).toEqual([{ ...(first.scheduled as object), body: "from ws" }]);
    } finally {
      socket.terminate();
    }
  });
});

describe("scheduled delivery bounds", () => {
  let bounded: RunningHerald;
  beforeAll(async () => {
    bounded = await startTestServer({ scheduleSettings: { maxPendingPerMailbox: 3, maxPending: 5 } });
  });
  afterAll(() => bounded.shutdown());

  it("answers 429 too_many_scheduled beyond the pending bounds, per mailbox and in all", async () => {
    const later = (mailbox: string, n: number) =>
      fetch(`${bounded.url}/v1/mailboxes/${mailbox}/messages?delay=1h`, { method: "POST", body: `m${n}` });
    for (let n = 1; n <= 3; n++) expect((await later("full:a", n)).status).toBe(202);
    const overMailbox = await later("full:a", 4);
    expect(overMailbox.status).toBe(429);
    const error = ((await overMailbox.json()) as ErrorAnswer).error;
    expect(error.code).toBe("too_many_scheduled");
    expect(error.message).toMatch(/At most 3 messages may wait to be delivered to "full:a"/);
    expect((await later("full:b", 1)).status).toBe(202);
    // A batch that would pass the bound adds nothing.
    const batch = await fetch(`${bounded.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ mailboxes: ["full:c", "full:d"], message: { body: "x", delay: 60 } }),
    });
    expect(batch.status).toBe(429);
    expect(((await batch.json()) as ErrorAnswer).error.message).toMatch(/At most 5 messages .* on this server/);
    expect((await later("full:c", 1)).status).toBe(202);
    expect((await later("full:d", 1)).status).toBe(429);
    // Publishing now is not bounded by it.
    expect((await fetch(`${bounded.url}/v1/mailboxes/full:a/messages`, { method: "POST", body: "now" })).status).toBe(
      201,
    );
  });
});
