import { HeraldClientError, networkError, responseError } from "./errors.js";
import { mailboxQuery } from "./http.js";
import { isReaderEvent } from "./reader-state.js";
import { conflatedEvent, extrasQuery, frameCursor, type Transport } from "./transport.js";
import type { GapEvent, HeraldMessage } from "./types.js";
import { viewQuery } from "./view.js";

/** Longest event the parser buffers; a larger one means a broken stream. */
export const MAX_SSE_EVENT_CHARS = 4 * 1024 * 1024;

/**
 * Server-Sent Events read with fetch rather than EventSource: EventSource hides
 * heartbeat comments (so a buffering proxy looks like an idle mailbox), cannot
 * send an Authorization header, and reconnects on its own schedule without our
 * cursor, dedupe and backoff. The wire format is the same text/event-stream.
 */
export const sseTransport: Transport = (request, events) => {
  const controller = new AbortController();
  let done = false;
  const finish = (error?: HeraldClientError, fallback?: boolean) => {
    if (done) return;
    done = true;
    controller.abort();
    events.closed(error, fallback);
  };
  const url = `${request.baseUrl}/v1/events?${mailboxQuery(request.mailboxes, {
    cursor: request.cursor,
    ...extrasQuery(request.extras),
    ...viewQuery(request.view),
  })}`;
  const headers: Record<string, string> = { Accept: "text/event-stream" };
  if (request.token) headers.Authorization = `Bearer ${request.token}`;

  // Events by name; a name this client does not know (a newer server's) is skipped unparsed.
  const dispatch = (event: string, data: string) => {
    if (event === "message") events.message(JSON.parse(data) as HeraldMessage);
    else if (event === "gap") events.gap(JSON.parse(data) as GapEvent);
    else if (event === "cursor") {
      const cursor = frameCursor(JSON.parse(data));
      if (cursor !== undefined) events.cursor(cursor);
    } else if (event === "conflated") {
      const conflated = conflatedEvent(JSON.parse(data));
      if (conflated) events.conflated(conflated);
    } else if (event === "presence" || event === "read" || event === "unread") {
      const parsed: unknown = JSON.parse(data);
      if (isReaderEvent(parsed)) events.reader(parsed);
    }
  };

  void (async () => {
    let response: Response;
    try {
      response = await request.fetch(url, { headers, signal: controller.signal, cache: "no-store" });
    } catch (error) {
      finish(networkError(error));
      return;
    }
    if (!response.ok) {
      finish(await responseError(response));
      return;
    }
    if (!(response.headers.get("content-type") ?? "").startsWith("text/event-stream") || !response.body) {
      finish(new HeraldClientError(response.status, "not_event_stream", "The answer was not an event stream"), true);
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = "message";
    let data: string[] = [];
    try {
      for (;;) {
        const { done: ended, value } = await reader.read();
        if (ended || done) break;
        events.alive();
        buffer += value;
        if (buffer.length > MAX_SSE_EVENT_CHARS) throw new Error("an event exceeded the size limit");
        let newline = buffer.indexOf("\n");
        while (newline !== -1 && !done) {
          const line = buffer.slice(0, newline).replace(/\r$/, "");
          buffer = buffer.slice(newline + 1);
          if (line === "") {
            if (data.length > 0) dispatch(event, data.join("\n"));
            event = "message";
            data = [];
          } else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          else if (line.startsWith("event:")) event = line.slice(6).trim();
          newline = buffer.indexOf("\n");
        }
      }
      finish();
    } catch (error) {
      finish(done ? undefined : networkError(error));
    }
  })();

  return {
    close: () => {
      done = true;
      controller.abort();
    },
  };
};
