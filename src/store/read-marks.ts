import type { LogInfo, ReadMark, StreamPosition } from "./mailbox-store.js";

/** The position a held one amounts to in the log's current epoch: an earlier epoch's counts as nothing read. */
export function effectivePosition(log: LogInfo | undefined, held: StreamPosition | undefined): StreamPosition {
  if (log === undefined) return { epoch: "", seq: 0 };
  return held !== undefined && held.epoch === log.epoch ? held : { epoch: log.epoch, seq: 0 };
}

export type MarkDecision =
  | { readonly kind: "moved" | "unchanged"; readonly position: StreamPosition }
  | { readonly kind: "past-head" };

/**
 * The rule every backend applies (the Redis script repeats it in Lua): a mark
 * past the head is refused, one of an earlier epoch or not ahead is ignored,
 * anything else moves the position forward.
 */
export function decideMark(log: LogInfo | undefined, held: StreamPosition | undefined, mark: ReadMark): MarkDecision {
  const current = effectivePosition(log, held);
  if (log === undefined) return mark.seq === 0 ? { kind: "unchanged", position: current } : { kind: "past-head" };
  if (mark.epoch !== undefined && mark.epoch !== log.epoch) return { kind: "unchanged", position: current };
  if (mark.seq > log.lastSeq) return { kind: "past-head" };
  if (mark.seq <= current.seq) return { kind: "unchanged", position: current };
  return { kind: "moved", position: { epoch: log.epoch, seq: mark.seq } };
}
