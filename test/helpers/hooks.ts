import { createHmac } from "node:crypto";
import { DEFAULT_CONFIG, type ServeConfig } from "../../src/config.js";
import { parseFileConfig } from "../../src/config-file.js";
import type { Logger } from "../../src/log.js";
import { type RunningHerald, startHerald } from "../../src/server.js";
import type { MailboxStore } from "../../src/store/mailbox-store.js";
import { createMemoryStore } from "../../src/store/memory-store.js";

export interface HookServerOptions {
  readonly logger?: Logger;
  /** Serve on this store instead of a fresh memory store. */
  readonly store?: MailboxStore;
}

/** A listening Herald serving the hooks (and limits) of a config document, as `herald serve --config` would. */
export async function startHookServer(
  document: unknown,
  env: NodeJS.ProcessEnv = {},
  config: Partial<ServeConfig> = {},
  options: HookServerOptions = {},
): Promise<RunningHerald> {
  const serveConfig: ServeConfig = { ...DEFAULT_CONFIG, port: 0, drainTimeoutSeconds: 1, ...config };
  const file = parseFileConfig(document, env);
  const store =
    options.store ??
    createMemoryStore({
      maxMailboxes: serveConfig.maxMailboxes,
      maxMessagesPerMailbox: serveConfig.maxMessagesPerMailbox,
      maxBytes: serveConfig.maxStoreBytes,
    });
  return startHerald(serveConfig, store, {
    hooks: file.hooks,
    limits: file.limits,
    ...(options.logger ? { logger: options.logger } : {}),
  });
}

export async function deliver(
  base: string,
  hook: string,
  body: string | Buffer,
  headers: Record<string, string>,
): Promise<{ status: number; json: Record<string, unknown>; text: string }> {
  const response = await fetch(`${base}/v1/hooks/${hook}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : new Uint8Array(body),
  });
  const text = await response.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: response.status, json, text };
}

export async function readMailbox(base: string, mailbox: string): Promise<Record<string, unknown>[]> {
  const response = await fetch(`${base}/v1/mailboxes/${encodeURIComponent(mailbox)}/messages`);
  const answer = (await response.json()) as { messages: Record<string, unknown>[] };
  return answer.messages;
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

// Signatures computed here straight from node:crypto, independent of src/hooks/signers.ts.

export function githubHeaders(secret: string, body: string | Buffer, delivery: string): Record<string, string> {
  const hex = createHmac("sha256", secret).update(body).digest("hex");
  return { "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": `sha256=${hex}` };
}

export function stripeHeaders(secret: string, body: string | Buffer, t = nowSeconds()): Record<string, string> {
  const hex = createHmac("sha256", secret).update(`${t}.`).update(body).digest("hex");
  return { "Stripe-Signature": `t=${t},v1=${hex}` };
}

export function standardHeaders(
  secret: string,
  body: string | Buffer,
  id: string,
  t = nowSeconds(),
): Record<string, string> {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const signature = createHmac("sha256", key).update(`${id}.${t}.`).update(body).digest("base64");
  return { "webhook-id": id, "webhook-timestamp": String(t), "webhook-signature": `v1,${signature}` };
}

export function hmacHex(secret: string, body: string | Buffer): string {
  return createHmac("sha256", secret).update(body).digest("hex");
}
