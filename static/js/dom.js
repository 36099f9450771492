// Small DOM helpers. User data only ever becomes text (textContent), never HTML.

/** Creates an element: h("p", { class: "x", onclick: f }, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces everything inside `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Says `message` to screen readers (and shows it in the status line). */
export function announce(message) {
  const region = document.getElementById("status");
  if (region) {
    region.textContent = "";
    // A fresh text node is announced even when the words repeat.
    setTimeout(() => { region.textContent = message; }, 30);
  }
}

/**
 * Runs `work` with `button` showing a spinner and disabled, so a second click cannot start a
 * second call. Answers what `work` answers.
 */
export async function busy(button, work) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.replaceChildren(h("span", { class: "spinner", "aria-hidden": "true" }), ` ${label}`);
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = label;
  }
}

/**
 * An error box for an API error, focused so keyboard and screen-reader users meet it. An
 * expected answer (a wrong password, a pause, an edit conflict) says what happened in its own
 * words; only a failure (no connection, a 5xx) is introduced as one.
 */
export function errorBox(error) {
  const failure = error.status === 0 || error.status >= 500;
  const box = h("div", { class: "alert alert-error", role: "alert", tabindex: "-1" },
    failure ? h("strong", {}, "Something went wrong. ") : null, error.message);
  return box;
}

/** "1:05" for 65 seconds. */
export function minutesAndSeconds(total) {
  const s = Math.max(0, Math.ceil(total));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** A labelled input: answers { wrap, input }. */
export function field(label, attrs = {}, hint) {
  const id = attrs.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  const hintId = hint ? `${id}-hint` : undefined;
  const input = h("input", { ...attrs, id, "aria-describedby": hintId });
  const wrap = h("div", { class: "field" },
    h("label", { for: id }, label, attrs.required ? h("span", { class: "required" }, " (required)") : null),
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    input);
  return { wrap, input };
}

/** Shows a field's error next to it and marks it invalid. */
export function fieldError(input, message) {
  input.setAttribute("aria-invalid", "true");
  const id = `${input.id}-error`;
  let note = document.getElementById(id);
  if (!note) {
    note = h("p", { class: "field-error", id });
    input.insertAdjacentElement("afterend", note);
  }
  note.textContent = message;
  const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
  if (!described.includes(id)) input.setAttribute("aria-describedby", [...described, id].join(" "));
  input.focus();
}

/** Clears the errors shown by `fieldError` inside `form`. */
export function clearErrors(form) {
  for (const note of form.querySelectorAll(".field-error")) note.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  for (const box of form.querySelectorAll(".alert-error")) box.remove();
}

/**
 * Shows an API error on a form: every problem beside its field (the focus on the first), or
 * at the top when it names no field of this form.
 */
export function showError(form, error) {
  const problems = (error.fields && error.fields.length ? error.fields : [error])
    .map((p) => ({ input: p.field ? form.querySelector(`[name="${CSS.escape(p.field)}"]`) : null, message: p.message }))
    .filter((p) => p.input);
  if (problems.length) {
    for (const p of [...problems].reverse()) fieldError(p.input, p.message);
  } else {
    const box = errorBox(error);
    form.prepend(box);
    box.focus();
  }
}

/** MM/DD/YYYY from YYYY-MM-DD, as the help pages show dates. */
export function usDate(iso) {
  if (!iso) return "";
  const [y, m, d] = iso.slice(0, 10).split("-");
  return `${m}/${d}/${y}`;
}

/** An instant in the reader's own time zone, in words. */
export function when(instant) {
  if (!instant) return "";
  const d = new Date(instant);
  if (Number.isNaN(d.getTime())) return instant;
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** A fresh idempotency key for one click. */
export function newKey() {
  return crypto.randomUUID();
}

/** Puts a view in <main>: a heading that takes the focus, then the view's parts. */
export function page(title, ...parts) {
  document.title = `${title} — Caseport`;
  const heading = h("h1", { tabindex: "-1" }, title);
  replace(document.getElementById("main"), heading, ...parts);
  heading.focus();
}
