import { createHash } from "node:crypto";
import { parseJsonText } from "../core/json-text.js";
import { assertMailboxName, MAX_MAILBOX_NAME_LENGTH } from "../core/mailbox-name.js";
import { MAX_TITLE_LENGTH, type MessageFields } from "../core/message-input.js";
import type { Published, StoreItems } from "../core/publish-command.js";
import { storeCall } from "../core/read-plan.js";
import { HeraldError } from "../errors.js";
import type { MailboxStore } from "../store/mailbox-store.js";
import type { HookDefinition } from "./hook-config.js";
import { checkSignature, type HeaderLookup, SIGNATURE_READERS, type VerifyOutcome } from "./verifiers.js";

/** What the first delivery of an id (or of a GitHub body) was answered with, so a repeat gets the same answer. */
export interface RememberedDelivery {
  readonly id: string;
  readonly mailbox: string;
  readonly seq: number;
  readonly cursor: string;
}

export interface HookAnswer {
  readonly hook: string;
  /** The stored message; absent only for a reused delivery id whose original is no longer known. */
  readonly message: RememberedDelivery | undefined;
  /** The sender's delivery id, when the scheme has one. */
  readonly deliveryId: string | undefined;
  /** True when this delivery was seen before and nothing was published. */
  readonly duplicate: boolean;
}

/** A delivery whose signature headers are present and well-formed, waiting for its body. */
export interface PendingDelivery {
  /**
   * Checks the signature over the raw body, then parses and publishes. Throws
   * HeraldError: `unauthorized` for a signature or timestamp that does not
   * check out (deliberately without detail), `bad_json` / `bad_mailbox` for a
   * payload that cannot be mapped. A delivery seen before is answered as a
   * duplicate and not published again; anything else goes to `publish`, the
   * publish command's store step for this admitted delivery.
   */
  finish(body: Buffer, contentType: string | undefined, publish: StoreItems): Promise<HookAnswer>;
}

/**
 * Turns verified webhook deliveries into messages, in two steps so that a
 * body is only read for a delivery that carries a plausible signature. Nothing
 * reaches the hub unless the signature (and, where signed, the timestamp)
 * checks out.
 */
export interface HookService {
  /** The hook configured under `id`, or undefined. */
  find(id: string): HookDefinition | undefined;
  /**
   * Reads the scheme's signature header(s) before the body is read. Throws
   * `unauthorized` when they are missing or malformed.
   */
  begin(hook: HookDefinition, header: HeaderLookup): PendingDelivery;
}

export interface HookServiceOptions {
  readonly hooks: readonly HookDefinition[];
  /** Where answered deliveries are remembered: durable and shared with other nodes when the store is. */
  readonly store: Pick<MailboxStore, "recallDelivery" | "rememberDelivery">;
  readonly nowSeconds?: () => number;
  /** Told why a delivery was refused, for the operator's log; the sender only ever sees a bare 401. */
  readonly onRefused?: (hookId: string, reason: Exclude<VerifyOutcome, "ok">) => void;
}

/** Payloads at most this big travel whole in the message's `data`; bigger ones are left out of it. */
export const MAX_HOOK_DATA_BYTES = 64 * 1024;
/** Longest rendered `body`. */
export const MAX_HOOK_BODY_TEXT_LENGTH = 16 * 1024;
/** Stripe retries for up to three days; Standard Webhooks senders for a few days more at most. */
export const DELIVERY_MEMORY_TTL_MS = 4 * 24 * 60 * 60 * 1000;
const PRINTABLE_ID = /^[\x21-\x7e]{1,200}$/;
const FORM_MEDIA_TYPE = /^application\/x-www-form-urlencoded\s*(?:;|$)/i;

function parsePayload(body: Buffer, contentType: string | undefined): unknown {
  let text = body.toString("utf8");
  if (FORM_MEDIA_TYPE.test(contentType ?? "")) {
    // GitHub's "application/x-www-form-urlencoded" content type: the JSON is in `payload`.
    const payload = new URLSearchParams(text).get("payload");
    if (payload === null) throw new HeraldError("bad_json", 'A form-encoded delivery must carry JSON in "payload"');
    text = payload;
  }
  return parseJsonText(text, "The webhook payload");
}

function deliveryIdOf(hook: HookDefinition, header: HeaderLookup, payload: unknown): string | undefined {
  let id: unknown;
  if (hook.scheme === "github") id = header("x-github-delivery");
  else if (hook.scheme === "standard-webhooks") id = header("webhook-id");
  else if (hook.scheme === "hmac-sha256") id = hook.idHeader && header(hook.idHeader);
  else if (typeof payload === "object" && payload !== null) id = (payload as { id?: unknown }).id;
  return typeof id === "string" && id.length > 0 ? id : undefined;
}

const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("base64url");

