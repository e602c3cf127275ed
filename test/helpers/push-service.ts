import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  checkPushHeaders,
  decryptAes128gcm,
  generateUserAgentKeys,
  PushRejection,
  type UserAgentKeys,
  type VapidClaims,
  type VapidResult,
  verifyVapid,
} from "./push-crypto.js";
import { makeThrowawayPki, type ThrowawayPki } from "./throwaway-pki.js";

export interface TestSubscription {
  readonly endpoint: string;
  /** RFC 8292 applicationServerKey the subscription was restricted to: the service's VAPID public key. */
  readonly applicationServerKey: string;
  readonly keys: { readonly p256dh: string; readonly auth: string };
}

export interface ReceivedPush {
  readonly subscription: TestSubscription;
  /** JSON.parse of `text`; undefined when the text is not JSON (or the push had no body). */
  readonly payload: unknown;
  readonly text: string;
  readonly headers: { ttl: string; urgency?: string; topic?: string; contentEncoding?: string };
  readonly vapid: VapidClaims;
  /** Encrypted body length. */
  readonly bytes: number;
}

/** A scripted answer; with only `delayMs` the request is then handled normally. */
export interface ScriptedAnswer {
  readonly status?: number;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly delayMs?: number;
  /** Drop the connection without answering, as a crashed or unreachable service would. */
  readonly reset?: boolean;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  /** Undefined when the endpoint was unknown. */
  readonly subscription: TestSubscription | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly bytes: number;
  /** Status answered; 0 for a reset connection. */
  readonly status: number;
  /** Why the request was refused, or "scripted"; undefined when delivered. */
  readonly reason: string | undefined;
  /** Undefined only for requests refused before VAPID was looked at (unknown endpoint, not a POST). */
  readonly vapid: VapidResult | undefined;
}

export interface TestPushService {
  /** https://127.0.0.1:<port> — also the VAPID audience. */
  readonly url: string;
  /** PEM file of the CA that signed the server certificate, for NODE_EXTRA_CA_CERTS in child processes. */
  readonly caFile: string;
  /** The same CA as PEM text, for `new https.Agent({ ca })` in-process. */
  readonly ca: string;
  readonly received: readonly ReceivedPush[];
  readonly requests: readonly RecordedRequest[];
  /** A browser-like subscription: fresh P-256 key pair, 16-byte auth secret, endpoint <url>/push/<random>. */
  subscribe(): TestSubscription;
  /** Forgets the subscription: later pushes to it get 404, as for an expired endpoint. */
  unsubscribe(subscription: { readonly endpoint: string }): void;
  /** Queues answers for the endpoint, consumed one per request, after VAPID passes and before decryption. */
  answer(subscription: { readonly endpoint: string }, ...answers: ScriptedAnswer[]): void;
  /**
   * Resolves with all pushes so far (for `subscription`'s endpoint, when given) once there are at least `count`;
   * rejects after timeoutMs (default 5000) listing the requests that did arrive and why they were refused.
   */
  waitFor(
    count: number,
    options?: { subscription?: { readonly endpoint: string }; timeoutMs?: number },
  ): Promise<ReceivedPush[]>;
  close(): Promise<void>;
}

export interface TestPushServiceOptions {
  /** Base64url uncompressed P-256 point, as web-push's generateVAPIDKeys() gives. */
  readonly vapidPublicKey: string;
  /** When set, the JWT's sub must equal it. */
  readonly subject?: string;
}

let pki: Promise<ThrowawayPki> | undefined;

// Tests that forget close() still should not leave CA directories behind; one listener, however many services.
const liveDirs = new Set<string>();
process.once("exit", () => {
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
});

/** The throwaway CA and 127.0.0.1 certificate, made once per process. */
function loadPki(): Promise<ThrowawayPki> {
  pki ??= makeThrowawayPki("Herald test push CA");
  return pki;
}

