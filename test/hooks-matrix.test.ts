import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SIGNERS } from "../src/hooks/signers.js";
import type { HookScheme } from "../src/hooks/verifiers.js";
import type { RunningHerald } from "../src/server.js";
import { deliver, nowSeconds, readMailbox, startHookServer } from "./helpers/hooks.js";

// Issue 4's verification matrix, every case against every scheme it applies to, over HTTP.

const MAX_BODY_BYTES = 1024;
const TOLERANCE_SECONDS = 120;
const ID_HEADER = "X-Request-Id";
const SIG_HEADER = "X-Sig";

const whsec = (key: string) => `whsec_${Buffer.from(key).toString("base64")}`;

interface SchemeRow {
  readonly scheme: HookScheme;
  /** Hook id and mailbox prefix: each case publishes to `${hook}:${case}`. */
  readonly hook: string;
  readonly current: string;
  /** Still accepted while the secret is rotated. */
  readonly old: string;
  readonly wrong: string;
  readonly timestamped: boolean;
  /**
   * What a captured delivery resent under a fresh delivery id gets: GitHub does
   * not sign its id, so the signed body is recognised (200); Standard Webhooks
   * signs it, so the signature breaks (401). Stripe's id is inside the signed
   * body (the tampered case), and the generic scheme's id header is unsigned
   * with no timestamp, so nothing can tell such a replay from a new delivery.
   */
  readonly forgedId?: { readonly header: string; readonly status: 200 | 401 };
}

const ROWS: readonly SchemeRow[] = [
  {
    scheme: "github",
    hook: "gh",
    current: "gh-new",
    old: "gh-old",
    wrong: "gh-wrong",
    timestamped: false,
    forgedId: { header: "X-GitHub-Delivery", status: 200 },
  },
  {
    scheme: "stripe",
    hook: "pay",
    current: "whsec_stripe_new",
    old: "whsec_stripe_old",
    wrong: "whsec_stripe_wrong",
    timestamped: true,
  },
  {
    scheme: "standard-webhooks",
    hook: "svc",
    current: whsec("standard-webhooks-new-key-012345"),
    old: whsec("standard-webhooks-old-key-012345"),
    wrong: whsec("standard-webhooks-bad-key-012345"),
    timestamped: true,
    forgedId: { header: "webhook-id", status: 401 },
  },
  {
    scheme: "hmac-sha256",
    hook: "plain",
    current: "plain-new",
    old: "plain-old",
    wrong: "plain-wrong",
    timestamped: false,
  },
];

const CONFIG = {
  hooks: ROWS.map((row) => ({
    id: row.hook,
    mailbox: `${row.hook}:{{box}}`,
    verify: {
      scheme: row.scheme,
      secret: [row.current, row.old],
      ...(row.timestamped ? { toleranceSeconds: TOLERANCE_SECONDS } : {}),
      ...(row.scheme === "hmac-sha256" ? { header: SIG_HEADER, idHeader: ID_HEADER } : {}),
    },
    title: "{{note}}",
    maxBodyBytes: MAX_BODY_BYTES,
  })),
};

let herald: RunningHerald;
let base: string;

beforeAll(async () => {
  herald = await startHookServer(CONFIG);
  base = herald.url;
});
afterAll(async () => {
  await herald.shutdown();
});

/** Compact JSON, as senders send it; `id` is the delivery id (Stripe reads it from the payload). */
function payload(row: SchemeRow, box: string, note = "original", id = `${row.hook}-${box}`): string {
  return JSON.stringify({ id, box, note, amount: 100 });
}

interface SignOptions {
  readonly secret?: string;
  readonly t?: number;
}

/** The headers a sender of `row.scheme` attaches to `body`. */
function sign(row: SchemeRow, body: string, options: SignOptions = {}): Record<string, string> {
  // Every scheme sends the payload's id as its delivery id (Stripe reads it from the payload itself).
  const { id } = JSON.parse(body) as { id: string };
  const headers = SIGNERS[row.scheme]({
    secret: options.secret ?? row.current,
    body: Buffer.from(body),
    nowSeconds: options.t ?? nowSeconds(),
    id,
    header: SIG_HEADER,
  });
  return row.scheme === "hmac-sha256" ? { ...headers, [ID_HEADER]: id } : headers;
}

