import { updateEvent, updateOf } from "../../mercure/mercure-update.js";
import type { StoredMessage } from "../../store/mailbox-store.js";
import type { WireFormat } from "../transports/frame-formats.js";

const events = new WeakMap<StoredMessage, string>();

/**
 * Mercure's Server-Sent Events: an update's own id (the publisher's, or the
 * hub's `urn:uuid:`), type, retry and data lines. Subscribers resume by that
 * id, so nothing carries Herald's cursor; a gap is an `event: gap` that
 * `onmessage` listeners never see, and presence or read events do not exist here.
 */
export const MERCURE_FORMAT: WireFormat = {
  message: (message) => {
    let text = events.get(message);
    if (text === undefined) {
      const update = updateOf(message);
      text = update === undefined ? "" : updateEvent(update);
      events.set(message, text);
    }
    return text;
  },
  gap: (gaps) => `event: gap\ndata: ${JSON.stringify({ type: "gap", gaps })}\n\n`,
  moved: () => "",
  event: () => "",
  opening: () => ":\n\n",
  heartbeat: ":\n\n",
  authExpired: "",
};