export async function startTestPushService(options: TestPushServiceOptions): Promise<TestPushService> {
  const { ca, key, cert } = await loadPki();
  const vapidKey = Buffer.from(options.vapidPublicKey, "base64url");
  if (vapidKey.length !== 65 || vapidKey[0] !== 4) throw new Error("vapidPublicKey is not an uncompressed P-256 point");

  const subscriptions = new Map<string, { subscription: TestSubscription; keys: UserAgentKeys }>();
  const scripts = new Map<string, ScriptedAnswer[]>();
  const received: ReceivedPush[] = [];
  const requests: RecordedRequest[] = [];
  const waiters = new Set<() => void>();
  const timers = new Set<NodeJS.Timeout>();
  let url = "";

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const path = req.url ?? "";
    const id = /^\/push\/([\w-]+)$/.exec(path)?.[1];
    const entry = id === undefined ? undefined : subscriptions.get(id);
    let vapid: VapidResult | undefined;
    const finish = (status: number, reason?: string, extra?: ScriptedAnswer) => {
      requests.push({
        method: req.method ?? "",
        path,
        subscription: entry?.subscription,
        headers: req.headers,
        bytes: body.length,
        status: extra?.reset ? 0 : status,
        reason,
        vapid,
      });
      if (extra?.reset) {
        req.socket.destroy();
        return;
      }
      // RFC 8030 §5: a 201 names the push message resource.
      if (status === 201) res.setHeader("Location", `${url}/message/${randomBytes(8).toString("hex")}`);
      res.writeHead(status, { "Content-Type": "text/plain", ...extra?.headers });
      res.end(extra?.body ?? reason ?? "");
    };

    if (req.method !== "POST") return finish(405, `method ${req.method}`);
    if (!entry) return finish(404, "unknown endpoint");
    vapid = verifyVapid(req.headers.authorization, { publicKey: vapidKey, audience: url, subject: options.subject });
    if (!vapid.ok) return finish(vapid.status, `VAPID: ${vapid.reason}`);
    const script = scripts.get(entry.subscription.endpoint)?.shift();
    if (script?.delayMs) await sleep(script.delayMs);
    if (script && (script.status !== undefined || script.reset)) return finish(script.status ?? 0, "scripted", script);
    const refusal = checkPushHeaders(req.headers, body.length);
    if (refusal) return finish(refusal[0], refusal[1]);

    let text = "";
    if (body.length > 0) {
      try {
        text = decryptAes128gcm(body, entry.keys).toString("utf8");
      } catch (error) {
        if (error instanceof PushRejection) return finish(error.status, error.message);
        throw error;
      }
    }
    let payload: unknown;
    try {
      payload = text === "" ? undefined : JSON.parse(text);
    } catch {
      payload = undefined;
    }
    const h = req.headers;
    received.push({
      subscription: entry.subscription,
      payload,
      text,
      headers: {
        ttl: String(h.ttl),
        ...(h.urgency === undefined ? {} : { urgency: String(h.urgency) }),
        ...(h.topic === undefined ? {} : { topic: String(h.topic) }),
        ...(h["content-encoding"] === undefined ? {} : { contentEncoding: h["content-encoding"] }),
      },
      vapid: vapid.claims,
      bytes: body.length,
    });
    finish(201, undefined, script);
    for (const wake of waiters) wake();
  }

  const server: Server = createServer({ key, cert }, (req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const caDir = await mkdtemp(join(tmpdir(), "herald-push-ca-"));
  liveDirs.add(caDir);
  const caFile = join(caDir, "ca.pem");
  await writeFile(caFile, ca);

  return {
    url,
    caFile,
    ca,
    received,
    requests,
    subscribe() {
      const keys = generateUserAgentKeys();
      const id = randomBytes(12).toString("base64url");
      const subscription: TestSubscription = {
        endpoint: `${url}/push/${id}`,
        applicationServerKey: options.vapidPublicKey,
        keys: { p256dh: keys.publicKey.toString("base64url"), auth: keys.authSecret.toString("base64url") },
      };
      subscriptions.set(id, { subscription, keys });
      return subscription;
    },
    unsubscribe(subscription) {
      subscriptions.delete(subscription.endpoint.slice(subscription.endpoint.lastIndexOf("/") + 1));
    },
    answer(subscription, ...answers) {
      const queue = scripts.get(subscription.endpoint) ?? [];
      queue.push(...answers);
      scripts.set(subscription.endpoint, queue);
    },
    waitFor(count, { subscription, timeoutMs = 5000 } = {}) {
      // By endpoint, so a copy of the subscription (say, read back from Herald's store) matches too.
      const mine = (s: TestSubscription | undefined) => !subscription || s?.endpoint === subscription.endpoint;
      const matching = () => received.filter((push) => mine(push.subscription));
      return new Promise((resolve, reject) => {
        const check = () => {
          const pushes = matching();
          if (pushes.length < count) return;
          cleanup();
          resolve(pushes);
        };
        const timer = setTimeout(() => {
          cleanup();
          const seen = requests
            .filter((r) => mine(r.subscription))
            .map((r) => `${r.status} ${r.path}${r.reason ? ` (${r.reason})` : ""}`);
          reject(
            new Error(
              `push service: ${matching().length} of ${count} pushes after ${timeoutMs} ms; requests: ${seen.join("; ") || "none"}`,
            ),
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      liveDirs.delete(caDir);
      await rm(caDir, { recursive: true, force: true });
    },
  };
}
