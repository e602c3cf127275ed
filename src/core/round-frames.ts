import type { StoredMessage } from "../store/mailbox-store.js";
import { encodeSingleCursor } from "./cursor.js";
import type { FrameFormat } from "./delivery.js";
import { type DeliveryView, passes } from "./message-filter.js";

/**
 * Frames built during one fan-out round, shared by every subscriber at the same
 * position: per format and mailbox, the text of the round's messages from index `start` on.
 */
export type RoundFrames = Map<FrameFormat, Map<string, (RoundText | undefined)[]>>;

/** Frames for a run of messages, and how many messages they carry (a filter may leave some out). */
export interface RoundText {
  readonly text: string;
  readonly count: number;
  /** The last message was left out, so no frame carries the cursor past it. */
  readonly movedTail: boolean;
}

/** What one write carried of one mailbox, for the extras. */
export interface WrittenSpan {
  epoch: string;
  first: number;
  last: number;
  count: number;
}

export function noteWritten(spans: Map<string, WrittenSpan>, message: StoredMessage): void {
  const span = spans.get(message.mailbox);
  if (span === undefined || span.epoch !== message.epoch) {
    spans.set(message.mailbox, { epoch: message.epoch, first: message.seq, last: message.seq, count: 1 });
    return;
  }
  span.last = message.seq;
  span.count += 1;
}

export function reportWritten(extras: WriteTracker, spans: Map<string, WrittenSpan>): void {
  for (const [mailbox, span] of spans) extras.written(mailbox, span.epoch, span.first, span.last, span.count);
  spans.clear();
}

export function singleFrame(format: FrameFormat, message: StoredMessage): string {
  return format.message(message, encodeSingleCursor(message.mailbox, message.epoch, message.seq));
}

/** The frames of `messages` from `start` on that pass the view's filter. */
export function filteredFrames(
  format: FrameFormat,
  view: DeliveryView,
  messages: readonly StoredMessage[],
  start: number,
): RoundText {
  let text = "";
  let count = 0;
  let passed = false;
  for (let i = start; i < messages.length; i++) {
    const message = messages[i] as StoredMessage;
    passed = passes(view.filter, message);
    if (!passed) continue;
    text += singleFrame(format, message);
    count += 1;
  }
  return { text, count, movedTail: !passed };
}

/**
 * Bytes the frames of `messages` take at most: their JSON, plus the cursor
 * each carries (about 40 bytes per mailbox of the subscription) and framing.
 */
export function framedSize(messages: readonly StoredMessage[], mailboxes: number): number {
  let bytes = 0;
  for (const message of messages) bytes += message.json.length;
  return bytes + messages.length * (40 * mailboxes + 100);
}

/**
 * How often at most a subscriber is told, with a cursor frame, that its
 * filter left out the last messages: each such frame is a write, and a busy
 * mailbox whose messages a thousand subscribers filter out would otherwise
 * cost a thousand writes a round. Only a resume needs it.
 */
export const MOVED_FRAME_INTERVAL_MS = 1000;

/** Told what was written to a sink, for unread counts (see SubscriptionExtras in subscription.ts). */
export interface WriteTracker {
  /** `messages` messages of `mailbox`, seqs `firstSeq` to `lastSeq` of `epoch`, were just written to the sink. */
  written(mailbox: string, epoch: string, firstSeq: number, lastSeq: number, messages: number): void;
}
