import { createHash } from "node:crypto";
import { HeraldError } from "../core/errors.js";
import type { Hub } from "../core/hub.js";
import { assertMailboxName, MAX_MAILBOX_NAME_LENGTH } from "../core/mailbox-name.js";
import { MAX_TITLE_LENGTH, type MessageFields } from "../core/message-input.js";
import { createDeliveryMemory, type DeliveryMemory, type RememberedDelivery } from "./delivery-memory.js";
import type { HookDefinition } from "./hook-config.js";
import { type SignedRequest, VERIFIERS, type VerifyOutcome } from "./verifiers.js";

/** A delivery as the HTTP layer hands it over: headers and the raw body, unparsed. */
export interface HookRequest extends SignedRequest {
  readonly contentType: string | undefined;
}

export interface HookAnswer {
  readonly hook: string;
  /** The stored message; absent only for a reused delivery id whose original is no longer known. */
  readonly message: RememberedDelivery | undefined;
  /** The sender's delivery id, when the scheme has one. */
  readonly deliveryId: string | undefined;
  /** True when this delivery id was seen before and nothing was published. */
  readonly duplicate: boolean;
}

/**
 * Turns verified webhook deliveries into messages. Nothing reaches the hub
 * unless the signature (and, where signed, the timestamp) checks out.
 */
export interface HookService {
  /** The hook configured under `id`, or undefined. */
  find(id: string): HookDefinition | undefined;
  /**
   * Verifies, parses and publishes one delivery. Throws HeraldError:
   * `unauthorized` for any signature or timestamp failure (deliberately
   * without detail), `bad_json` / `bad_mailbox` for a payload that cannot be
   * mapped. A delivery id seen before is answered as a duplicate and not
   * published again.
   */
  receive(hook: HookDefinition, request: HookRequest): Promise<HookAnswer>;
}

export interface HookServiceOptions {
  readonly hooks: readonly HookDefinition[];
  readonly hub: Hub;
  readonly memory?: DeliveryMemory;
  readonly nowSeconds?: () => number;
  /** Told why a delivery was refused, for the operator's log; the sender only ever sees a bare 401. */
  readonly onRefused?: (hookId: string, reason: Exclude<VerifyOutcome, "ok">) => void;
}

/** Payloads at most this big travel whole in the message's `data`; bigger ones are left out of it. */
export const MAX_HOOK_DATA_BYTES = 64 * 1024;
/** Longest rendered `body`. */
export const MAX_HOOK_BODY_TEXT_LENGTH = 16 * 1024;
const PRINTABLE_KEY = /^[\x21-\x7e]{1,200}$/;
const FORM_MEDIA_TYPE = /^application\/x-www-form-urlencoded\s*(?:;|$)/i;

function parsePayload(request: HookRequest): unknown {
  let text = request.body.toString("utf8");
  if (FORM_MEDIA_TYPE.test(request.contentType ?? "")) {
    // GitHub's "application/x-www-form-urlencoded" content type: the JSON is in `payload`.
    const payload = new URLSearchParams(text).get("payload");
    if (payload === null) throw new HeraldError("bad_json", 'A form-encoded delivery must carry JSON in "payload"');
    text = payload;
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HeraldError("bad_json", `The webhook payload is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * GitHub signs the body but not X-GitHub-Delivery, so a captured delivery
 * could be replayed under a fresh id; its signed bytes are remembered too.
 * (NUL cannot occur in a header value, so this never collides with an id.)
 */
function signedContentKey(hook: HookDefinition, request: HookRequest): string | undefined {
  if (hook.scheme !== "github") return undefined;
  return `\0body:${createHash("sha256").update(request.body).digest("base64url")}`;
}

function deliveryIdOf(hook: HookDefinition, request: HookRequest, payload: unknown): string | undefined {
  let id: unknown;
  if (hook.scheme === "github") id = request.header("x-github-delivery");
  else if (hook.scheme === "standard-webhooks") id = request.header("webhook-id");
  else if (hook.scheme === "hmac-sha256") id = hook.idHeader && request.header(hook.idHeader);
  else if (typeof payload === "object" && payload !== null) id = (payload as { id?: unknown }).id;
  return typeof id === "string" && id.length > 0 ? id : undefined;
}

/** Store keys stay short and printable whatever the sender put in its header. */
function idempotencyKey(hookId: string, deliveryId: string): string {
  const id = PRINTABLE_KEY.test(deliveryId) ? deliveryId : createHash("sha256").update(deliveryId).digest("base64url");
  return `hook:${hookId}:${id}`;
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
  const memory = options.memory ?? createDeliveryMemory();
  const nowSeconds = options.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
  const unauthorized = () => new HeraldError("unauthorized", "The webhook signature is missing or invalid");
  return {
    find: (id) => byId.get(id),
    async receive(hook, request) {
      const outcome = VERIFIERS[hook.scheme](request, {
        keys: hook.keys,
        toleranceSeconds: hook.toleranceSeconds,
        header: hook.header,
        nowSeconds: nowSeconds(),
      });
      if (outcome !== "ok") {
        options.onRefused?.(hook.id, outcome);
        throw unauthorized();
      }
      const payload = parsePayload(request);
      const deliveryId = deliveryIdOf(hook, request, payload);
      const answer = (message: RememberedDelivery | undefined, duplicate: boolean): HookAnswer => ({
        hook: hook.id,
        message,
        deliveryId,
        duplicate,
      });
      const contentKey = signedContentKey(hook, request);
      const seen =
        (deliveryId === undefined ? undefined : memory.recall(hook.id, deliveryId)) ??
        (contentKey === undefined ? undefined : memory.recall(hook.id, contentKey));
      if (seen) return answer(seen, true);
      const mailbox = assertMailboxName(hook.mailbox.render(payload, MAX_MAILBOX_NAME_LENGTH + 1));
      const fields = messageFields(hook, payload, request.body.length);
      const key = deliveryId === undefined ? undefined : idempotencyKey(hook.id, deliveryId);
      let published: Awaited<ReturnType<Hub["publish"]>>[number] | undefined;
      try {
        [published] = await options.hub.publish([{ mailbox, fields }], key);
      } catch (error) {
        // Same id, other payload: an id is delivered once; a 4xx would only make the sender retry.
        if (error instanceof HeraldError && error.code === "idempotency_conflict") return answer(undefined, true);
        throw error;
      }
      if (published === undefined) throw new HeraldError("internal");
      const { message } = published;
      const first = { id: message.id, mailbox: message.mailbox, seq: message.seq, cursor: published.cursor };
      if (deliveryId !== undefined) memory.remember(hook.id, deliveryId, first);
      if (contentKey !== undefined) memory.remember(hook.id, contentKey, first);
      return answer(first, published.duplicate);
    },
  };
}
