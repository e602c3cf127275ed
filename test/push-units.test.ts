import { createECDH } from "node:crypto";
import { describe, expect, it } from "vitest";
import { parseFileConfig } from "../src/config-file.js";
import { createDraft } from "../src/core/message-input.js";
import { DEFAULT_PUSH_HOSTS } from "../src/push/push-config.js";
import { MAX_PUSH_PAYLOAD_BYTES, pushContent, pushFields } from "../src/push/push-payload.js";
import { outcomeOf, retryAfterMs } from "../src/push/push-sender.js";
import { checkEndpoint, hostAllowed, parsePushSubscription } from "../src/push/subscription-input.js";
import { createVapidKeys } from "../src/push/vapid.js";
import { storedMessage } from "../src/store/stored-message.js";

const NOW = Date.parse("2026-12-02T12:00:00Z");

function message(fields: Record<string, unknown>, ttlSeconds = 3600) {
  return storedMessage("user:alice", "e1", 7, createDraft(fields, ttlSeconds, undefined, NOW));
}

function contentOf(fields: Record<string, unknown>, withoutData = false) {
  const stored = message(fields);
  const parsed = pushFields(stored);
  if (parsed === undefined) throw new Error("opted out");
  const content = pushContent(stored, parsed, { nowMs: NOW, withoutData });
  return { ...content, json: JSON.parse(content.payload) as Record<string, unknown> };
}

function browserKeys() {
  const ecdh = createECDH("prime256v1");
  ecdh.generateKeys();
  return { p256dh: ecdh.getPublicKey().toString("base64url"), auth: Buffer.alloc(16, 7).toString("base64url") };
}

describe("push payload", () => {
  it("carries id, mailbox, cursor, time and the publisher's fields, with Urgency from priority and TTL from retention", () => {
    const content = contentOf({ title: "Order", body: "Shipped", tags: ["box"], priority: 5, data: { url: "/o/1" } });
    expect(content.json).toMatchObject({
      mailbox: "user:alice",
      time: NOW,
      title: "Order",
      body: "Shipped",
      tags: ["box"],
      priority: 5,
      data: { url: "/o/1" },
    });
    expect(typeof content.json.id).toBe("string");
    expect(typeof content.json.cursor).toBe("string");
    expect(content.json.truncated).toBeUndefined();
    expect(content.urgency).toBe("high");
    expect(content.ttlSeconds).toBe(3600);
    expect(content.topic).toBeUndefined();
    expect(contentOf({ priority: 1 }).urgency).toBe("very-low");
    expect(contentOf({ priority: 2 }).urgency).toBe("low");
    expect(contentOf({}).urgency).toBe("normal");
  });

  it("gives a keyed message a Topic, the same for the same mailbox and key only", () => {
    const cpu = contentOf({ key: "cpu", body: "1" }).topic;
    expect(cpu).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(contentOf({ key: "cpu", body: "2" }).topic).toBe(cpu);
    expect(contentOf({ key: "memory" }).topic).not.toBe(cpu);
  });

  it("leaves out a message published with push: false", () => {
    expect(pushFields(message({ body: "quiet", push: false }))).toBeUndefined();
    expect(pushFields(message({ body: "loud", push: true }))).toMatchObject({ body: "loud" });
    expect(pushFields(message({ body: '"push":false is only text' }))).toMatchObject({
      body: '"push":false is only text',
    });
  });

  it("fits 4 KiB by dropping data first, then tags, then shortening the body and the title", () => {
    const big = "x".repeat(5000);
    const dataOnly = contentOf({ title: "t", body: "b", tags: ["a"], data: { big } });
    expect(dataOnly.json.data).toBeUndefined();
    expect(dataOnly.json.tags).toEqual(["a"]);
    expect(dataOnly.json.truncated).toEqual(["data"]);

    const tags = Array.from({ length: 32 }, (_, i) => `${i}`.padEnd(128, "t"));
    const withTags = contentOf({ body: "b", tags, data: 1 });
    expect(withTags.json.truncated).toEqual(["data", "tags"]);

    const longBody = contentOf({ title: "Title", body: `${"é".repeat(3000)}😀${"y".repeat(3000)}` });
    expect(longBody.json.truncated).toEqual(["body"]);
    expect(longBody.json.title).toBe("Title");
    expect(String(longBody.json.body).endsWith("…")).toBe(true);

    const everything = contentOf({ title: "\u0001".repeat(1024), body: "\n".repeat(9000), data: big, tags });
    expect(everything.json.truncated).toEqual(["data", "tags", "body", "title"]);
    for (const content of [dataOnly, withTags, longBody, everything]) {
      expect(Buffer.byteLength(content.payload)).toBeLessThanOrEqual(MAX_PUSH_PAYLOAD_BYTES);
    }
    // Nothing is cut that did not need to be: a payload just under the limit is left whole.
    const fits = contentOf({ body: "z".repeat(MAX_PUSH_PAYLOAD_BYTES - 200) });
    expect(fits.json.truncated).toBeUndefined();
  });

  it("leaves data out when asked (a push service said 413)", () => {
    const content = contentOf({ body: "b", data: { a: 1 } }, true);
    expect(content.json.data).toBeUndefined();
    expect(content.json.truncated).toEqual(["data"]);
  });
});

