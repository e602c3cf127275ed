import type { StoredMessage } from "../store/mailbox-store.js";

export type GapReason = "epoch" | "expired" | "trimmed";

/** One mailbox whose messages after the client's cursor could not all be delivered. */
export interface GapNotice {
  readonly mailbox: string;
  readonly reason: GapReason;
}

/**
 * How one transport frames deliveries. The hub caches frames per format
 * object, so a message fanned out to 10,000 subscribers of one transport is
 * framed once.
 */
export interface FrameFormat {
  /** `cursor` is the subscription's cursor just after this message. */
  message(message: StoredMessage, cursor: string): string;
  gap(gaps: readonly GapNotice[], cursor: string): string;
  /**
   * The subscription's cursor moved past messages its filter left out, with
   * no message to carry it: the client holds it so that a resume does not
   * scan them again, and their leaving retention is never a gap for it.
   */
  moved(cursor: string): string;
  /**
   * Any other event (presence, read, unread): `json` is an object with its own
   * `type`; `name` groups events for SSE's `event:` line. It carries no cursor,
   * so it never moves where a reconnecting client resumes.
   */
  event(name: string, json: string): string;
}

/** Why the server ends a live connection: the hub cuts slow consumers; drain and token expiry end the rest. */
export type CloseReason = "slow-consumer" | "draining" | "auth-expired";

/** A live connection the hub writes to. Implemented by each streaming transport. */
export interface StreamSink {
  readonly format: FrameFormat;
  /** Queues already framed text; never blocks. */
  write(frames: string): void;
  /** Bytes queued in user space and not yet handed to the kernel. */
  bufferedBytes(): number;
  /** Resolves when the queue has drained or the connection is gone. */
  whenDrained(): Promise<void>;
  /** Ends the connection on the server's initiative, telling the client why where its wire format can. */
  end(reason: CloseReason): void;
}

/** A stored message's public JSON with the subscription's cursor after it. */
export function withCursor(json: string, cursor: string): string {
  return `${json.slice(0, -1)},"cursor":"${cursor}"}`;
}
