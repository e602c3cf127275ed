import type { Context } from "hono";
import { parseJsonText } from "../../core/json-text.js";
import { parseMessageFields } from "../../core/message-input.js";
import { clientIdempotencyKey, type ScheduleItems, type StoreItems } from "../../core/publish-command.js";
import { HeraldError } from "../../errors.js";
import { assertTopic, ntfyFieldsOf, ntfyMessage, ntfyMessageJson, parseTopicList } from "../../ntfy/ntfy-message.js";
import { type NtfyPublish, publishFromJson, publishFromRequest } from "../../ntfy/ntfy-publish-input.js";
import { sinceCursor } from "../../ntfy/ntfy-since.js";
import type { AppDeps, Handler, HeraldEnv, RouteSpec } from "../deps.js";
import { admitPublisher, admitReader } from "../middleware/admission.js";
import { readRawBody } from "../routes/body.js";
import { openStream } from "../routes/open-stream.js";
import { MAX_READ_LIMIT } from "../routes/params.js";
import { adoptNtfyCredentials } from "./ntfy-auth.js";
import { type NtfyStreamKind, ntfyContentType, ntfyFormat } from "./ntfy-formats.js";
import { paramReader, priorityAware, type SubscribeRequest, subscribeRequest } from "./ntfy-request.js";
import { ntfyWebSocket } from "./ntfy-ws-route.js";

/** Pages of MAX_READ_LIMIT messages one `poll=1` answers at most; a client polls again with `since=<last id>`. */
export const MAX_POLL_PAGES = 10;
/** Bytes one `poll=1` answer stops growing at (after the page that passes it). */
export const MAX_POLL_BYTES = 2 * 1024 * 1024;

const JSON_TYPE = { "Content-Type": "application/json" };

/** `poll=1`: what is retained after `since` (default all), then the response ends. */
async function pollAnswer(c: Context, deps: AppDeps, kind: NtfyStreamKind, request: SubscribeRequest) {
  const { mailboxes } = request;
  // A poll builds its whole answer in memory: it holds a long-poll slot, so a client cannot run many at once.
  const grant = await admitReader(c, deps.access, mailboxes, "long-poll");
  try {
    return await pollText(c, deps, kind, request);
  } finally {
    grant.release();
  }
}

/** The poll's answer: pages of what follows `since`, bounded by MAX_POLL_PAGES and MAX_POLL_BYTES. */
async function pollText(c: Context, deps: AppDeps, kind: NtfyStreamKind, request: SubscribeRequest) {
  const { mailboxes, filter } = request;
  let cursor = await sinceCursor(deps.store, mailboxes, request.since);
  const format = ntfyFormat(kind, request.topics);
  let text = "";
  for (let page = 0; page < MAX_POLL_PAGES && text.length < MAX_POLL_BYTES; page++) {
    const answer = await deps.hub.read({
      mailboxes,
      cursor,
      limit: MAX_READ_LIMIT,
      waitMs: 0,
      ...(filter ? { view: { filter } } : {}),
    });
    if (answer.gaps.length > 0) text += format.gap(answer.gaps, answer.cursor);
    for (const { message, cursor: after } of answer.messages) text += format.message(message, after);
    if (answer.cursor === cursor) break;
    cursor = answer.cursor;
  }
  return c.body(text, 200, { "Content-Type": ntfyContentType(kind) });
}

/**
 * GET …/<topics>/json|sse|raw: a stream in ntfy's shape over Herald's hub. It
 * starts live unless `since` says otherwise; every message's `id` is the
 * cursor after it, so `since=<id>` resumes exactly.
 */
function streamRoute(kind: NtfyStreamKind): Handler {
  return async (c, deps) => {
    adoptNtfyCredentials(c);
    const request = subscribeRequest(c, kind === "sse");
    if (request.poll) return pollAnswer(c, deps, kind, request);
    const { mailboxes, filter } = request;
    const grant = await admitReader(c, deps.access, mailboxes, "stream");
    return openStream(
      c,
      deps,
      kind === "sse" ? "sse" : "ndjson",
      mailboxes,
      grant,
      ntfyFormat(kind, request.topics),
      async () => ({
        cursor: await sinceCursor(deps.store, mailboxes, request.since),
        options: filter ? { filter } : {},
      }),
    );
  };
}

