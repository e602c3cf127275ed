import { CURSOR_NOW, encodeCursor, parseCursor } from "../core/cursor.js";
import { storeCall } from "../core/read-plan.js";
import { positionBeforeTime } from "../core/time-position.js";
import { HeraldError } from "../errors.js";
import type { MailboxStore, StreamPosition } from "../store/mailbox-store.js";

/**
 * ntfy's `since`: nothing old (`none`, a live stream's default), everything
 * retained (`all`, a poll's default), the newest message of each topic
 * (`latest`), messages from a time on, or after a message id (any Herald
 * cursor; ntfy ids handed out here are single-mailbox cursors).
 */
export type NtfySince =
  | { readonly kind: "none" | "all" | "latest" }
  | { readonly kind: "time"; readonly ms: number }
  | { readonly kind: "cursor"; readonly cursor: string };

/** Longest `since` text read. */
const MAX_SINCE_LENGTH = 8192;

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};
/** Go's durations ("10m", "1h30m", "1.5h") plus days, as ntfy's ParseDuration reads them. */
const GO_DURATION = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h|d))+$/;
const GO_DURATION_PART = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)/g;
/** ntfy's worded durations: "10 days", "5 min", "1 hour". */
const WORDED_DURATION = /^(\d+)\s*(d|days?|h|hours?|m|mins?|minutes?|s|secs?|seconds?)$/i;

/** Milliseconds of a duration text ntfy accepts, or undefined when it is not one. */
export function ntfyDurationMs(text: string): number | undefined {
  if (GO_DURATION.test(text)) {
    let total = 0;
    for (const part of text.matchAll(GO_DURATION_PART))
      total += Number(part[1]) * (UNIT_MS[part[2] as string] as number);
    return total;
  }
  const worded = WORDED_DURATION.exec(text);
  if (worded === null) return undefined;
  return Number(worded[1]) * (UNIT_MS[(worded[2] as string)[0]?.toLowerCase() as string] as number);
}

/** Parses `since`; an empty value is the default (`all` for a poll, `none` for a stream). 400 otherwise. */
export function parseSince(raw: string | undefined, poll: boolean, nowMs = Date.now()): NtfySince {
  const text = (raw ?? "").trim();
  if (text === "") return { kind: poll ? "all" : "none" };
  if (text === "all" || text === "latest" || text === "none") return { kind: text };
  if (/^\d{1,15}$/.test(text)) return { kind: "time", ms: Number(text) * 1000 };
  const duration = ntfyDurationMs(text);
  if (duration !== undefined) return { kind: "time", ms: nowMs - duration };
  if (text.length <= MAX_SINCE_LENGTH && /^[A-Za-z0-9_-]+$/.test(text)) return { kind: "cursor", cursor: text };
  throw new HeraldError(
    "bad_parameter",
    '"since" must be a duration ("10m", "1h"), a Unix time, a message id, "all", "latest" or "none"',
  );
}

/** Just before the newest retained message of a mailbox, or its head when that one expired. */
async function positionOfLatest(store: MailboxStore, mailbox: string): Promise<StreamPosition | undefined> {
  const head = await storeCall(store.head(mailbox));
  if (head === undefined || head.lastSeq === 0) return undefined;
  const read = await storeCall(store.read(mailbox, { epoch: head.epoch, seq: head.lastSeq - 1 }, 1));
  const newest = read.messages[0];
  if (read.log?.epoch === head.epoch && newest?.seq === head.lastSeq) return { epoch: head.epoch, seq: newest.seq - 1 };
  return { epoch: head.epoch, seq: head.lastSeq };
}

/** The time of the message a cursor position stands just after, when it is still retained. */
async function timeAt(store: MailboxStore, mailbox: string, position: StreamPosition): Promise<number | undefined> {
  if (position.seq === 0) return undefined;
  const read = await storeCall(store.read(mailbox, { epoch: position.epoch, seq: position.seq - 1 }, 1));
  const message = read.messages[0];
  return read.log?.epoch === position.epoch && message?.seq === position.seq ? message.timeMs : undefined;
}

/** A cursor or message id this server issued; one it did not is a 400 in ntfy's terms. */
function issuedCursor(raw: string, mailboxes: readonly string[]): Map<string, StreamPosition> {
  try {
    return parseCursor(raw, mailboxes);
  } catch {
    throw new HeraldError(
      "bad_parameter",
      '"since" is neither a duration, a Unix time nor a message id of this server',
    );
  }
}

async function positionsAtTime(
  store: MailboxStore,
  mailboxes: readonly string[],
  sinceMs: number,
  into: Map<string, StreamPosition>,
): Promise<void> {
  const found = await Promise.all(
    mailboxes.map((mailbox) => (into.has(mailbox) ? undefined : positionBeforeTime(store, mailbox, sinceMs))),
  );
  mailboxes.forEach((mailbox, i) => {
    const position = found[i];
    if (position !== undefined) into.set(mailbox, position);
  });
}

/**
 * The Herald cursor a subscription or poll starts from (undefined: from the
 * earliest retained message of every topic). A cursor `since` resumes its own
 * mailboxes exactly; the subscription's other topics start at the time of the
 * message it names (from the earliest, when that one is gone).
 */
export async function sinceCursor(
  store: MailboxStore,
  mailboxes: readonly string[],
  since: NtfySince,
): Promise<string | undefined> {
  switch (since.kind) {
    case "none":
      return CURSOR_NOW;
    case "all":
      return undefined;
    case "latest": {
      const positions = new Map<string, StreamPosition>();
      const found = await Promise.all(mailboxes.map((mailbox) => positionOfLatest(store, mailbox)));
      mailboxes.forEach((mailbox, i) => {
        const position = found[i];
        if (position !== undefined) positions.set(mailbox, position);
      });
      return encodeCursor(mailboxes, positions);
    }
    case "time": {
      const positions = new Map<string, StreamPosition>();
      await positionsAtTime(store, mailboxes, since.ms, positions);
      return encodeCursor(mailboxes, positions);
    }
    case "cursor": {
      const positions = issuedCursor(since.cursor, mailboxes);
      const [named] = positions;
      if (named === undefined) {
        throw new HeraldError("bad_parameter", '"since" names a message of none of these topics');
      }
      if (positions.size < mailboxes.length) {
        const timeMs = await timeAt(store, named[0], named[1]);
        if (timeMs !== undefined) await positionsAtTime(store, mailboxes, timeMs, positions);
      }
      return encodeCursor(mailboxes, positions);
    }
  }
}
