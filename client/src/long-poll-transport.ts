import { HeraldClientError, networkError, responseError } from "./errors.js";
import { mailboxQuery } from "./http.js";
import { LongPollExtras } from "./long-poll-extras.js";
import { conflatedEvent, type Transport } from "./transport.js";
import type { HeraldMessage } from "./types.js";
import { viewQuery } from "./view.js";

/** Messages one poll may return. */
export const LONG_POLL_LIMIT = 500;
/** Seconds: short enough to be an immediate answer, long enough to be a long-poll to the server. */
const FIRST_POLL_WAIT_WITH_READER = "0.01";
/** Beyond the server's hold, how long a poll may take before it is presumed lost. */
const LONG_POLL_GRACE_MS = 15_000;

interface ReadAnswer {
  messages: HeraldMessage[];
  cursor: string;
  gap: boolean;
  gaps?: { mailbox: string; reason: "epoch" | "expired" | "trimmed" }[];
  /** `mode=latest`: per mailbox, how many older messages of keys with a newer one the answer left out. */
  conflated?: unknown[];
}

/**
 * One GET a time that the server holds until something arrives; the next
 * starts from the answer's cursor. A `reader` goes with each poll, so the
 * poller counts as present; presence and unread are asked for after each
 * answer (see long-poll-extras.ts).
 */
export const longPollTransport: Transport = (request, events) => {
  let done = false;
  let controller: AbortController | undefined;
  const headers: Record<string, string> = {};
  if (request.token) headers.Authorization = `Bearer ${request.token}`;
  const extras = new LongPollExtras(request, events);

  void (async () => {
    let cursor = request.cursor;
    // The first poll answers at once, so a working path is reported open without waiting out a hold. With a
    // reader it holds for a moment instead: only a poll that waits makes its reader present, and the first
    // presence answer after it should already list this reader.
    let wait = request.extras.reader === undefined ? "0" : FIRST_POLL_WAIT_WITH_READER;
    while (!done) {
      controller = new AbortController();
      const timer = setTimeout(() => controller?.abort(), request.longPollWaitSeconds * 1000 + LONG_POLL_GRACE_MS);
      const query = mailboxQuery(request.mailboxes, {
        cursor,
        wait,
        limit: String(LONG_POLL_LIMIT),
        reader: request.extras.reader,
        ...viewQuery(request.view),
      });
      let answer: ReadAnswer;
      try {
        const response = await request.fetch(`${request.baseUrl}/v1/messages?${query}`, {
          headers,
          signal: controller.signal,
          cache: "no-store",
        });
        if (!response.ok) {
          const error = await responseError(response);
          if (!done) events.closed(error);
          return;
        }
        answer = (await response.json()) as ReadAnswer;
      } catch (error) {
        if (!done) events.closed(networkError(error));
        return;
      } finally {
        clearTimeout(timer);
      }
      if (done) return;
      events.alive();
      let reached = cursor;
      if (answer.gap && answer.gaps) {
        reached = answer.messages[0]?.cursor ?? answer.cursor;
        events.gap({ gaps: answer.gaps, cursor: reached });
      }
      for (const item of answer.conflated ?? []) {
        const conflated = conflatedEvent(item);
        if (conflated) events.conflated(conflated);
      }
      for (const message of answer.messages) {
        if (done) return;
        events.message(message);
        reached = message.cursor;
      }
      // A filter left out the answer's last messages: its cursor is past them, and so is this subscription's.
      if (answer.cursor !== reached && !done) events.cursor(answer.cursor);
      if (extras.wanted) {
        controller = new AbortController();
        const refreshTimer = setTimeout(() => controller?.abort(), LONG_POLL_GRACE_MS);
        try {
          await extras.refresh(controller.signal, () => done);
        } catch (error) {
          if (!done) events.closed(error instanceof HeraldClientError ? error : networkError(error));
          return;
        } finally {
          clearTimeout(refreshTimer);
        }
      }
      cursor = answer.cursor;
      wait = String(request.longPollWaitSeconds);
    }
  })();

  return {
    close: () => {
      done = true;
      controller?.abort();
    },
  };
};
