// Proves the test push service against web-push (an independent sender) and proves each of its checks can fail,
// so a Herald test that passes against it means something.
import { execFile } from "node:child_process";
import { createCipheriv, createECDH, createPrivateKey, hkdfSync, randomBytes, sign } from "node:crypto";
import { existsSync } from "node:fs";
import { Agent, request } from "node:https";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import webpush, { type RequestOptions, WebPushError } from "web-push";
import { startTestPushService, type TestPushService, type TestSubscription } from "./helpers/push-service.js";

const SUBJECT = "mailto:ops@herald.test";
const vapid = webpush.generateVAPIDKeys();
let service: TestPushService;
let agent: Agent;

beforeAll(async () => {
  service = await startTestPushService({ vapidPublicKey: vapid.publicKey });
  agent = new Agent({ ca: service.ca });
});
afterAll(async () => {
  agent?.destroy();
  await service?.close();
});

function options(extra: Partial<RequestOptions> = {}): RequestOptions {
  return {
    vapidDetails: { subject: SUBJECT, publicKey: vapid.publicKey, privateKey: vapid.privateKey },
    TTL: 60,
    contentEncoding: "aes128gcm",
    agent,
    ...extra,
  };
}

const send = (subscription: webpush.PushSubscription, payload: string | null, extra?: Partial<RequestOptions>) =>
  webpush.sendNotification(subscription, payload, options(extra));

/** The WebPushError statusCode a send ends with, or 201-ish success codes. */
async function statusOf(promise: Promise<webpush.SendResult>): Promise<number> {
  try {
    return (await promise).statusCode;
  } catch (error) {
    if (error instanceof WebPushError) return error.statusCode;
    throw error;
  }
}

interface RawAnswer {
  status: number;
  body: string;
}