describe("push service answers", () => {
  it("reads Retry-After as seconds or a date", () => {
    expect(retryAfterMs("3")).toBe(3000);
    expect(retryAfterMs(new Date(NOW + 10_000).toUTCString(), NOW)).toBe(10_000);
    expect(retryAfterMs("soon")).toBeUndefined();
    expect(retryAfterMs(undefined)).toBeUndefined();
  });

  it("maps statuses to what is done", () => {
    expect(outcomeOf(201, {})).toEqual({ kind: "sent" });
    expect(outcomeOf(410, {})).toEqual({ kind: "gone", status: 410 });
    expect(outcomeOf(404, {})).toEqual({ kind: "gone", status: 404 });
    expect(outcomeOf(413, {})).toEqual({ kind: "too-large" });
    expect(outcomeOf(429, { "retry-after": "2" })).toEqual({ kind: "retry", status: 429, retryAfterMs: 2000 });
    expect(outcomeOf(503, {})).toEqual({ kind: "retry", status: 503, retryAfterMs: undefined });
    expect(outcomeOf(403, {})).toEqual({ kind: "failed", status: 403 });
  });
});

describe("push subscriptions as browsers send them", () => {
  it("allows https endpoints on the listed hosts only", () => {
    expect(hostAllowed("wns2-by3p.notify.windows.com", 443, DEFAULT_PUSH_HOSTS)).toBe(true);
    expect(hostAllowed("notify.windows.com", 443, DEFAULT_PUSH_HOSTS)).toBe(false);
    expect(hostAllowed("evilnotify.windows.com", 443, DEFAULT_PUSH_HOSTS)).toBe(false);
    // A listed host is its https port only, unless the entry names another.
    expect(hostAllowed("fcm.googleapis.com", 6379, DEFAULT_PUSH_HOSTS)).toBe(false);
    expect(hostAllowed("127.0.0.1", 8443, ["127.0.0.1:8443"])).toBe(true);
    expect(hostAllowed("127.0.0.1", 8444, ["127.0.0.1:8443"])).toBe(false);
    expect(checkEndpoint("https://fcm.googleapis.com/fcm/send/abc", DEFAULT_PUSH_HOSTS)).toBe(
      "https://fcm.googleapis.com/fcm/send/abc",
    );
    for (const endpoint of [
      "http://fcm.googleapis.com/fcm/send/abc",
      "https://169.254.169.254/latest/meta-data",
      "https://fcm.googleapis.com.evil.example/x",
      "https://user:pass@fcm.googleapis.com/x",
      "https://localhost/x",
      "https://wns2-by3p.notify.windows.com:6379/x",
      "https://fcm.googleapis.com./fcm/send/abc",
    ]) {
      expect(() => checkEndpoint(endpoint, DEFAULT_PUSH_HOSTS), endpoint).toThrow(
        expect.objectContaining({ code: "push_endpoint_not_allowed" }),
      );
    }
    expect(checkEndpoint("https://127.0.0.1:8443/push/1", ["127.0.0.1:8443"])).toBe("https://127.0.0.1:8443/push/1");
    // The URL parser's normal form is what is checked (and what the sender connects to).
    expect(checkEndpoint("https://FCM.googleapis.com:443/fcm/send/abc", DEFAULT_PUSH_HOSTS)).toBe(
      "https://fcm.googleapis.com/fcm/send/abc",
    );
  });

  it("checks keys (a point on the curve, a 16-byte secret) and mailboxes", () => {
    const keys = browserKeys();
    const endpoint = "https://updates.push.services.mozilla.com/wpush/v2/abc";
    const parsed = parsePushSubscription(
      { endpoint, keys, expirationTime: null, mailboxes: ["user:alice", "user:alice", "room:1"] },
      DEFAULT_PUSH_HOSTS,
    );
    expect(parsed).toEqual({ endpoint, keys, mailboxes: ["user:alice", "room:1"], expirationTime: undefined });
    const offCurve = Buffer.alloc(65, 1);
    offCurve[0] = 4;
    const refusals: [unknown, string][] = [
      [{ endpoint, keys: { ...keys, p256dh: offCurve.toString("base64url") }, mailboxes: ["a"] }, "bad_message"],
      [{ endpoint, keys: { ...keys, auth: "short" }, mailboxes: ["a"] }, "bad_message"],
      [{ endpoint, keys, mailboxes: [] }, "bad_message"],
      [{ endpoint, keys, mailboxes: ["bad name"] }, "bad_mailbox"],
      [{ endpoint, keys, mailboxes: ["a"], extra: 1 }, "bad_message"],
      [[], "bad_json"],
    ];
    for (const [input, code] of refusals) {
      expect(() => parsePushSubscription(input, DEFAULT_PUSH_HOSTS), JSON.stringify(input)).toThrow(
        expect.objectContaining({ code }),
      );
    }
  });
});