/**
 * Keys this service uses, both as message idempotency keys and in the store's
 * delivery memory. They contain spaces, which no publisher's Idempotency-Key
 * may (1-256 of \x21-\x7e), so a publisher cannot take a delivery's key first
 * and have the real delivery dropped as a duplicate. The id part stays short
 * and printable whatever the sender put in its header.
 */
function deliveryKey(hookId: string, deliveryId: string): string {
  return `hook ${hookId} id ${PRINTABLE_ID.test(deliveryId) ? deliveryId : sha256(deliveryId)}`;
}

/**
 * GitHub signs the body but not X-GitHub-Delivery, so a captured delivery
 * could be replayed under a fresh id: its signed bytes are the key instead.
 */
function bodyKey(hookId: string, body: Buffer): string {
  return `hook ${hookId} body ${sha256(body)}`;
}

function messageFields(hook: HookDefinition, payload: unknown, bodyBytes: number): MessageFields {
  const fields: MessageFields = {};
  const title = hook.title?.render(payload, MAX_TITLE_LENGTH);
  if (title) fields.title = title;
  const body = hook.body?.render(payload, MAX_HOOK_BODY_TEXT_LENGTH);
  if (body) fields.body = body;
  if (bodyBytes <= MAX_HOOK_DATA_BYTES) fields.data = payload;
  if (hook.tags) fields.tags = [...hook.tags];
  if (hook.priority !== undefined) fields.priority = hook.priority;
  return fields;
}

export function createHookService(options: HookServiceOptions): HookService {
  const byId = new Map(options.hooks.map((hook) => [hook.id, hook]));
  const { store } = options;
  const nowSeconds = options.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
  const refuse = (hook: HookDefinition, reason: Exclude<VerifyOutcome, "ok">): HeraldError => {
    options.onRefused?.(hook.id, reason);
    return new HeraldError("unauthorized", "The webhook signature is missing or invalid");
  };
  const recall = async (key: string | undefined): Promise<RememberedDelivery | undefined> => {
    const text = key === undefined ? undefined : await storeCall(store.recallDelivery(key));
    return text === undefined ? undefined : (JSON.parse(text) as RememberedDelivery);
  };

  async function deliver(
    hook: HookDefinition,
    header: HeaderLookup,
    body: Buffer,
    contentType: string | undefined,
    publish: StoreItems,
  ): Promise<HookAnswer> {
    const payload = parsePayload(body, contentType);
    const deliveryId = deliveryIdOf(hook, header, payload);
    const answer = (message: RememberedDelivery | undefined, duplicate: boolean): HookAnswer => ({
      hook: hook.id,
      message,
      deliveryId,
      duplicate,
    });
    const idKey = deliveryId === undefined ? undefined : deliveryKey(hook.id, deliveryId);
    const contentKey = hook.scheme === "github" ? bodyKey(hook.id, body) : undefined;
    const seen = (await recall(idKey)) ?? (await recall(contentKey));
    if (seen) return answer(seen, true);
    const mailbox = assertMailboxName(hook.mailbox.render(payload, MAX_MAILBOX_NAME_LENGTH + 1));
    const fields = messageFields(hook, payload, body.length);
    let published: Published | undefined;
    try {
      // The store's idempotency is atomic per mailbox: parallel repeats of one key store one message.
      [published] = await publish([{ mailbox, fields }], contentKey ?? idKey);
    } catch (error) {
      // Same id, other payload: an id is delivered once; a 4xx would only make the sender retry.
      if (error instanceof HeraldError && error.code === "idempotency_conflict") return answer(undefined, true);
      throw error;
    }
    if (published === undefined) throw new HeraldError("internal");
    const { message } = published;
    const first: RememberedDelivery = {
      id: message.id,
      mailbox: message.mailbox,
      seq: message.seq,
      cursor: published.cursor,
    };
    // Outlives the message's retention, so a late retry or replay is still recognised.
    const remembered = JSON.stringify(first);
    await storeCall(
      Promise.all(
        [idKey, contentKey].flatMap((key) =>
          key === undefined ? [] : [store.rememberDelivery(key, remembered, DELIVERY_MEMORY_TTL_MS)],
        ),
      ),
    );
    return answer(first, published.duplicate);
  }

  return {
    find: (id) => byId.get(id),
    begin(hook, header) {
      const claim = SIGNATURE_READERS[hook.scheme](header, hook);
      if (typeof claim === "string") throw refuse(hook, claim);
      return {
        async finish(body, contentType, publish) {
          const outcome = checkSignature(claim, body, {
            keys: hook.keys,
            toleranceSeconds: hook.toleranceSeconds,
            header: hook.header,
            nowSeconds: nowSeconds(),
          });
          if (outcome !== "ok") throw refuse(hook, outcome);
          return deliver(hook, header, body, contentType, publish);
        },
      };
    },
  };
}
