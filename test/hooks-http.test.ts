import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_JSON_DEPTH } from "../src/core/json-text.js";
import { createLogger } from "../src/log.js";
import type { RunningHerald } from "../src/server.js";
import {
  deliver,
  githubHeaders,
  hmacHex,
  nowSeconds,
  readMailbox,
  standardHeaders,
  startHookServer,
  stripeHeaders,
} from "./helpers/hooks.js";

const GH_SECRET = "gh-secret";
const GH_OLD_SECRET = "gh-old-secret";
const STRIPE_SECRET = "whsec_stripe_test";
const SW_SECRET = `whsec_${Buffer.from("standard-webhooks-key-0123456789").toString("base64")}`;
const PLAIN_SECRET = "plain-secret";

const CONFIG = {
  hooks: [
    {
      id: "gh",
      mailbox: "gh-inbox",
      verify: { scheme: "github", secret: [GH_SECRET, GH_OLD_SECRET] },
      title: "{{repository.full_name}}: {{action}}",
      body: "{{pull_request.title}}",
      tags: ["github"],
      priority: 4,
      maxBodyBytes: 4096,
    },
    { id: "pay", mailbox: "billing", verify: { scheme: "stripe", secretEnv: "TEST_STRIPE_SECRET" } },
    {
      id: "svc",
      mailbox: "ops:{{data.team}}",
      verify: { scheme: "standard-webhooks", secret: SW_SECRET, toleranceSeconds: 60 },
      title: "{{type}}",
    },
    {
      id: "plain",
      mailbox: "plain",
      verify: { scheme: "hmac-sha256", secret: PLAIN_SECRET, header: "X-Sig", idHeader: "X-Request-Id" },
    },
  ],
};

let herald: RunningHerald;
let base: string;

beforeAll(async () => {
  herald = await startHookServer(CONFIG, { TEST_STRIPE_SECRET: STRIPE_SECRET });
  base = herald.url;
});
afterAll(async () => {
  await herald.shutdown();
});

const prBody = (n: number) =>
  JSON.stringify({ action: "opened", repository: { full_name: "acme/rocket" }, pull_request: { title: `PR ${n}` } });

describe("GitHub hook", () => {
  it("accepts a valid delivery with 202 and stores the templated message with the payload in data", async () => {
    const body = prBody(1);
    const answer = await deliver(base, "gh", body, githubHeaders(GH_SECRET, body, "d-1"));
    expect(answer.status).toBe(202);
    expect(answer.json).toMatchObject({ mailbox: "gh-inbox", seq: 1, hook: "gh", deliveryId: "d-1", duplicate: false });
    expect(typeof answer.json.id).toBe("string");
    expect(typeof answer.json.cursor).toBe("string");
    const [message] = await readMailbox(base, "gh-inbox");
    expect(message).toMatchObject({
      id: answer.json.id,
      title: "acme/rocket: opened",
      body: "PR 1",
      tags: ["github"],
      priority: 4,
      data: JSON.parse(body),
    });
  });

  it("accepts GitHub's published vector over HTTP: the signature passes, then the non-JSON body is a 400", async () => {
    // A hook set up with the documented vector's secret.
    const vector = await startHookServer({
      hooks: [{ id: "v", mailbox: "v", verify: { scheme: "github", secret: "It's a Secret to Everybody" } }],
    });
    try {
      const signed = await deliver(vector.url, "v", "Hello, World!", {
        "X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
      });
      expect(signed.status).toBe(400);
      expect(signed.json).toMatchObject({ error: { code: "bad_json" } });
      const unsigned = await deliver(vector.url, "v", "Hello, World!", {
        "X-Hub-Signature-256": `sha256=${"0".repeat(64)}`,
      });
      expect(unsigned.status).toBe(401);
    } finally {
      await vector.shutdown();
    }
  });

  it("refuses a wrong secret, a tampered body, re-serialized JSON and a missing header with the same 401, storing nothing", async () => {
    const before = (await readMailbox(base, "gh-inbox")).length;
    const body = prBody(2);
    const reserialized = JSON.stringify(JSON.parse(body), null, 2);
    const attempts = [
      await deliver(base, "gh", body, githubHeaders("not-the-secret", body, "d-2")),
      await deliver(base, "gh", body.replace("PR 2", "PR 3"), githubHeaders(GH_SECRET, body, "d-2")),
      await deliver(base, "gh", reserialized, githubHeaders(GH_SECRET, body, "d-2")),
      await deliver(base, "gh", `${body} `, githubHeaders(GH_SECRET, body, "d-2")),
      await deliver(base, "gh", body, { "X-GitHub-Delivery": "d-2" }),
    ];
    for (const answer of attempts) {
      expect(answer.status).toBe(401);
      expect(answer.json).toEqual({
        error: { code: "unauthorized", message: "The webhook signature is missing or invalid" },
      });
    }
    expect((await readMailbox(base, "gh-inbox")).length).toBe(before);
  });

  it("answers a replayed delivery id with 200 and the original, and does not deliver it again", async () => {
    const body = prBody(4);
    const first = await deliver(base, "gh", body, githubHeaders(GH_SECRET, body, "d-replay"));
    expect(first.status).toBe(202);
    const count = (await readMailbox(base, "gh-inbox")).length;
    const again = await deliver(base, "gh", body, githubHeaders(GH_SECRET, body, "d-replay"));
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ id: first.json.id, cursor: first.json.cursor, duplicate: true });
    // Even with another (validly signed) payload under the same id: answered, not delivered.
    const other = prBody(5);
    const reused = await deliver(base, "gh", other, githubHeaders(GH_SECRET, other, "d-replay"));
    expect(reused.status).toBe(200);
    expect((await readMailbox(base, "gh-inbox")).length).toBe(count);
  });

  it("does not deliver a captured GitHub body again under a fresh, unsigned delivery id", async () => {
    const body = prBody(8);
    const first = await deliver(base, "gh", body, githubHeaders(GH_SECRET, body, "d-original"));
    const replay = await deliver(base, "gh", body, githubHeaders(GH_SECRET, body, "d-forged"));
    expect([first.status, replay.status]).toEqual([202, 200]);
    expect(replay.json.id).toBe(first.json.id);
    const titles = (await readMailbox(base, "gh-inbox")).map((m) => m.body);
    expect(titles.filter((t) => t === "PR 8")).toEqual(["PR 8"]);
  });

  it("accepts the previous secret during rotation", async () => {
    const body = prBody(6);
    const answer = await deliver(base, "gh", body, githubHeaders(GH_OLD_SECRET, body, "d-rotated"));
    expect(answer.status).toBe(202);
  });

  it("refuses an oversize body with 413 and stores nothing, even when signed", async () => {
    const before = (await readMailbox(base, "gh-inbox")).length;
    const body = JSON.stringify({ action: "x".repeat(5000) });
    const answer = await deliver(base, "gh", body, githubHeaders(GH_SECRET, body, "d-big"));
    expect(answer.status).toBe(413);
    expect(answer.json).toMatchObject({ error: { code: "payload_too_large" } });
    expect((await readMailbox(base, "gh-inbox")).length).toBe(before);
  });

  it("accepts GitHub's form-encoded content type, verifying the raw form bytes", async () => {
    const form = `payload=${encodeURIComponent(prBody(7))}`;
    const answer = await deliver(base, "gh", form, {
      ...githubHeaders(GH_SECRET, form, "d-form"),
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(answer.status).toBe(202);
    const messages = await readMailbox(base, "gh-inbox");
    expect(messages.at(-1)).toMatchObject({ body: "PR 7" });
  });
});

