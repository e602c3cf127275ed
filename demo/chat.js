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

const room = param("room", "lobby");
const nick = param("nick", `guest-${Math.random().toString(36).slice(2, 6)}`);
const mailbox = `room:${room}`;
const list = document.getElementById("messages");
const errorLine = document.getElementById("error");
document.getElementById("room").textContent = room;
document.getElementById("nick").textContent = nick;
document.title = `${room} · Herald chat`;

// A room shows its retained history on every visit, so no cursor is saved.
subscribe(
  [mailbox],
  {
    onMessage(message) {
      list.append(messageItem(message, span("time", timeOf(message)), span("who", message.title ?? "someone")));
      list.lastElementChild.scrollIntoView({ block: "nearest" });
    },
    onGap() {
      list.append(messageItem({ id: "gap", body: "… older messages are no longer kept …" }));
    },
    onStatus: statusRenderer(document.getElementById("status")),
    onError(error) {
      errorLine.textContent = error.message;
    },
  },
  clientOptions({ cursorStore: null }),
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
