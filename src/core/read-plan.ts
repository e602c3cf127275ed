import { HeraldError } from "../errors.js";
import type { LogInfo, MailboxRead, MailboxStore, StoredMessage, StreamPosition } from "../store/mailbox-store.js";
import { CURSOR_NOW, encodeCursor, encodeSingleCursor, parseCursor } from "./cursor.js";
import type { GapNotice, GapReason } from "./delivery.js";
import { type DeliveryView, messageKey, passes } from "./message-filter.js";

/** Where one subscription or read is, per mailbox; entries are replaced as it moves. */
export type PositionMap = Map<string, StreamPosition>;

export type ReadEvent =
  | { readonly type: "gap"; readonly gaps: GapNotice[]; readonly cursor: string }
  | { readonly type: "message"; readonly message: StoredMessage; readonly cursor: string }
  /** `mode=latest`: `skipped` older messages of keys that have a newer one in this read were left out. */
  | { readonly type: "conflated"; readonly mailbox: string; readonly skipped: number };

export interface ReadOutcome {
  readonly events: ReadEvent[];
  /** True when the store may hold more after the returned events. */
  readonly more: boolean;
  /**
   * True when the positions moved past messages the view filtered out after
   * the last event (or with no event at all): the client's cursor should
   * move there too, or a resume would scan them again.
   */
  readonly movedSilently: boolean;
}

interface Step {
  readonly mailbox: string;
  readonly to: StreamPosition;
  readonly gap?: GapReason;
  readonly message?: StoredMessage;
}

export const EMPTY_EPOCH = "";
/** Before the first message of any log. */
export const START: StreamPosition = { epoch: EMPTY_EPOCH, seq: 0 };

/**
 * Rows one read takes from the store over all its mailboxes. A read of 64
 * mailboxes shares this among them instead of taking its full limit from each
 * (which was 64,000 rows, synchronously on SQLite, for one request).
 */
export const MAX_ROWS_PER_READ = 1000;
/** Mailboxes one subscription or read may name. */
export const MAX_SUBSCRIPTION_MAILBOXES = 64;

/** A store that cannot answer (Redis down) is a 503 the client retries, not a 500. */
export async function storeCall<T>(pending: Promise<T>): Promise<T> {
  try {
    return await pending;
  } catch {
    throw new HeraldError("store_unavailable", undefined, { "Retry-After": "1" });
  }
}

/**
 * Where a client's cursor puts it in each mailbox: no cursor is before the
 * earliest message (no entries), "now" is each mailbox's head, anything else is
 * decoded (400 `bad_cursor` when it cannot be).
 */
export async function resolvePositions(
  store: MailboxStore,
  mailboxes: readonly string[],
  cursor: string | undefined,
): Promise<PositionMap> {
  const positions: PositionMap = new Map();
  if (cursor === undefined) return positions;
  if (cursor !== CURSOR_NOW) return new Map(parseCursor(cursor, mailboxes));
  const heads = await storeCall(Promise.all(mailboxes.map((mailbox) => store.head(mailbox))));
  mailboxes.forEach((mailbox, i) => {
    const head = heads[i];
    positions.set(mailbox, head ? { epoch: head.epoch, seq: head.lastSeq } : START);
  });
  return positions;
}

export function cursorOf(mailboxes: readonly string[], positions: PositionMap): string {
  if (mailboxes.length === 1) {
    const mailbox = mailboxes[0] as string;
    const position = positions.get(mailbox);
    if (position) return encodeSingleCursor(mailbox, position.epoch, position.seq);
  }
  return encodeCursor(mailboxes, positions);
}

/**
 * The steps that bring one mailbox from `from` to what the store holds: gaps
 * where messages the client should have had are gone, messages, and silent
 * moves where there was nothing the client could have expected.
 */
function planMailbox(mailbox: string, from: StreamPosition | undefined, read: MailboxRead, limit: number): Step[] {
  const { log, messages } = read;
  const steps: Step[] = [];
  if (!log) {
    if (from && from.seq > 0) steps.push({ mailbox, to: { epoch: EMPTY_EPOCH, seq: 0 }, gap: "epoch" });
    else if (!from) steps.push({ mailbox, to: { epoch: EMPTY_EPOCH, seq: 0 } });
    return steps;
  }
  const sameLog = from !== undefined && from.epoch === log.epoch && from.seq <= log.lastSeq;
  // `previous` is the seq the client is known to hold in this log; holes after it are gaps. A client
  // at seq 0 of another (or no) epoch holds nothing, so everything this log ever had came after it.
  let previous: number | undefined = sameLog ? from.seq : from?.seq === 0 ? 0 : undefined;
  const first = messages[0];
  if (!sameLog && from && from.seq > 0) {
    steps.push({ mailbox, to: { epoch: log.epoch, seq: first ? first.seq - 1 : log.lastSeq }, gap: "epoch" });
  }
  for (const message of messages) {
    if (previous !== undefined && message.seq > previous + 1) {
      steps.push({ mailbox, to: { epoch: log.epoch, seq: message.seq - 1 }, gap: holeReason(previous, log) });
    }
    steps.push({ mailbox, to: { epoch: log.epoch, seq: message.seq }, message });
    previous = message.seq;
  }
  const exhausted = messages.length < limit;
  const reached = previous ?? 0;
  if (exhausted && log.lastSeq > reached) {
    const to = { epoch: log.epoch, seq: log.lastSeq };
    if (previous !== undefined) steps.push({ mailbox, to, gap: holeReason(previous, log) });
    else if (steps.length === 0) steps.push({ mailbox, to });
  } else if (steps.length === 0 && !sameLog) {
    steps.push({ mailbox, to: { epoch: log.epoch, seq: reached } });
  }
  return steps;
}