describe("Stripe hook", () => {
  const event = (id: string) => JSON.stringify({ id, type: "invoice.paid", data: { object: { amount: 100 } } });

  it("accepts a valid signature from a secret given by environment variable", async () => {
    const body = event("evt_1");
    const answer = await deliver(base, "pay", body, stripeHeaders(STRIPE_SECRET, body));
    expect(answer.status).toBe(202);
    expect(answer.json).toMatchObject({ mailbox: "billing", deliveryId: "evt_1" });
  });

  it("refuses a stale or future timestamp, a wrong secret and a tampered body", async () => {
    const body = event("evt_2");
    const stale = await deliver(base, "pay", body, stripeHeaders(STRIPE_SECRET, body, nowSeconds() - 301));
    const future = await deliver(base, "pay", body, stripeHeaders(STRIPE_SECRET, body, nowSeconds() + 600));
    const wrong = await deliver(base, "pay", body, stripeHeaders("whsec_other", body));
    const tampered = await deliver(base, "pay", event("evt_3"), stripeHeaders(STRIPE_SECRET, body));
    expect([stale.status, future.status, wrong.status, tampered.status]).toEqual([401, 401, 401, 401]);
    expect(stale.text).toBe(wrong.text);
    expect((await readMailbox(base, "billing")).map((m) => (m.data as { id: string }).id)).toEqual(["evt_1"]);
  });

  it("treats a retried event id (fresh timestamp and signature) as already delivered", async () => {
    const body = event("evt_retry");
    const first = await deliver(base, "pay", body, stripeHeaders(STRIPE_SECRET, body, nowSeconds() - 10));
    const retry = await deliver(base, "pay", body, stripeHeaders(STRIPE_SECRET, body));
    expect([first.status, retry.status]).toEqual([202, 200]);
    expect(retry.json.id).toBe(first.json.id);
  });
});

