import type { Context } from "hono";
import { withCursor } from "../../core/delivery.js";
import { assertMailboxName } from "../../core/mailbox-name.js";
import { type MessageFields, parseMessageFields } from "../../core/message-input.js";
import { clientIdempotencyKey, MAX_BATCH_ITEMS, type Published, type PublishItem } from "../../core/publish-command.js";
import { splitSchedule } from "../../core/schedule-input.js";
import { HeraldError } from "../../errors.js";
import type { AppDeps } from "../deps.js";
import { admitPublisher } from "../middleware/admission.js";
import { readBody } from "./body.js";
import { pathMailbox } from "./params.js";
import { oneSchedule, querySchedule, scheduledResponse, splitBatchSchedule } from "./schedule-routes.js";

function idempotencyKey(c: Context): string | undefined {
  return clientIdempotencyKey(c.req.header("idempotency-key"), "Idempotency-Key");
}

function publishedJson(published: Published): string {
  return withCursor(published.message.json, published.cursor);
}

function jsonResponse(c: Context, status: 200 | 201, body: string): Response {
  return c.body(body, status, { "Content-Type": "application/json" });
}

/** POST /v1/mailboxes/{mailbox}/messages; `delay` / `at` (in the message or the query) schedule it instead. */
export async function publishOne(c: Context, deps: AppDeps): Promise<Response> {
  const mailbox = pathMailbox(c);
  const publisher = await admitPublisher(c, deps.access);
  const key = idempotencyKey(c);
  const queryWhen = querySchedule(c);
  return deps.hub.publishing.admit(publisher, [mailbox], async (store, schedule) => {
    const body = await readBody(c, deps.config.maxBodyBytes);
    const split = body.kind === "json" ? splitSchedule(body.value) : undefined;
    const fields: MessageFields =
      body.kind === "json"
        ? parseMessageFields(split?.message, deps.config.messageTtlSeconds)
        : body.text.length > 0
          ? { body: body.text }
          : {};
    const when = oneSchedule(queryWhen, split?.when);
    if (when !== undefined) return scheduledResponse(c, await schedule([{ mailbox, fields, when }], key), false);
    const [published] = await store([{ mailbox, fields }], key);
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

/**
 * POST /v1/messages: batch (`messages`) or fan-in (`mailboxes` + `message`). Every item is checked before any is
 * stored. With `delay` / `at` on every message (or on the fan-in's one) the whole publish is scheduled instead.
 */
export async function publishBatch(c: Context, deps: AppDeps): Promise<Response> {
  const publisher = await admitPublisher(c, deps.access);
  const key = idempotencyKey(c);
  return deps.hub.publishing.admit(publisher, [], async (store, schedule) => {
    const body = await readBody(c, deps.config.maxBodyBytes);
    if (body.kind !== "json") {
      throw new HeraldError("bad_json", "Batch publishes must be JSON (Content-Type: application/json)");
    }
    const { body: batch, whenAt } = splitBatchSchedule(body.value);
    const items = batchItems(batch, deps.config.messageTtlSeconds);
    if (whenAt !== undefined) {
      const scheduled = items.map((item, i) => ({ ...item, when: whenAt(i) }));
      return scheduledResponse(c, await schedule(scheduled, key), true);
    }
    const published = await store(items, key);
    const status = published.every((item) => item.duplicate) ? 200 : 201;
    return jsonResponse(c, status, `{"messages":[${published.map(publishedJson).join(",")}]}`);
  });
}