function rawPost(endpoint: string, headers: Record<string, string | number>, body: Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(endpoint, { method: "POST", headers, agent }, (res) => {
      let text = "";
      res.on("data", (chunk) => {
        text += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** A genuine web-push request (valid VAPID, valid encryption) to alter before sending it raw. */
function genuine(subscription: TestSubscription, payload: string, extra?: Partial<RequestOptions>) {
  const details = webpush.generateRequestDetails(subscription, payload, options(extra));
  return { headers: { ...details.headers } as Record<string, string | number>, body: Buffer.from(details.body) };
}

/** A VAPID header signed with node:crypto, for claims web-push itself refuses to produce. */
function vapidHeader(claims: Record<string, unknown>, keys = vapid, header: Record<string, unknown> = {}): string {
  const pub = Buffer.from(keys.publicKey, "base64url");
  const privateKey = createPrivateKey({
    key: {
      kty: "EC",
      crv: "P-256",
      x: pub.subarray(1, 33).toString("base64url"),
      y: pub.subarray(33, 65).toString("base64url"),
      d: keys.privateKey,
    },
    format: "jwk",
  });
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const input = `${b64({ typ: "JWT", alg: "ES256", ...header })}.${b64(claims)}`;
  const signature = sign("sha256", Buffer.from(input), { key: privateKey, dsaEncoding: "ieee-p1363" });
  return `vapid t=${input}.${signature.toString("base64url")}, k=${keys.publicKey}`;
}

/**
 * An aes128gcm body built by hand, for shapes web-push never sends: padding, a non-final delimiter, a small rs.
 * The key schedule matches web-push's (the delivery tests prove the service reads those), so only the shape varies.
 */
function encryptRecord(
  subscription: TestSubscription,
  plaintext: string,
  { padding = 0, delimiter = 2, rs = 4096 }: { padding?: number; delimiter?: number; rs?: number } = {},
): Buffer {
  const sender = createECDH("prime256v1");
  const asPublic = sender.generateKeys();
  const uaPublic = Buffer.from(subscription.keys.p256dh, "base64url");
  const salt = randomBytes(16);
  const hkdf = (key: Buffer, ikm: Buffer, info: string | Buffer, length: number) =>
    Buffer.from(hkdfSync("sha256", ikm, key, info, length));
  const info = Buffer.concat([Buffer.from("WebPush: info\0"), uaPublic, asPublic]);
  const ikm = hkdf(Buffer.from(subscription.keys.auth, "base64url"), sender.computeSecret(uaPublic), info, 32);
  const cipher = createCipheriv(
    "aes-128-gcm",
    hkdf(salt, ikm, "Content-Encoding: aes128gcm\0", 16),
    hkdf(salt, ikm, "Content-Encoding: nonce\0", 12),
  );
  const padded = Buffer.concat([Buffer.from(plaintext), Buffer.from([delimiter]), Buffer.alloc(padding)]);
  const header = Buffer.alloc(21);
  salt.copy(header);
  header.writeUInt32BE(rs, 16);
  header[20] = 65;
  return Buffer.concat([header, asPublic, cipher.update(padded), cipher.final(), cipher.getAuthTag()]);
}

const lastRequest = () => service.requests.at(-1);
const nowS = () => Math.floor(Date.now() / 1000);

describe("test push service: delivery", () => {
  it("verifies, decrypts and records a web-push notification with its headers", async () => {
    const subscription = service.subscribe();
    expect(subscription.endpoint).toMatch(new RegExp(`^${service.url}/push/[\\w-]+$`));
    expect(Buffer.from(subscription.keys.p256dh, "base64url")).toHaveLength(65);
    expect(Buffer.from(subscription.keys.auth, "base64url")).toHaveLength(16);

    const message = { mailbox: "alerts", id: 7, body: "disk full ✓" };
    const result = await send(subscription, JSON.stringify(message), { TTL: 120, urgency: "high", topic: "alerts-7" });
    expect(result.statusCode).toBe(201);
    expect(result.headers.location).toMatch(new RegExp(`^${service.url}/message/`));

    const [push] = await service.waitFor(1, { subscription });
    expect(push?.payload).toEqual(message);
    expect(push?.text).toBe(JSON.stringify(message));
    expect(push?.headers).toEqual({ ttl: "120", urgency: "high", topic: "alerts-7", contentEncoding: "aes128gcm" });
    expect(push?.vapid.aud).toBe(service.url);
    expect(push?.vapid.sub).toBe(SUBJECT);
    expect(push?.bytes).toBe(86 + Buffer.byteLength(JSON.stringify(message)) + 1 + 16);
    expect(lastRequest()).toMatchObject({ status: 201, reason: undefined, subscription, vapid: { ok: true } });
  });

  it("keeps subscriptions apart and waitFor filters by subscription", async () => {
    const a = service.subscribe();
    const b = service.subscribe();
    await send(a, "to a");
    await send(b, "to b");
    await send(a, "to a again");
    expect((await service.waitFor(2, { subscription: a })).map((p) => p.text)).toEqual(["to a", "to a again"]);
    // A copy (as read back from a store) matches by endpoint.
    const copy = { endpoint: b.endpoint };
    expect((await service.waitFor(1, { subscription: copy })).map((p) => p.text)).toEqual(["to b"]);
  });

  it("accepts a push without a body", async () => {
    const subscription = service.subscribe();
    expect(await statusOf(send(subscription, null))).toBe(201);
    const [push] = await service.waitFor(1, { subscription });
    expect(push).toMatchObject({ text: "", payload: undefined, bytes: 0 });
  });

  it("waitFor times out naming what it saw", async () => {
    const subscription = service.subscribe();
    await expect(service.waitFor(1, { subscription, timeoutMs: 100 })).rejects.toThrow(/0 of 1 pushes after 100 ms/);
  });

  it("serves a certificate for 127.0.0.1 that child processes trust through caFile only", async () => {
    const script = `fetch(${JSON.stringify(`${service.url}/push/nobody`)}, { method: "POST" })
      .then((r) => console.log(r.status), (e) => console.log("error", e.cause?.code))`;
    const run = (env: NodeJS.ProcessEnv) => promisify(execFile)(process.execPath, ["-e", script], { env });
    const { NODE_EXTRA_CA_CERTS: _, ...env } = process.env;
    expect((await run({ ...env, NODE_EXTRA_CA_CERTS: service.caFile })).stdout.trim()).toBe("404");
    expect((await run(env)).stdout.trim()).toMatch(/^error /);
  });
});

describe("test push service: VAPID refusals", () => {
  it("refuses a different VAPID key pair with 403 and records why", async () => {
    const subscription = service.subscribe();
    const other = webpush.generateVAPIDKeys();
    const status = await statusOf(
      send(subscription, "x", {
        vapidDetails: { subject: SUBJECT, publicKey: other.publicKey, privateKey: other.privateKey },
      }),
    );
    expect(status).toBe(403);
    expect(lastRequest()).toMatchObject({ status: 403, subscription, vapid: { ok: false } });
    expect(lastRequest()?.reason).toMatch(/k is not the configured VAPID key/);
    await expect(service.waitFor(1, { subscription, timeoutMs: 50 })).rejects.toThrow();
  });

  it("refuses the configured k with a signature made by another key", async () => {
    const subscription = service.subscribe();
    const other = webpush.generateVAPIDKeys();
    const forged = vapidHeader({ aud: service.url, exp: nowS() + 600, sub: SUBJECT }, other).replace(
      /k=.*$/,
      `k=${vapid.publicKey}`,
    );
    const { headers, body } = genuine(subscription, "x");
    expect((await rawPost(subscription.endpoint, { ...headers, Authorization: forged }, body)).status).toBe(403);
    expect(lastRequest()?.reason).toMatch(/signature does not verify/);
  });

  const claimCases: [string, () => Record<string, unknown>, RegExp][] = [
    ["another audience", () => ({ aud: "https://push.example.net", exp: nowS() + 600, sub: SUBJECT }), /aud /],
    ["an expired exp", () => ({ aud: service.url, exp: nowS() - 1, sub: SUBJECT }), /has passed/],
    ["exp over 24 h ahead", () => ({ aud: service.url, exp: nowS() + 25 * 3600, sub: SUBJECT }), /24 h/],
    ["no exp", () => ({ aud: service.url, sub: SUBJECT }), /exp is missing/],
    ["an http: sub", () => ({ aud: service.url, exp: nowS() + 600, sub: "http://herald.test" }), /sub /],
  ];
  it.each(claimCases)("refuses a JWT with %s (403)", async (_name, claims, reason) => {
    const subscription = service.subscribe();
    const { headers, body } = genuine(subscription, "x");
    const answer = await rawPost(subscription.endpoint, { ...headers, Authorization: vapidHeader(claims()) }, body);
    expect(answer.status).toBe(403);
    expect(lastRequest()?.reason).toMatch(reason);
  });

  it("refuses a JWT whose alg is not ES256 (403)", async () => {
    const subscription = service.subscribe();
    const { headers, body } = genuine(subscription, "x");
    const authorization = vapidHeader({ aud: service.url, exp: nowS() + 600, sub: SUBJECT }, vapid, { alg: "ES384" });
    expect((await rawPost(subscription.endpoint, { ...headers, Authorization: authorization }, body)).status).toBe(403);
    expect(lastRequest()?.reason).toMatch(/alg is ES384/);
  });

  it("answers 401 without usable credentials", async () => {
    const subscription = service.subscribe();
    const { headers, body } = genuine(subscription, "x");
    const { Authorization: _, ...bare } = headers;
    expect((await rawPost(subscription.endpoint, bare, body)).status).toBe(401);
    expect(lastRequest()?.reason).toMatch(/no Authorization/);
    const bearer = { ...headers, Authorization: "Bearer abc" };
    expect((await rawPost(subscription.endpoint, bearer, body)).status).toBe(401);
  });

  it("checks sub against the configured subject when one is given", async () => {
    const strict = await startTestPushService({ vapidPublicKey: vapid.publicKey, subject: "mailto:other@herald.test" });
    try {
      const subscription = strict.subscribe();
      const strictAgent = new Agent({ ca: strict.ca });
      const status = await statusOf(send(subscription, "x", { agent: strictAgent }));
      strictAgent.destroy();
      expect(status).toBe(403);
      expect(strict.requests[0]?.reason).toMatch(/sub mailto:ops@herald.test is not/);
    } finally {
      await strict.close();
    }
  });
});

describe("test push service: body and header refusals", () => {
  it("refuses a body with one flipped ciphertext byte (400)", async () => {
    const subscription = service.subscribe();
    const { headers, body } = genuine(subscription, JSON.stringify({ n: 1 }));
    body[body.length - 20] = (body[body.length - 20] ?? 0) ^ 0x01;
    expect((await rawPost(subscription.endpoint, headers, body)).status).toBe(400);
    expect(lastRequest()).toMatchObject({ status: 400, vapid: { ok: true } });
    expect(lastRequest()?.reason).toMatch(/authentication failed/);
    // The untampered original still goes through, so the 400 was the flipped byte.
    const fresh = genuine(subscription, JSON.stringify({ n: 2 }));
    expect((await rawPost(subscription.endpoint, fresh.headers, fresh.body)).status).toBe(201);
    expect((await service.waitFor(1, { subscription })).map((p) => p.payload)).toEqual([{ n: 2 }]);
  });

  it("strips padding, and refuses a non-final delimiter or a body split over records (400)", async () => {
    const subscription = service.subscribe();
    const { headers } = genuine(subscription, "x");
    const post = (body: Buffer) =>
      rawPost(subscription.endpoint, { ...headers, "Content-Length": body.length }, body).then((a) => a.status);
    expect(await post(encryptRecord(subscription, '{"padded":true}', { padding: 200 }))).toBe(201);
    expect((await service.waitFor(1, { subscription }))[0]).toMatchObject({ payload: { padded: true }, bytes: 318 });
    expect(await post(encryptRecord(subscription, "more follows", { delimiter: 1 }))).toBe(400);
    expect(lastRequest()?.reason).toMatch(/delimiter is 1/);
    expect(await post(encryptRecord(subscription, "tiny records", { rs: 18 }))).toBe(400);
    expect(lastRequest()?.reason).toMatch(/exceeds rs 18/);
    expect(service.received.filter((p) => p.subscription === subscription)).toHaveLength(1);
  });

  it("refuses a body encrypted to another subscription's keys (400)", async () => {
    const target = service.subscribe();
    const stranger = service.subscribe();
    const status = await statusOf(send({ endpoint: target.endpoint, keys: stranger.keys }, "misaddressed"));
    expect(status).toBe(400);
    expect(service.received.some((p) => p.text === "misaddressed")).toBe(false);
  });

  it("takes a 4096-byte body and answers 413 to a 4097-byte one", async () => {
    const subscription = service.subscribe();
    // 86 header + 3993 plaintext + 1 delimiter + 16 tag = 4096, the most a push service must take (RFC 8291 §4).
    expect(await statusOf(send(subscription, "a".repeat(3993)))).toBe(201);
    expect(service.received.at(-1)?.bytes).toBe(4096);
    expect(await statusOf(send(subscription, "a".repeat(3994)))).toBe(413);
    expect(lastRequest()).toMatchObject({ status: 413, bytes: 4097 });
  });

  it("answers 413 to an oversize raw body on its own, whatever web-push allows", async () => {
    const subscription = service.subscribe();
    const { headers } = genuine(subscription, "x");
    const body = Buffer.alloc(6000, 1);
    const answer = await rawPost(subscription.endpoint, { ...headers, "Content-Length": body.length }, body);
    expect(answer.status).toBe(413);
    expect(lastRequest()?.reason).toMatch(/6000 bytes/);
  });

  it("requires TTL and aes128gcm, and valid Urgency and Topic", async () => {
    const subscription = service.subscribe();
    const { headers, body } = genuine(subscription, "x");
    const { TTL: _, ...noTtl } = headers;
    expect((await rawPost(subscription.endpoint, noTtl, body)).status).toBe(400);
    expect(lastRequest()?.reason).toMatch(/TTL header missing/);
    const aesgcm = { ...headers, "Content-Encoding": "aesgcm" };
    expect((await rawPost(subscription.endpoint, aesgcm, body)).status).toBe(415);
    const urgent = { ...headers, Urgency: "urgent" };
    expect((await rawPost(subscription.endpoint, urgent, body)).status).toBe(400);
    const topic = { ...headers, Topic: "not a topic!" };
    expect((await rawPost(subscription.endpoint, topic, body)).status).toBe(400);
    expect(service.received.some((p) => p.subscription === subscription)).toBe(false);
  });

  it("answers 404 for unknown and unsubscribed endpoints", async () => {
    const subscription = service.subscribe();
    expect(await statusOf(send(subscription, "first"))).toBe(201);
    service.unsubscribe(subscription);
    expect(await statusOf(send(subscription, "second"))).toBe(404);
    expect(lastRequest()).toMatchObject({ status: 404, subscription: undefined, vapid: undefined });
    const made_up = { ...subscription, endpoint: `${service.url}/push/never-issued` };
    expect(await statusOf(send(made_up, "third"))).toBe(404);
  });
});

describe("test push service: scripted answers", () => {
  it("answers 410, 429 with Retry-After and 500 in order, then 201", async () => {
    const subscription = service.subscribe();
    service.answer(subscription, { status: 410 }, { status: 429, headers: { "Retry-After": "1" } }, { status: 500 });

    const gone = await send(subscription, "1").catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(WebPushError);
    expect((gone as WebPushError).statusCode).toBe(410);
    const limited = await send(subscription, "2").catch((e: unknown) => e);
    expect((limited as WebPushError).statusCode).toBe(429);
    expect((limited as WebPushError).headers["retry-after"]).toBe("1");
    expect(await statusOf(send(subscription, "3"))).toBe(500);
    expect(await statusOf(send(subscription, "4"))).toBe(201);

    expect((await service.waitFor(1, { subscription })).map((p) => p.text)).toEqual(["4"]);
    const mine = service.requests.filter((r) => r.subscription === subscription);
    expect(mine.map((r) => [r.status, r.reason])).toEqual([
      [410, "scripted"],
      [429, "scripted"],
      [500, "scripted"],
      [201, undefined],
    ]);
  });

  it("checks VAPID before a scripted answer and keeps the script for the next valid request", async () => {
    const subscription = service.subscribe();
    service.answer(subscription, { status: 410 });
    const other = webpush.generateVAPIDKeys();
    const forged = { vapidDetails: { subject: SUBJECT, publicKey: other.publicKey, privateKey: other.privateKey } };
    expect(await statusOf(send(subscription, "x", forged))).toBe(403);
    expect(await statusOf(send(subscription, "x"))).toBe(410);
  });

  it("delays an answer, and resets a connection", async () => {
    const subscription = service.subscribe();
    service.answer(subscription, { delayMs: 300 }, { reset: true });
    const started = Date.now();
    expect(await statusOf(send(subscription, "slow"))).toBe(201);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    await expect(send(subscription, "dropped")).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect(lastRequest()).toMatchObject({ status: 0, reason: "scripted" });
    expect((await service.waitFor(1, { subscription })).map((p) => p.text)).toEqual(["slow"]);
  });
});

describe("test push service: lifecycle", () => {
  it("removes its CA file and stops listening on close", async () => {
    const own = await startTestPushService({ vapidPublicKey: vapid.publicKey });
    expect(existsSync(own.caFile)).toBe(true);
    const subscription = own.subscribe();
    await own.close();
    expect(existsSync(own.caFile)).toBe(false);
    const ownAgent = new Agent({ ca: own.ca });
    await expect(send(subscription, "late", { agent: ownAgent })).rejects.toThrow(/ECONNREFUSED/);
    ownAgent.destroy();
  });
});
