import { nanoid } from "nanoid";
import type { GapNotice } from "../../core/delivery.js";
import { ntfyMessage, ntfyMessageJson } from "../../ntfy/ntfy-message.js";
import type { StoredMessage } from "../../store/mailbox-store.js";
import type { WireFormat } from "../transports/frame-formats.js";

/** ntfy's three HTTP stream shapes; WebSocket messages are the JSON lines one by one. */
export type NtfyStreamKind = "json" | "sse" | "raw";

/** ntfy's ids are 12 characters; open and keepalive events get a fresh one each, as there. */
const CONTROL_ID_LENGTH = 12;
/** Topic lists whose formats are kept; beyond it the cache starts over (formats are cheap to build again). */
const MAX_CACHED_FORMATS = 10_000;

/**
 * How one kind frames ntfy's events. A message's frame depends only on the
 * message and the id it is given, so the subscribers of one topic share it.
 */
interface Framing {
  readonly contentType: string;
  message(stored: StoredMessage, id: string | undefined): string;
  /** `json` is the event's JSON object; `event` its name (open, keepalive, gap, auth-expired). */
  control(event: string, json: string): string;
}

/**
 * The message's ntfy JSON: with its own single-topic id, framed once per
 * message, or with the id given (the whole subscription's cursor after it,
 * on a stream of several topics, so `since=<id>` resumes every topic exactly).
 */
function messageJson(stored: StoredMessage, id: string | undefined): string {
  const view = ntfyMessage(stored);
  if (id === undefined || id === view.id) return view.json;
  return ntfyMessageJson(
    { id, topic: stored.mailbox, timeMs: stored.timeMs, expiresAtMs: stored.expiresAtMs },
    view.fields,
  );
}

const FRAMINGS: Readonly<Record<NtfyStreamKind, Framing>> = {
  json: {
    contentType: "application/x-ndjson; charset=utf-8",
    message: (stored, id) => `${messageJson(stored, id)}\n`,
    control: (_event, json) => `${json}\n`,
  },
  sse: {
    contentType: "text/event-stream; charset=utf-8",
    // ntfy sends message events without an `event:` line so that onmessage fires; `id:` lets EventSource resume.
    message: (stored, id) => `id: ${id ?? ntfyMessage(stored).id}\ndata: ${messageJson(stored, id)}\n\n`,
    control: (event, json) => `event: ${event}\ndata: ${json}\n\n`,
  },
  raw: {
    contentType: "text/plain; charset=utf-8",
    message: (stored) => `${(ntfyMessage(stored).fields.message ?? "").replace(/\r?\n/g, " ")}\n`,
    // ntfy's raw stream says nothing but an empty line for every other event.
    control: (event) => (event === "open" || event === "keepalive" ? "\n" : ""),
  },
};

export function ntfyContentType(kind: NtfyStreamKind): string {
  return FRAMINGS[kind].contentType;
}

function controlJson(event: string, topics: string): string {
  return `{"id":"${nanoid(CONTROL_ID_LENGTH)}","time":${Math.floor(Date.now() / 1000)},"event":"${event}","topic":${JSON.stringify(topics)}}`;
}

/**
 * ntfy has no gap event. Herald's contract is to say so when a resume point
 * is gone, so a `gap` event (ignored by ntfy clients, which act on `message`
 * only) names the topics and why; `id` is the cursor after it.
 */
function gapJson(gaps: readonly GapNotice[], cursor: string): string {
  const topics = [...new Set(gaps.map((gap) => gap.mailbox))].join(",");
  const list = gaps.map((gap) => ({ topic: gap.mailbox, reason: gap.reason }));
  return `{"id":"${cursor}","time":${Math.floor(Date.now() / 1000)},"event":"gap","topic":${JSON.stringify(topics)},"gaps":${JSON.stringify(list)}}`;
}

function buildFormat(kind: NtfyStreamKind, topics: string): WireFormat {
  const framing = FRAMINGS[kind];
  const several = topics.includes(",");
  return {
    message: (stored, cursor) => framing.message(stored, several && cursor !== "" ? cursor : undefined),
    gap: (gaps, cursor) => framing.control("gap", gapJson(gaps, cursor)),
    // A filter moving the cursor past messages has no ntfy frame: a resume by id scans them again, and skips them again.
    moved: () => "",
    // Presence and read events are Herald's own; ntfy subscriptions never ask for them.
    event: () => "",
    opening: () => framing.control("open", controlJson("open", topics)),
    // A getter, so each keepalive carries its own id and time as ntfy's do.
    get heartbeat() {
      return framing.control("keepalive", controlJson("keepalive", topics));
    },
    authExpired: framing.control("auth-expired", '{"event":"auth-expired"}'),
    contentType: framing.contentType,
  };
}

const formats = new Map<string, WireFormat>();

/**
 * The format of an ntfy stream over `topics` (comma-joined, as in the path).
 * The open and keepalive events name the topics, so formats are per topic
 * list; one object per list keeps the hub's per-format frame cache shared by
 * every subscriber of the same topic.
 */
export function ntfyFormat(kind: NtfyStreamKind, topics: string): WireFormat {
  const key = `${kind}\n${topics}`;
  let format = formats.get(key);
  if (format === undefined) {
    if (formats.size >= MAX_CACHED_FORMATS) formats.clear();
    format = buildFormat(kind, topics);
    formats.set(key, format);
  }
  return format;
}