describe("Standard Webhooks hook", () => {
  const event = (team: string) => JSON.stringify({ type: "deploy.finished", data: { team } });

  it("renders the mailbox from the payload", async () => {
    const body = event("blue");
    const answer = await deliver(base, "svc", body, standardHeaders(SW_SECRET, body, "msg_1"));
    expect(answer.status).toBe(202);
    expect(answer.json).toMatchObject({ mailbox: "ops:blue", deliveryId: "msg_1" });
    expect((await readMailbox(base, "ops:blue"))[0]).toMatchObject({ title: "deploy.finished" });
  });

  it("answers 400 when the mailbox template renders an invalid name, storing nothing", async () => {
    const body = event("no spaces/allowed");
    const answer = await deliver(base, "svc", body, standardHeaders(SW_SECRET, body, "msg_2"));
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ error: { code: "bad_mailbox" } });
  });

  it("refuses a timestamp outside the configured tolerance and a replayed id under another timestamp", async () => {
    const body = event("red");
    const stale = await deliver(base, "svc", body, standardHeaders(SW_SECRET, body, "msg_3", nowSeconds() - 61));
    expect(stale.status).toBe(401);
    const first = await deliver(base, "svc", body, standardHeaders(SW_SECRET, body, "msg_4"));
    const replay = await deliver(base, "svc", body, standardHeaders(SW_SECRET, body, "msg_4", nowSeconds() - 5));
    expect([first.status, replay.status]).toEqual([202, 200]);
    expect((await readMailbox(base, "ops:red")).length).toBe(1);
  });

  it("answers 400 for a correctly signed payload nested deeper than any JSON Herald accepts, storing nothing", async () => {
    const deep = `{"type":"deep","data":{"team":"deep"},"x":${"[".repeat(MAX_JSON_DEPTH + 1)}${"]".repeat(MAX_JSON_DEPTH + 1)}}`;
    const answer = await deliver(base, "svc", deep, standardHeaders(SW_SECRET, deep, "msg_deep"));
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ error: { code: "bad_json" } });
    expect(await readMailbox(base, "ops:deep")).toEqual([]);
  });

  it("answers 400 for a correctly signed body that is not JSON", async () => {
    const answer = await deliver(base, "svc", "{not json", standardHeaders(SW_SECRET, "{not json", "msg_5"));
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ error: { code: "bad_json" } });
  });
});

describe("generic HMAC hook and routing", () => {
  it("verifies the configured header and de-duplicates on the configured id header", async () => {
    const body = JSON.stringify({ big: "x".repeat(70 * 1024) });
    const headers = { "X-Sig": hmacHex(PLAIN_SECRET, body), "X-Request-Id": "r-1" };
    const first = await deliver(base, "plain", body, headers);
    const again = await deliver(base, "plain", body, headers);
    expect([first.status, again.status]).toEqual([202, 200]);
    const [message, ...rest] = await readMailbox(base, "plain");
    expect(rest).toEqual([]);
    // Over 64 KiB the payload stays out of `data`.
    expect(message).not.toHaveProperty("data");
    const wrongHeader = await deliver(base, "plain", body, { "X-Signature": hmacHex(PLAIN_SECRET, body) });
    expect(wrongHeader.status).toBe(401);
  });

  it("answers 404 for an unknown hook without reading further, and 405 for GET", async () => {
    const unknown = await deliver(base, "nope", "{}", {});
    expect(unknown.status).toBe(404);
    expect(unknown.json).toMatchObject({ error: { code: "not_found" } });
    const get = await fetch(`${base}/v1/hooks/gh`);
    expect(get.status).toBe(405);
  });
});

describe("delivery-id memory", () => {
  it("still refuses a replay after retention dropped the original message", async () => {
    const secret = "retention";
    const small = await startHookServer(
      { hooks: [{ id: "gh", mailbox: "tiny", verify: { scheme: "github", secret } }] },
      {},
      { maxMessagesPerMailbox: 1 },
    );
    try {
      const first = prBody(100);
      const second = prBody(101);
      expect((await deliver(small.url, "gh", first, githubHeaders(secret, first, "keep-1"))).status).toBe(202);
      expect((await deliver(small.url, "gh", second, githubHeaders(secret, second, "keep-2"))).status).toBe(202);
      // The store has trimmed keep-1 (and its idempotency key); the memory of seen ids has not.
      const replay = await deliver(small.url, "gh", first, githubHeaders(secret, first, "keep-1"));
      expect(replay.status).toBe(200);
      const messages = await readMailbox(small.url, "tiny");
      expect(messages.map((m) => m.body ?? (m.data as { pull_request: { title: string } }).pull_request.title)).toEqual(
        ["PR 101"],
      );
    } finally {
      await small.shutdown();
    }
  });
});

describe("operator log", () => {
  it("says why a delivery was refused, without the signature or secret; the sender sees only 401", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger("info", {
      write: (line: string) => {
        lines.push(JSON.parse(line));
      },
    });
    const secret = "whsec_logged_never";
    const logged = await startHookServer(
      { hooks: [{ id: "pay", mailbox: "billing", verify: { scheme: "stripe", secret } }] },
      {},
      {},
      { logger },
    );
    try {
      const body = '{"id":"evt_log"}';
      const stale = await deliver(logged.url, "pay", body, stripeHeaders(secret, body, nowSeconds() - 1000));
      const wrong = await deliver(logged.url, "pay", body, stripeHeaders("whsec_other", body));
      expect([stale.status, wrong.status]).toEqual([401, 401]);
      expect(stale.text).toBe(wrong.text);
      const refusals = lines.filter((line) => line.msg === "webhook refused");
      expect(refusals.map((line) => [line.hook, line.reason])).toEqual([
        ["pay", "stale"],
        ["pay", "mismatch"],
      ]);
      expect(JSON.stringify(lines)).not.toContain("logged_never");
    } finally {
      await logged.shutdown();
    }
  });
});
