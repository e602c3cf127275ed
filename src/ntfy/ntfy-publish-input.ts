import { parseScheduleValue, type ScheduleSpec } from "../core/schedule-input.js";
import { HeraldError } from "../errors.js";
import { assertTopic, commaList, EMPTY_MESSAGE, parsePriority } from "./ntfy-message.js";
import { ntfyDurationMs } from "./ntfy-since.js";

/** Reads one ntfy parameter by any of its names: headers first, then the query (ntfy's readParam). */
export type ParamReader = (...names: string[]) => string | undefined;

/** What an ntfy publish asks for, in Herald's terms. */
export interface NtfyPublish {
  /** A message object for parseMessageFields: body, title, tags, priority, and ntfy's extras in `data`. */
  readonly message: Record<string, unknown>;
  readonly when: ScheduleSpec | undefined;
}

/** ntfy features Herald does not have; a publish asking for one is refused rather than half done. */
const UNSUPPORTED: readonly (readonly [string, readonly string[]])[] = [
  ["attachments", ["x-attach", "attach", "a", "x-filename", "filename", "file", "f"]],
  ["e-mail notifications", ["x-email", "x-e-mail", "email", "e-mail", "mail", "e"]],
  ["phone calls", ["x-call", "call"]],
  ["action buttons given as a header (send them as JSON actions)", ["x-actions", "actions", "action"]],
];

const AT_MOST_TEXT = 64;

/**
 * ntfy's `Delay` / `X-Delay` / `?delay=` (also `at`, `in`): a Unix time, or a
 * duration ("30m", "2h", "1 day"). Natural-language times are not supported.
 */
export function parseNtfyDelay(raw: string, where: string): ScheduleSpec {
  const text = raw.trim();
  if (/^\d{1,15}$/.test(text)) {
    const at = new Date(Number(text) * 1000).toISOString();
    return parseScheduleValue("at", at, where, "bad_parameter");
  }
  const ms = text.length <= AT_MOST_TEXT ? ntfyDurationMs(text) : undefined;
  if (ms !== undefined && ms > 0) return { kind: "delay", ms, where, code: "bad_parameter" };
  throw new HeraldError(
    "bad_parameter",
    `${where} must be a duration ("30m", "2h", "1 day") or a Unix time; natural-language times such as ` +
      `"tomorrow, 10am" are not supported, got ${JSON.stringify(text.slice(0, AT_MOST_TEXT))}`,
  );
}

function refuseUnsupported(read: ParamReader): void {
  for (const [feature, names] of UNSUPPORTED) {
    if (read(...names) !== undefined) throw new HeraldError("bad_parameter", `Herald's ntfy API has no ${feature}`);
  }
}

/** ntfy's markdown flag (X-Markdown: yes / 1 / true), as the content type it stands for. */
function markdownType(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const value = raw.trim().toLowerCase();
  if (value === "1" || value === "yes" || value === "true") return "text/markdown";
  if (value === "" || value === "0" || value === "no" || value === "false") return undefined;
  throw new HeraldError("bad_parameter", '"markdown" must be yes or no');
}

function extras(click: unknown, icon: unknown, actions: unknown, contentType: string | undefined): unknown {
  const data: Record<string, unknown> = {};
  if (click !== undefined && click !== "") data.click = click;
  if (icon !== undefined && icon !== "") data.icon = icon;
  if (actions !== undefined) data.actions = actions;
  if (contentType !== undefined) data.content_type = contentType;
  return Object.keys(data).length === 0 ? undefined : data;
}

function compact(object: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined));
}

