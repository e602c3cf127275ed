import {
  clientOptions,
  messageItem,
  param,
  publish,
  span,
  statusRenderer,
  subscribe,
  timeOf,
} from "/demo/assets/common.js";

const NICK_KEY = "herald-chat:nick";
const room = param("room", "lobby");
const nick = param("nick", undefined) ?? savedNick();
const mailbox = `room:${room}`;
const list = document.getElementById("messages");
const people = document.getElementById("people");
const errorLine = document.getElementById("error");
const showStatus = statusRenderer(document.getElementById("status"));
document.getElementById("room").textContent = room;
document.getElementById("nick").textContent = nick;
document.title = `${room} · Herald chat`;

/** A name this browser keeps across visits unless ?nick= picks another. */
function savedNick() {
  let saved = localStorage.getItem(NICK_KEY);
  if (!saved) {
    saved = `guest-${Math.random().toString(36).slice(2, 6)}`;
    localStorage.setItem(NICK_KEY, saved);
  }
  return saved;
}

/** Where the server has auth on, names that readers give themselves come back marked with this. */
const ANONYMOUS = "anonymous:";

function isMe(member) {
  return member.sub === nick || member.sub === ANONYMOUS + nick;
}

/** A token's info claim may carry a display name; otherwise the name the reader goes by. */
function displayName(member) {
  if (typeof member.info?.name === "string") return member.info.name;
  return member.sub.startsWith(ANONYMOUS) ? member.sub.slice(ANONYMOUS.length) : member.sub;
}

/** Who is here, as the subscription's presence events have built it: you first, then by arrival. */
function renderPeople(presence) {
  const members = [...(presence?.members ?? [])].sort(
    (a, b) => Number(isMe(b)) - Number(isMe(a)) || a.since.localeCompare(b.since),
  );
  document.getElementById("people-count").textContent = presence ? String(presence.count) : "";
  const listed = document.getElementById("members");
  const here = new Set(members.map((member) => member.sub));
  for (const item of [...listed.children]) if (!here.has(item.dataset.sub)) item.remove();
  // Only newcomers are added (and so animated); those already shown keep their place.
  const shown = new Set([...listed.children].map((item) => item.dataset.sub));
  for (const member of members) {
    if (shown.has(member.sub)) continue;
    const item = document.createElement("li");
    item.dataset.sub = member.sub;
    item.append(span("name", displayName(member)));
    if (member.sub.startsWith(ANONYMOUS)) item.title = "named itself; not signed in";
    if (isMe(member)) {
      item.append(span("you", "you"));
      listed.prepend(item);
    } else listed.append(item);
  }
}

// A room shows its retained history on every visit, so no cursor is saved. The nick is the reader:
// it makes this page present in the room and names it in everyone's list.
const subscription = subscribe(
  [mailbox],
  {
    onMessage(message) {
      list.append(messageItem(message, span("time", timeOf(message)), span("who", message.title ?? "someone")));
      list.lastElementChild.scrollIntoView({ block: "nearest" });
    },
    onGap() {
      list.append(messageItem({ id: "gap", body: "… older messages are no longer kept …" }));
    },
    onPresence() {
      renderPeople(subscription.present());
    },
    onStatus(status) {
      showStatus(status);
      // While reconnecting the list may be out of date; the snapshot on reconnecting replaces it.
      people.classList.toggle("is-stale", status.state !== "open");
    },
    onError(error) {
      errorLine.textContent = error.message;
    },
  },
  clientOptions({ cursorStore: null, reader: nick, presence: true }),
);

document.getElementById("send").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("text");
  const body = input.value.trim();
  if (body === "") return;
  input.value = "";
  try {
    // The key makes a retried send safe: the server stores it once.
    await publish(mailbox, { title: nick, body }, { idempotencyKey: crypto.randomUUID() });
    errorLine.textContent = "";
  } catch (error) {
    errorLine.textContent = `not sent: ${error.message}`;
    input.value = body;
  }
});