describe("push config", () => {
  const keys = createVapidKeys();
  const parse = (push: unknown, env: NodeJS.ProcessEnv = {}) => parseFileConfig({ push }, env).push;

  it("takes the key pair inline or from the environment, and defaults the rest", () => {
    const inline = parse({ vapid: { ...keys, subject: "mailto:ops@example.com" } });
    expect(inline?.vapid.publicKey).toBe(keys.publicKey);
    expect(inline?.allowedHosts).toEqual(DEFAULT_PUSH_HOSTS);
    expect(inline?.concurrency).toBe(50);
    const fromEnv = parse(
      {
        vapid: { publicKey: keys.publicKey, privateKeyEnv: "VAPID_KEY", subject: "https://example.com" },
        concurrency: 8,
      },
      { VAPID_KEY: keys.privateKey },
    );
    expect(fromEnv?.vapid.privateKey).toBe(keys.privateKey);
    expect(fromEnv?.concurrency).toBe(8);
  });

  it("refuses what would fail every push later", () => {
    const other = createVapidKeys();
    const cases: [unknown, RegExp][] = [
      [{}, /push.vapid is required/],
      [{ vapid: { publicKey: keys.publicKey, subject: "mailto:a@b.c" } }, /privateKey or privateKeyEnv/],
      [{ vapid: { ...keys, privateKey: other.privateKey, subject: "mailto:a@b.c" } }, /does not belong/],
      [{ vapid: { ...keys, subject: "http://example.com" } }, /subject/],
      [{ vapid: { ...keys, subject: "mailto:a@b.c" }, allowedHosts: ["https://x"] }, /allowedHosts/],
      [{ vapid: { ...keys, subject: "mailto:a@b.c" }, allowedHosts: ["*.com"] }, /allowedHosts/],
      [{ vapid: { ...keys, subject: "mailto:a@b.c" }, allowedHosts: ["*.1"] }, /allowedHosts/],
      [{ vapid: { ...keys, subject: "mailto:a@b.c" }, allowedHosts: ["a.example:70000"] }, /allowedHosts/],
      [{ vapid: { ...keys, subject: "mailto:a@b.c" }, concurrency: 0 }, /concurrency/],
      [{ vapid: { ...keys, subject: "mailto:a@b.c" }, retries: 3 }, /unknown field "retries"/],
    ];
    for (const [push, message] of cases) expect(() => parse(push), JSON.stringify(push)).toThrow(message);
  });
});
