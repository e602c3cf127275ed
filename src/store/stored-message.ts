/**
 * A message as every backend keeps it. `json` is the public representation
 * without a cursor, serialized once when the message is stored so that
 * fan-out and replay never serialize it again.
 */
export interface StoredMessage {
  readonly mailbox: string;
  readonly epoch: string;
  readonly seq: number;
  readonly id: string;
  readonly timeMs: number;
  readonly expiresAtMs: number;
  readonly json: string;
}

/** What a publisher's message becomes before the store gives it a seq. */
export interface MessageDraft {
  readonly id: string;
  readonly timeMs: number;
  readonly expiresAtMs: number;
  /** The publisher's fields as a serialized JSON object, e.g. `{"title":"x"}`. */
  readonly fieldsJson: string;
  readonly idempotencyKey?: string;
  /** Identifies the publisher's input, so a reused key with another body is detected. */
  readonly fingerprint?: string;
}

export function storedMessage(mailbox: string, epoch: string, seq: number, draft: MessageDraft): StoredMessage {
  const head = `{"id":${JSON.stringify(draft.id)},"mailbox":${JSON.stringify(mailbox)},"seq":${seq},"time":"${new Date(draft.timeMs).toISOString()}","expires":"${new Date(draft.expiresAtMs).toISOString()}"`;
  const fields = draft.fieldsJson === "{}" ? "}" : `,${draft.fieldsJson.slice(1)}`;
  return {
    mailbox,
    epoch,
    seq,
    id: draft.id,
    timeMs: draft.timeMs,
    expiresAtMs: draft.expiresAtMs,
    json: head + fields,
  };
}
