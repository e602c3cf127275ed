// How the dashboard follows its feed: current values at once, then live in latest mode.
//
// At load the page asks for the newest message of each key (GET …/latest), so the charts show numbers
// before anything new is published; then it subscribes with mode "latest" from the snapshot's cursor, which
// repeats nothing of the snapshot and misses nothing published since. A tab that falls behind (a slow
// connection, a laptop waking up) is sent the newest value of each metric instead of the backlog, and the
// page says how many stale updates that skipped. A feed without keys has no snapshot: the subscription then
// starts at the earliest retained message, so the charts still show what the feed retained (in latest mode:
// every message without a key, and the newest of each key).
import { clientOptions, latest, subscribe } from "/demo/assets/common.js";

/** A snapshot that takes longer than this is given up on; the subscription catches up instead. */
const SNAPSHOT_TIMEOUT_MS = 5000;
/** How long "Skipped N stale updates" stays after the last time the server left some out. */
const SKIPPED_SHOW_MS = 8000;

const count = new Intl.NumberFormat();

/**
 * Loads the snapshot, hands its messages to `onMessage`, then subscribes in latest mode. `report` gets
 * data-snapshot (messages the snapshot had) and data-skipped (stale updates skipped so far), which the
 * browser tests read; `note` shows the skipped ones for a while.
 */
export async function followFeed(mailbox, { onMessage, onStatus, onError }, { report, note }) {
  let cursor;
  let loaded = 0;
  try {
    const snapshot = await latest(mailbox, { signal: AbortSignal.timeout(SNAPSHOT_TIMEOUT_MS) });
    for (const message of snapshot.messages) onMessage(message);
    loaded = snapshot.messages.length;
    if (loaded > 0) cursor = snapshot.cursor;
  } catch {
    // The subscription meets the same trouble (server down, a token needed) and the page says so then.
  }
  report.dataset.snapshot = String(loaded);
  report.dataset.skipped = "0";
  return subscribe(
    [mailbox],
    { onMessage, onStatus, onError, onConflated: skippedNote(note, report) },
    clientOptions({ cursorStore: null, mode: "latest", cursor }),
  );
}

/** The onConflated handler: counts what the server skipped and shows it in `note` for a few seconds. */
function skippedNote(note, report) {
  let total = 0;
  let shown = 0;
  let timer;
  return ({ skipped }) => {
    total += skipped;
    shown = note.hidden ? skipped : shown + skipped;
    report.dataset.skipped = String(total);
    note.textContent = `Skipped ${count.format(shown)} stale update${shown === 1 ? "" : "s"}`;
    note.hidden = false;
    clearTimeout(timer);
    timer = setTimeout(() => {
      note.hidden = true;
    }, SKIPPED_SHOW_MS);
  };
}

/**
 * The toolbar's caption of each message: its body (or `describe(data)`); for a feed of keyed values, the
 * newest of each key side by side ("cpu 41% · memory 60% · 412 req/s"), in the order the keys first came.
 */
export function captions(describe, maxKeys = 6) {
  const byKey = new Map();
  return (message) => {
    const text = message.body ?? describe(message.data);
    if (typeof message.key !== "string") return text;
    if (byKey.has(message.key) || byKey.size < maxKeys) byKey.set(message.key, text);
    return [...byKey.values()].join(" · ");
  };
}
