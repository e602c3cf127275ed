import type { Context } from "hono";
import { withCursor } from "../core/delivery.js";
import type { Published, PublishItem } from "../core/hub.js";
import { assertMailboxName } from "../core/mailbox-name.js";
import { type MessageFields, parseMessageFields } from "../core/message-input.js";
import { HeraldError } from "../errors.js";
import { admitPublisher } from "./admission.js";
import { readBody } from "./body.js";
import type { AppDeps } from "./deps.js";
import { pathMailbox } from "./params.js";

/** Items one batch or fan-in publish may carry. */
export const MAX_BATCH_ITEMS = 100;
export const MAX_IDEMPOTENCY_KEY_LENGTH = 256;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,256}$/;

function idempotencyKey(c: Context): string | undefined {
  const key = c.req.header("idempotency-key");
  if (key === undefined) return undefined;
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw new HeraldError(
      "bad_parameter",
      `Idempotency-Key must be 1-${MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters`,
    );
  }
  return key;
}

function publishedJson(published: Published): string {
  return withCursor(published.message.json, published.cursor);
}

function jsonResponse(c: Context, status: 200 | 201, body: string): Response {
  return c.body(body, status, { "Content-Type": "application/json" });
}

/** POST /v1/mailboxes/{mailbox}/messages */
export async function publishOne(c: Context, deps: AppDeps): Promise<Response> {
  const mailbox = pathMailbox(c);
  const caller = await admitPublisher(c, deps.access);
  deps.access.checkPublish(caller, [mailbox]);
  const key = idempotencyKey(c);
  return deps.hub.admitPublish(async (publish) => {
    const body = await readBody(c, deps.config.maxBodyBytes);
    const fields: MessageFields =
      body.kind === "json"
        ? parseMessageFields(body.value, deps.config.messageTtlSeconds)
        : body.text.length > 0
          ? { body: body.text }
          : {};
    const [published] = await publish([{ mailbox, fields }], key);
    const result = published as Published;
    return jsonResponse(c, result.duplicate ? 200 : 201, publishedJson(result));
  });
}

function batchItems(value: unknown, maxTtlSeconds: number): PublishItem[] {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HeraldError("bad_message", 'Send {"messages":[...]} or {"mailboxes":[...],"message":{...}}');
  }
  const body = value as Record<string, unknown>;
  const keys = Object.keys(body).sort().join(",");
  if (keys === "messages") {
    const list = body.messages;
    if (!Array.isArray(list) || list.length === 0 || list.length > MAX_BATCH_ITEMS) {
      throw new HeraldError("bad_message", `"messages" must be an array of 1 to ${MAX_BATCH_ITEMS} messages`);
    }
    return list.map((item: unknown, index) => {
      const where = `messages[${index}]: `;
      if (typeof item !== "object" || item === null || Array.isArray(item)) {
        throw new HeraldError("bad_message", `${where}a message must be a JSON object`);
      }
      const { mailbox, ...rest } = item as Record<string, unknown>;
      if (mailbox === undefined) throw new HeraldError("bad_message", `${where}"mailbox" is required`);
      return { mailbox: assertMailboxName(mailbox), fields: parseMessageFields(rest, maxTtlSeconds, where) };
    });
  }
  if (keys === "mailboxes,message") {
    const mailboxes = body.mailboxes;
    if (!Array.isArray(mailboxes) || mailboxes.length === 0 || mailboxes.length > MAX_BATCH_ITEMS) {
      throw new HeraldError("bad_message", `"mailboxes" must be an array of 1 to ${MAX_BATCH_ITEMS} names`);
    }
    const names = [...new Set(mailboxes.map((name) => assertMailboxName(name)))];
    const fields = parseMessageFields(body.message, maxTtlSeconds, "message: ");
    return names.map((mailbox) => ({ mailbox, fields }));
  }
  throw new HeraldError(
    "bad_message",
    `Unexpected fields "${keys}": send {"messages":[...]} or {"mailboxes":[...],"message":{...}}`,
  );
}

/** POST /v1/messages: batch (`messages`) or fan-in (`mailboxes` + `message`). Every item is checked before any is stored. */
export async function publishBatch(c: Context, deps: AppDeps): Promise<Response> {
  const caller = await admitPublisher(c, deps.access);
  const key = idempotencyKey(c);
  return deps.hub.admitPublish(async (publish) => {
    const body = await readBody(c, deps.config.maxBodyBytes);
    if (body.kind !== "json") {
      throw new HeraldError("bad_json", "Batch publishes must be JSON (Content-Type: application/json)");
    }
    const items = batchItems(body.value, deps.config.messageTtlSeconds);
    deps.access.checkPublish(
      caller,
      items.map((item) => item.mailbox),
    );
    const published = await publish(items, key);
    const status = published.every((item) => item.duplicate) ? 200 : 201;
    return jsonResponse(c, status, `{"messages":[${published.map(publishedJson).join(",")}]}`);
  });
}