function holeReason(previous: number, log: LogInfo): GapReason {
  return previous + 1 <= log.trimmedThrough ? "trimmed" : "expired";
}

function stepTime(steps: readonly Step[], index: number): number {
  for (let i = index; i < steps.length; i++) {
    const message = (steps[i] as Step).message;
    if (message) return message.timeMs;
  }
  return Number.POSITIVE_INFINITY;
}

/** Gaps met since the last message, told as one event before the next (a class: no closure per read). */
class PendingGaps {
  #gaps: GapNotice[] = [];

  add(gap: GapNotice): void {
    this.#gaps.push(gap);
  }

  /** Appends the gap event, if any gaps are pending; true when it did. */
  flushInto(events: ReadEvent[], mailboxes: readonly string[], positions: PositionMap): boolean {
    if (this.#gaps.length === 0) return false;
    events.push({ type: "gap", gaps: this.#gaps, cursor: cursorOf(mailboxes, positions) });
    this.#gaps = [];
    return true;
  }
}

/**
 * Reads what follows `positions` in each mailbox, at most `limit` messages in
 * all, merged across mailboxes by publish time while keeping each mailbox's
 * seq order. Updates `positions` in place. Each mailbox is read for its share
 * of MAX_ROWS_PER_READ; once a mailbox that may hold more has been used up, the
 * merge stops, since its next message may come before anything still unmerged.
 */
export async function readAfter(
  store: MailboxStore,
  mailboxes: readonly string[],
  positions: PositionMap,
  limit: number,
  view: DeliveryView = {},
): Promise<ReadOutcome> {
  const perMailbox = Math.max(1, Math.min(limit, Math.floor(MAX_ROWS_PER_READ / mailboxes.length)));
  const reads = await Promise.all(
    mailboxes.map((mailbox) => {
      const from = positions.get(mailbox);
      return store.read(mailbox, from ?? START, perMailbox);
    }),
  );
  const plans = mailboxes.map((mailbox, i) =>
    planMailbox(mailbox, positions.get(mailbox), reads[i] as MailboxRead, perMailbox),
  );
  const truncated = reads.map((read) => read.messages.length >= perMailbox);
  let more = truncated.some(Boolean);
  const cursors = plans.map(() => 0);
  const events: ReadEvent[] = [];
  let delivered = 0;
  let movedSilently = false;
  const gaps = new PendingGaps();
  for (;;) {
    let best = -1;
    let bestTime = Number.POSITIVE_INFINITY;
    for (let i = 0; i < plans.length; i++) {
      const plan = plans[i] as Step[];
      const at = cursors[i] as number;
      if (at >= plan.length) continue;
      const time = stepTime(plan, at);
      if (best === -1 || time < bestTime) {
        best = i;
        bestTime = time;
      }
    }
    if (best === -1 || plans.some((plan, i) => truncated[i] && cursors[i] === plan.length)) break;
    const step = (plans[best] as Step[])[cursors[best] as number] as Step;
    if (step.message && delivered >= limit) {
      more = true;
      break;
    }
    cursors[best] = (cursors[best] as number) + 1;
    positions.set(step.mailbox, step.to);
    if (step.gap) gaps.add({ mailbox: step.mailbox, reason: step.gap });
    if (step.message && !passes(view.filter, step.message)) {
      movedSilently = true;
    } else if (step.message) {
      if (gaps.flushInto(events, mailboxes, positions)) movedSilently = false;
      delivered += 1;
      movedSilently = false;
      events.push({ type: "message", message: step.message, cursor: cursorOf(mailboxes, positions) });
    }
  }
  if (gaps.flushInto(events, mailboxes, positions)) movedSilently = false;
  return { events: view.latest ? conflate(events) : events, more, movedSilently };
}

/**
 * Leaves out every keyed message that has a newer one of the same key among
 * `events`, in place of the first left out of each mailbox a `conflated`
 * notice. What stays keeps its order and its cursor, which already covers
 * what was left out before it; the newest message of a key is never left
 * out, so the last event's cursor is still the read's.
 */
function conflate(events: readonly ReadEvent[]): ReadEvent[] {
  const newer = new Set<string>();
  const dropped = new Set<number>();
  const skipped = new Map<string, number>();
  for (let i = events.length - 1; i >= 0; i--) {
    const event = events[i] as ReadEvent;
    if (event.type !== "message") continue;
    const key = messageKey(event.message);
    if (key === undefined) continue;
    const id = `${event.message.mailbox}\n${key}`;
    if (!newer.has(id)) {
      newer.add(id);
      continue;
    }
    dropped.add(i);
    skipped.set(event.message.mailbox, (skipped.get(event.message.mailbox) ?? 0) + 1);
  }
  if (dropped.size === 0) return events as ReadEvent[];
  const kept: ReadEvent[] = [];
  events.forEach((event, i) => {
    if (!dropped.has(i)) {
      kept.push(event);
      return;
    }
    const mailbox = (event as { message: StoredMessage }).message.mailbox;
    const count = skipped.get(mailbox);
    if (count === undefined) return;
    kept.push({ type: "conflated", mailbox, skipped: count });
    skipped.delete(mailbox);
  });
  return kept;
}
