import { getPresence, getReadStates, type ReaderEndpoint } from "./reader-api.js";
import type { TransportEvents, TransportRequest } from "./transport.js";
import type { PresenceAnswer, PresenceMember } from "./types.js";

/**
 * Long-poll has no stream to carry presence and read state, so after each
 * poll answers it asks: GET /v1/read (unread counts and read moves, with
 * `unread`) and GET …/presence per mailbox (with `presence`), and reports
 * what changed since it last asked, as the stream events would have. They
 * arrive late by up to one poll's hold when the mailbox is quiet.
 */
export class LongPollExtras {
  readonly #request: TransportRequest;
  readonly #events: TransportEvents;
  readonly #endpoint: ReaderEndpoint;
  readonly #unread = new Map<string, number>();
  readonly #readCursors = new Map<string, string>();
  readonly #presence = new Map<string, PresenceAnswer>();

  constructor(request: TransportRequest, events: TransportEvents) {
    this.#request = request;
    this.#events = events;
    this.#endpoint = {
      baseUrl: request.baseUrl,
      token: () => request.token,
      reader: request.extras.reader,
      fetch: request.fetch,
    };
  }

  get wanted(): boolean {
    return Boolean(this.#request.extras.unread || this.#request.extras.presence);
  }

  /** Asks and reports; `isDone` is checked before reporting, since the poll may be closed meanwhile. */
  async refresh(signal: AbortSignal, isDone: () => boolean): Promise<void> {
    const { mailboxes, extras } = this.#request;
    const [states, answers] = await Promise.all([
      extras.unread ? getReadStates(this.#endpoint, mailboxes, signal) : [],
      extras.presence ? Promise.all(mailboxes.map((m) => getPresence(this.#endpoint, m, signal))) : [],
    ]);
    if (isDone()) return;
    for (const state of states) {
      const before = this.#readCursors.get(state.mailbox);
      this.#readCursors.set(state.mailbox, state.cursor);
      // A stream says nothing of the read position at open, so neither does the first ask.
      if (before !== undefined && before !== state.cursor) this.#events.reader({ type: "read", ...state });
      else if (this.#unread.get(state.mailbox) !== state.unread) {
        this.#events.reader({ type: "unread", mailbox: state.mailbox, unread: state.unread });
      }
      this.#unread.set(state.mailbox, state.unread);
    }
    for (const answer of answers) this.#reportPresence(answer);
  }

  #reportPresence(answer: PresenceAnswer): void {
    const before = this.#presence.get(answer.mailbox);
    this.#presence.set(answer.mailbox, answer);
    if (before?.members === undefined || answer.members === undefined) {
      if (before === undefined || before.count !== answer.count || before.members !== answer.members) {
        this.#events.reader({ type: "presence", ...answer });
      }
      return;
    }
    const now = new Map(answer.members.map((member) => [member.sub, member]));
    const was = new Map(before.members.map((member) => [member.sub, member]));
    let count = was.size;
    const report = (type: "join" | "leave", member: PresenceMember) =>
      this.#events.reader({ type, mailbox: answer.mailbox, sub: member.sub, info: member.info, count });
    for (const [sub, member] of was) {
      if (now.has(sub)) continue;
      count -= 1;
      report("leave", member);
    }
    for (const [sub, member] of now) {
      if (was.has(sub)) continue;
      count += 1;
      report("join", member);
    }
  }
}