/** Stores or schedules one ntfy publish and answers as ntfy does: 200 with the message. */
async function answerPublish(
  c: Context,
  deps: AppDeps,
  topic: string,
  input: NtfyPublish,
  key: string | undefined,
  store: StoreItems,
  schedule: ScheduleItems,
): Promise<Response> {
  const fields = parseMessageFields(input.message, deps.config.messageTtlSeconds);
  if (input.when !== undefined) {
    const [scheduled] = await schedule([{ mailbox: topic, fields, when: input.when }], key);
    const dueAtMs = scheduled?.dueAtMs ?? Date.now();
    // Its id until delivered is the scheduled entry's (DELETE /v1/scheduled/{id} cancels it); time is when it is due.
    const head = {
      id: scheduled?.id ?? "",
      topic,
      timeMs: dueAtMs,
      expiresAtMs: dueAtMs + (fields.ttl ?? deps.config.messageTtlSeconds) * 1000,
    };
    return c.body(`${ntfyMessageJson(head, ntfyFieldsOf(input.message))}\n`, 200, JSON_TYPE);
  }
  const [published] = await store([{ mailbox: topic, fields }], key);
  if (published === undefined) throw new HeraldError("internal");
  return c.body(`${ntfyMessage(published.message).json}\n`, 200, JSON_TYPE);
}

function idempotencyKey(c: Context): string | undefined {
  return clientIdempotencyKey(c.req.header("idempotency-key"), "Idempotency-Key");
}

/** PUT/POST …/<topic>: the body is the message; headers or the query carry title, priority, tags, delay, click. */
export async function publishTopic(c: Context<HeraldEnv>, deps: AppDeps): Promise<Response> {
  const topic = assertTopic(c.req.param("topic"));
  adoptNtfyCredentials(c);
  const publisher = await admitPublisher(c, deps.access);
  const key = idempotencyKey(c);
  const read = priorityAware(paramReader(c));
  return deps.hub.publishing.admit(publisher, [topic], async (store, schedule) => {
    const body = await readRawBody(c, deps.config.maxBodyBytes);
    const input = publishFromRequest(read, body.toString("utf8"));
    return answerPublish(c, deps, topic, input, key, store, schedule);
  });
}

/** PUT/POST at the prefix itself: ntfy's JSON publish, `{"topic": …, "message": …}`. */
export async function publishJson(c: Context<HeraldEnv>, deps: AppDeps): Promise<Response> {
  adoptNtfyCredentials(c);
  const publisher = await admitPublisher(c, deps.access);
  const key = idempotencyKey(c);
  return deps.hub.publishing.admit(publisher, [], async (store, schedule) => {
    // ntfy reads the body as JSON whatever its Content-Type says.
    const body = await readRawBody(c, deps.config.maxBodyBytes);
    const input = publishFromJson(parseJsonText(body.toString("utf8"), "The body"));
    return answerPublish(c, deps, input.topic, input, key, store, schedule);
  });
}

/** GET …/<topics>/auth: ntfy apps ask this to check credentials before subscribing. */
export async function checkAuth(c: Context<HeraldEnv>, deps: AppDeps): Promise<Response> {
  adoptNtfyCredentials(c);
  await admitReader(c, deps.access, parseTopicList(c.req.param("topics")), undefined);
  return c.body('{"success":true}\n', 200, JSON_TYPE);
}

function basePath(prefix: string): string {
  return prefix === "/" ? "" : prefix;
}

/** True for `<prefix>/<topics>/ws`, the only ntfy path a WebSocket upgrade may take. */
export function isNtfyWebSocketPath(prefix: string | false | undefined, path: string): boolean {
  if (typeof prefix !== "string") return false;
  const base = `${basePath(prefix)}/`;
  if (!path.startsWith(base) || !path.endsWith("/ws")) return false;
  const topics = path.slice(base.length, -"/ws".length);
  return topics.length > 0 && !topics.includes("/");
}

/** The ntfy-compatible API under `prefix` ("/" for the root, false for none). */
export function ntfyRoutes(prefix: string | false): RouteSpec[] {
  if (prefix === false) return [];
  const base = basePath(prefix);
  const atPrefix: RouteSpec[] =
    base === ""
      ? []
      : [
          { method: "POST", path: base, handler: publishJson },
          { method: "PUT", path: base, handler: publishJson },
        ];
  return [
    ...atPrefix,
    { method: "POST", path: `${base}/`, handler: publishJson },
    { method: "PUT", path: `${base}/`, handler: publishJson },
    { method: "POST", path: `${base}/:topic`, handler: publishTopic },
    { method: "PUT", path: `${base}/:topic`, handler: publishTopic },
    { method: "GET", path: `${base}/:topics/json`, handler: streamRoute("json") },
    { method: "GET", path: `${base}/:topics/sse`, handler: streamRoute("sse") },
    { method: "GET", path: `${base}/:topics/raw`, handler: streamRoute("raw") },
    { method: "GET", path: `${base}/:topics/ws`, handler: ntfyWebSocket },
    { method: "GET", path: `${base}/:topics/auth`, handler: checkAuth },
  ];
}
