// The local mailbox page: lists captured mail, newest first. Message fields are inserted as
// text only, never as HTML.
const list = document.getElementById("messages");
const empty = document.getElementById("empty");
const status = document.getElementById("status");

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

async function load() {
  status.textContent = "Loading…";
  try {
    const response = await fetch("/dev/mailbox/api/messages", { headers: { accept: "application/json" } });
    if (!response.ok) throw new Error(`the mailbox answered ${response.status}`);
    const { messages } = await response.json();
    list.replaceChildren(...messages.map((m) => {
      const item = el("li", undefined, "message");
      item.append(el("h2", m.subject));
      const meta = el("p", undefined, "meta");
      meta.append(el("span", `To: ${m.to}`), el("span", ` · From: ${m.from}`), el("span", ` · ${new Date(m.at).toLocaleString()}`));
      item.append(meta, el("pre", m.text, "body"));
      return item;
    }));
    empty.hidden = messages.length > 0;
    status.textContent = `${messages.length} message${messages.length === 1 ? "" : "s"}`;
  } catch (error) {
    status.textContent = `Could not load the mailbox: ${error.message}. Try Refresh.`;
  }
}

document.getElementById("refresh").addEventListener("click", load);
load();