/** `PUT/POST <topic>`: the body is the message; headers or query parameters carry the rest. */
export function publishFromRequest(read: ParamReader, body: string): NtfyPublish {
  refuseUnsupported(read);
  // ntfy lets `?message=` stand in for the body, with "\n" spelled out.
  const text = read("x-message", "message", "m")?.replaceAll("\\n", "\n") || body;
  const tags = commaList(read("x-tags", "tags", "tag", "ta"));
  const delay = read("x-delay", "delay", "x-at", "at", "x-in", "in");
  return {
    message: compact({
      body: text.length > 0 ? text : EMPTY_MESSAGE,
      title: read("x-title", "title", "t") || undefined,
      tags: tags.length > 0 ? tags : undefined,
      priority: parsePriority(read("x-priority", "priority", "prio", "p"), '"priority"'),
      data: extras(
        read("x-click", "click"),
        read("x-icon", "icon"),
        undefined,
        markdownType(read("x-markdown", "markdown", "md")),
      ),
    }),
    when: delay === undefined || delay === "" ? undefined : parseNtfyDelay(delay, '"delay"'),
  };
}

/** Fields of ntfy's JSON publish Herald maps; `cache` and `firebase` are delivery hints it has no use for. */
const JSON_FIELDS = new Set([
  "topic",
  "message",
  "title",
  "tags",
  "priority",
  "click",
  "icon",
  "actions",
  "markdown",
  "delay",
  "cache",
  "firebase",
]);
const JSON_UNSUPPORTED: Readonly<Record<string, string>> = {
  attach: "attachments",
  filename: "attachments",
  email: "e-mail notifications",
  call: "phone calls",
};
/** ntfy allows three action buttons. */
const MAX_ACTIONS = 3;

function badJson(text: string): HeraldError {
  return new HeraldError("bad_message", text);
}

function optionalString(input: Record<string, unknown>, name: string): string | undefined {
  const value = input[name];
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw badJson(`"${name}" must be a string`);
  return value;
}

/** `POST /` with `{"topic": …, "message": …, …}`: ntfy's JSON publish. */
export function publishFromJson(value: unknown): NtfyPublish & { readonly topic: string } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw badJson('Send a JSON object such as {"topic":"alerts","message":"Disk full"}');
  }
  const input = value as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    const feature = JSON_UNSUPPORTED[key];
    if (feature !== undefined) throw new HeraldError("bad_parameter", `Herald's ntfy API has no ${feature}`);
    if (!JSON_FIELDS.has(key)) {
      throw badJson(`unknown field "${key}"; allowed: ${[...JSON_FIELDS].join(", ")}`);
    }
  }
  const topic = assertTopic(typeof input.topic === "string" ? input.topic : undefined);
  const tags = input.tags;
  if (tags !== undefined && tags !== null && (!Array.isArray(tags) || !tags.every((tag) => typeof tag === "string"))) {
    throw badJson('"tags" must be an array of strings');
  }
  const actions = input.actions;
  if (
    actions !== undefined &&
    actions !== null &&
    (!Array.isArray(actions) ||
      actions.length > MAX_ACTIONS ||
      !actions.every((action) => typeof action === "object" && action !== null && !Array.isArray(action)))
  ) {
    throw badJson(`"actions" must be an array of at most ${MAX_ACTIONS} action objects`);
  }
  if (input.markdown !== undefined && typeof input.markdown !== "boolean")
    throw badJson('"markdown" must be a boolean');
  const priority = input.priority;
  if (priority !== undefined && typeof priority !== "number" && typeof priority !== "string") {
    throw badJson('"priority" must be 1-5 or a priority name');
  }
  const delay = input.delay;
  if (delay !== undefined && typeof delay !== "string" && typeof delay !== "number") {
    throw badJson('"delay" must be a duration or a Unix time');
  }
  const text = optionalString(input, "message");
  const list = Array.isArray(tags) ? (tags as string[]).filter((tag) => tag.length > 0) : [];
  return {
    topic,
    message: compact({
      body: text ?? EMPTY_MESSAGE,
      title: optionalString(input, "title"),
      tags: list.length > 0 ? list : undefined,
      priority: parsePriority(priority as string | number | undefined, '"priority"'),
      data: extras(
        optionalString(input, "click"),
        optionalString(input, "icon"),
        Array.isArray(actions) && actions.length > 0 ? actions : undefined,
        input.markdown === true ? "text/markdown" : undefined,
      ),
    }),
    when: delay === undefined || delay === "" ? undefined : parseNtfyDelay(String(delay), '"delay"'),
  };
}