async function stored(row: SchemeRow, box: string): Promise<Record<string, unknown>[]> {
  return readMailbox(base, `${row.hook}:${box}`);
}

async function expectRefused(row: SchemeRow, box: string, answer: Awaited<ReturnType<typeof deliver>>) {
  expect(answer.status).toBe(401);
  expect(answer.json).toEqual({
    error: { code: "unauthorized", message: "The webhook signature is missing or invalid" },
  });
  expect(await stored(row, box)).toEqual([]);
}

/** A signed body of `size` bytes exactly, padded in `note`. */
function sized(row: SchemeRow, box: string, size: number): string {
  const empty = payload(row, box, "");
  return payload(row, box, "x".repeat(size - Buffer.byteLength(empty)));
}

/** Sends `body` with no content-length, so the server can only find out the size while reading. */
async function deliverChunked(hook: string, body: string, headers: Record<string, string>): Promise<number> {
  const bytes = Buffer.from(body);
  const half = Math.floor(bytes.length / 2);
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new Uint8Array(bytes.subarray(0, half)));
      controller.enqueue(new Uint8Array(bytes.subarray(half)));
      controller.close();
    },
  });
  const response = await fetch(`${base}/v1/hooks/${hook}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: stream,
    duplex: "half",
  } as RequestInit);
  await response.arrayBuffer();
  return response.status;
}

describe.each(ROWS)("$scheme hook", (row) => {
  it("valid: 202 with the stored message, which carries the payload", async () => {
    const body = payload(row, "valid");
    const answer = await deliver(base, row.hook, body, sign(row, body));
    expect(answer.status).toBe(202);
    expect(answer.json).toMatchObject({ hook: row.hook, mailbox: `${row.hook}:valid`, duplicate: false });
    const messages = await stored(row, "valid");
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({ id: answer.json.id, title: "original", data: JSON.parse(body) });
  });

  it("wrong secret: 401, nothing stored", async () => {
    const body = payload(row, "wrong-secret");
    await expectRefused(
      row,
      "wrong-secret",
      await deliver(base, row.hook, body, sign(row, body, { secret: row.wrong })),
    );
  });

  it("missing signature: 401, nothing stored", async () => {
    const body = payload(row, "unsigned");
    const headers: Record<string, string> = row.scheme === "hmac-sha256" ? { [ID_HEADER]: "unsigned" } : {};
    await expectRefused(row, "unsigned", await deliver(base, row.hook, body, headers));
  });

  it("tampered body: 401, nothing stored", async () => {
    const body = payload(row, "tampered");
    const headers = sign(row, body);
    const tampered = body.replace('"amount":100', '"amount":900');
    expect(tampered).not.toBe(body);
    await expectRefused(row, "tampered", await deliver(base, row.hook, tampered, headers));
  });

  it("re-serialized JSON: 401 (signatures cover the raw bytes), while the exact bytes pass", async () => {
    const body = payload(row, "reserialized");
    const headers = sign(row, body);
    const reserialized = JSON.stringify(JSON.parse(body), null, 2);
    expect(JSON.parse(reserialized)).toEqual(JSON.parse(body));
    await expectRefused(row, "reserialized", await deliver(base, row.hook, reserialized, headers));
    // The same headers over the bytes they were made for are accepted: only the re-serialization failed.
    const exact = await deliver(base, row.hook, body, headers);
    expect(exact.status).toBe(202);
    expect(await stored(row, "reserialized")).toHaveLength(1);
  });

  it.runIf(row.timestamped)("stale or future timestamp: 401, nothing stored", async () => {
    const body = payload(row, "stale");
    const stale = await deliver(base, row.hook, body, sign(row, body, { t: nowSeconds() - TOLERANCE_SECONDS - 30 }));
    await expectRefused(row, "stale", stale);
    const future = await deliver(base, row.hook, body, sign(row, body, { t: nowSeconds() + TOLERANCE_SECONDS + 30 }));
    await expectRefused(row, "stale", future);
  });

  it("replayed delivery id: 200 with the original message, delivered once", async () => {
    const body = payload(row, "replay");
    const first = await deliver(base, row.hook, body, sign(row, body, { t: nowSeconds() - 10 }));
    expect(first.status).toBe(202);
    expect(first.json.deliveryId).toBe(`${row.hook}-replay`);
    // The captured request as it was, and the sender's retry with a fresh timestamp and signature.
    const captured = await deliver(base, row.hook, body, sign(row, body, { t: nowSeconds() - 10 }));
    const retried = await deliver(base, row.hook, body, sign(row, body));
    for (const again of [captured, retried]) {
      expect(again.status).toBe(200);
      expect(again.json).toMatchObject({ id: first.json.id, cursor: first.json.cursor, duplicate: true });
    }
    expect((await stored(row, "replay")).map((m) => m.id)).toEqual([first.json.id]);
  });

  it.runIf(row.forgedId)("captured delivery under a fresh delivery id: not delivered again", async () => {
    const forged = row.forgedId as NonNullable<SchemeRow["forgedId"]>;
    const body = payload(row, "forged-id");
    const headers = sign(row, body);
    const first = await deliver(base, row.hook, body, headers);
    expect(first.status).toBe(202);
    const again = await deliver(base, row.hook, body, { ...headers, [forged.header]: "fresh-id" });
    expect(again.status).toBe(forged.status);
    if (forged.status === 200) expect(again.json.id).toBe(first.json.id);
    expect((await stored(row, "forged-id")).map((m) => m.id)).toEqual([first.json.id]);
  });

  it("rotated secret: the previous secret is still accepted, the current one too", async () => {
    const body = payload(row, "rotated");
    const answer = await deliver(base, row.hook, body, sign(row, body, { secret: row.old }));
    expect(answer.status).toBe(202);
    const other = payload(row, "rotated", "second", `${row.hook}-rotated-2`);
    expect((await deliver(base, row.hook, other, sign(row, other))).status).toBe(202);
    expect((await stored(row, "rotated")).map((m) => m.title)).toEqual(["original", "second"]);
  });

  it("oversize body: 413 whether the length is declared or streamed, nothing stored; the limit itself passes", async () => {
    const over = sized(row, "oversize", MAX_BODY_BYTES + 1);
    const declared = await deliver(base, row.hook, over, sign(row, over));
    expect(declared.status).toBe(413);
    expect(declared.json).toMatchObject({ error: { code: "payload_too_large" } });
    expect(await deliverChunked(row.hook, over, sign(row, over))).toBe(413);
    expect(await stored(row, "oversize")).toEqual([]);
    const limit = sized(row, "at-limit", MAX_BODY_BYTES);
    expect(Buffer.byteLength(limit)).toBe(MAX_BODY_BYTES);
    expect((await deliver(base, row.hook, limit, sign(row, limit))).status).toBe(202);
    expect(await stored(row, "at-limit")).toHaveLength(1);
  });
});

describe("README's webhook example", () => {
  it("is a config that starts a server whose placeholder secrets verify", async () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const section = readme.slice(readme.indexOf("## Webhooks"));
    const block = /```json\n([\s\S]*?)\n```/.exec(section)?.[1];
    expect(block).toBeDefined();
    const document = JSON.parse(block as string) as { hooks: { id: string; verify: { secret?: string[] } }[] };
    const secrets = document.hooks.find((hook) => hook.id === "svc")?.verify.secret ?? [];
    expect(secrets).toHaveLength(2);
    const example = await startHookServer(document, { GH_SECRET: "example" });
    try {
      const body = JSON.stringify({ type: "deploy.finished", data: { team: "blue" } });
      for (const [index, secret] of secrets.entries()) {
        const headers = SIGNERS["standard-webhooks"]({
          secret,
          body: Buffer.from(body),
          nowSeconds: nowSeconds(),
          id: `r-${index}`,
        });
        expect((await deliver(example.url, "svc", body, headers)).status).toBe(202);
      }
      expect(await readMailbox(example.url, "ops:blue")).toHaveLength(2);
    } finally {
      await example.shutdown();
    }
  });
});
