// The new-password fields, with a live hint of the rules as the person types; the page that
// chooses a new password from an emailed link (the portal's and the staff console's).

import { api } from "/js/api.js";
import { h, field, busy, clearErrors, showError, page, replace } from "/js/dom.js";

/**
 * The "Forgot your password?" page of a realm (`portal` or `staff`): an address, then the same
 * answer whether or not it has an account. `label`, `intro` and `missing` are its words;
 * `after` is said once a link is on its way.
 */
export function forgotPage({ realm, label, intro, missing, after = "" }) {
  const email = field(label, { name: "email", type: "email", autocomplete: "email", required: true });
  const button = h("button", { type: "submit" }, "Email me a link");
  const form = h("form", { class: "card narrow", novalidate: true }, email.wrap, button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!email.input.value.trim()) return showError(form, { field: "email", message: missing });
    try {
      const answer = await busy(button, () => api("POST", "/api/auth/forgot", { email: email.input.value.trim(), realm }));
      const done = h("div", { class: "alert alert-ok", role: "status", tabindex: "-1" }, answer.message,
        " Check your spam folder too. Your current password keeps working until you use the link.", after);
      form.replaceWith(done);
      done.focus();
    } catch (error) {
      showError(form, error);
    }
    return undefined;
  });
  page("Forgot your password?", h("p", {}, intro), form, h("p", {}, h("a", { href: "#" }, "Back to sign-in")));
}

/** How long typing pauses before the server is asked about the password. */
const CHECK_AFTER_MS = 250;

/**
 * The new-password fields with a live hint of the rules. Past the length, the server itself
 * says whether it would take the password (common, repeated, or the account's own words), so
 * the hint never shows all green for one it then refuses. `whose` names the account for that
 * check: `{ change_token }`, `{ reset_token }`, `{ own: true }` or `{ client_id }`. `names`
 * are the fields' labels and names, for forms that call them something else.
 */
export function passwordRules(minLength, temporary, whose = {}, names = {}) {
  const pass = field(names.label || "New password", { name: names.name || "new_password", type: "password", autocomplete: "new-password", required: true },
    `At least ${minLength} characters. A few unrelated words make a good one.`);
  const again = field(names.againLabel || "New password again", { name: names.againName || "new_password_again", type: "password", autocomplete: "new-password", required: true });
  const items = {
    length: h("li", {}, ""),
    guessable: h("li", {}, ""),
    match: h("li", {}, ""),
    temporary: temporary ? h("li", {}, "") : null,
  };
  const hint = h("ul", { class: "rules", "aria-live": "polite" }, Object.values(items));
  const canonical = (s) => s.replace(/[^0-9a-z]/gi, "").toUpperCase();
  const set = (li, ok, text) => { li.className = ok ? "ok" : "todo"; li.textContent = `${ok ? "✓" : "•"} ${text}`; };
  const notGuessable = "Not a common, repeated or personal password";
  let asked = 0;
  let timer = null;
  const ask = () => {
    const value = pass.input.value;
    const mine = ++asked;
    api("POST", "/api/auth/password-check", { new_password: value, ...whose })
      .then((answer) => {
        if (mine !== asked) return;
        set(items.guessable, answer.ok, answer.ok ? notGuessable : answer.message);
      })
      .catch(() => {
        if (mine === asked) set(items.guessable, false, `${notGuessable} (checked when you save)`);
      });
  };
  const update = () => {
    const n = [...pass.input.value].length;
    set(items.length, n >= minLength, n >= minLength
      ? `At least ${minLength} characters`
      : `At least ${minLength} characters (${n} so far)`);
    clearTimeout(timer);
    asked += 1;
    set(items.guessable, false, notGuessable);
    if (n >= minLength) timer = setTimeout(ask, CHECK_AFTER_MS);
    set(items.match, pass.input.value !== "" && pass.input.value === again.input.value, "Both entries match");
    if (items.temporary) {
      set(items.temporary, pass.input.value !== "" && canonical(pass.input.value) !== canonical(temporary),
        "Different from the temporary password");
    }
  };
  pass.input.addEventListener("input", update);
  again.input.addEventListener("input", () => {
    set(items.match, pass.input.value !== "" && pass.input.value === again.input.value, "Both entries match");
  });
  update();
  return { parts: [pass.wrap, again.wrap, hint], pass, again };
}

/**
 * A signed-in person (a client in the portal, a staff member in the console) changes their own
 * password: the current one, then the new one twice. Their other sessions end.
 */
export function changeOwnPassword() {
  const section = h("section", { class: "card", "aria-labelledby": "change-title" });
  const current = field("Current password", { name: "current_password", type: "password", autocomplete: "current-password", required: true });
  const build = (minLength) => {
    const rules = passwordRules(minLength, undefined, { own: true });
    const button = h("button", { type: "submit" }, "Change my password");
    const form = h("form", { novalidate: true }, current.wrap, ...rules.parts, button);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      if (!current.input.value) return showError(form, { field: "current_password", message: "Enter your current password." });
      if (rules.pass.input.value !== rules.again.input.value) {
        return showError(form, { field: "new_password_again", message: "The two entries are not the same." });
      }
      try {
        await busy(button, () => api("POST", "/api/auth/change-password",
          { current_password: current.input.value, new_password: rules.pass.input.value }));
      } catch (error) {
        if (error.code === "invalid_credentials") {
          // The server's words are about signing in; keep only its warning of a lock, if any.
          const warning = (error.message.match(/If the next password is wrong too.*$/) || [""])[0];
          return showError(form, { field: "current_password", message: `The current password is not right. ${warning}`.trim() });
        }
        return showError(form, error);
      }
      const done = h("div", { class: "alert alert-ok", role: "status", tabindex: "-1" },
        "Your new password is saved. Use it the next time you sign in; you were signed out everywhere else.");
      form.replaceWith(done);
      done.focus();
      return undefined;
    });
    replace(section, h("h2", { id: "change-title" }, "Change your password"), form);
  };
  replace(section, h("h2", { id: "change-title" }, "Change your password"), h("p", { class: "loading" }, "Loading…"));
  api("GET", "/api/auth/password-rules").then((r) => build(r.min_length)).catch(() => build(15));
  return section;
}

/**
 * A card with the new-password fields and its button (`whose`: see `passwordRules`).
 * `save(password)` sends it (throwing an ApiError on refusal); `done()` runs after it
 * succeeds. `onError(error, form)` may handle an error itself by answering true; other errors
 * show on the form, next to their field.
 */
export function newPasswordForm({ minLength, temporary, whose, label, save, done, onError }) {
  const rules = passwordRules(minLength, temporary, whose);
  const button = h("button", { type: "submit" }, label);
  const form = h("form", { class: "card narrow", novalidate: true }, ...rules.parts, button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (rules.pass.input.value !== rules.again.input.value) {
      showError(form, { field: "new_password_again", message: "The two entries are not the same." });
      return;
    }
    try {
      await busy(button, () => save(rules.pass.input.value));
    } catch (error) {
      if (!(onError && onError(error, form))) showError(form, error);
      return;
    }
    await done();
  });
  return form;
}

/**
 * The forced change after signing in with a temporary password (`answer` is the sign-in's
 * `password_change_required`): `done()` after it is saved, `expired()` when the step took too
 * long and the person must sign in again.
 */
export function forcedChangeForm(answer, temporary, { label, done, expired }) {
  return newPasswordForm({
    minLength: answer.min_length || 15,
    temporary,
    whose: { change_token: answer.change_token },
    label,
    save: (password) => api("POST", "/api/auth/change-password", { change_token: answer.change_token, new_password: password }),
    done,
    onError: (error) => {
      if (error.code !== "invalid_change_token") return false;
      expired();
      return true;
    },
  });
}

/**
 * The page an emailed reset link opens: the token from the address (then taken out of it, and
 * kept for this tab only, so that a reload still works), checked at once, then a new password,
 * and on success `home`. `forgotHref` asks for a new link.
 */
export async function resetFromLink({ forgotHref, home }) {
  const kept = `caseport-reset-token:${location.pathname}`;
  let token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (token) sessionStorage.setItem(kept, token);
  else token = sessionStorage.getItem(kept);
  // The token stays out of the address bar and the history.
  history.replaceState(null, "", location.pathname);
  const askAgain = h("p", {}, h("a", { href: forgotHref }, "Ask for a new link"));
  if (!token) {
    page("Choose a new password", h("div", { class: "alert alert-error", role: "alert" },
      "This link is incomplete. Open the link from your email again, or ask for a new one."), askAgain);
    return;
  }
  page("Choose a new password", h("p", { class: "loading" },
    h("span", { class: "spinner", "aria-hidden": "true" }), " Checking your link…"));
  let trouble = null;
  try {
    await api("POST", "/api/auth/reset-link", { token });
  } catch (error) {
    if (error.code === "invalid_reset_token") {
      sessionStorage.removeItem(kept);
      page("Choose a new password", h("div", { class: "alert alert-error", role: "alert" }, error.message), askAgain);
      return;
    }
    // The server checks the link again when the password is saved.
    trouble = h("div", { class: "alert alert-warn", role: "status" }, error.message);
  }
  let minLength = 15;
  try {
    minLength = (await api("GET", "/api/auth/password-rules")).min_length;
  } catch { /* the server checks the rules anyway */ }
  const form = newPasswordForm({
    minLength,
    whose: { reset_token: token },
    label: "Save my new password",
    save: (password) => api("POST", "/api/auth/reset", { token, new_password: password }),
    done: () => {
      sessionStorage.removeItem(kept);
      location.assign(home);
    },
    onError: (error, shown) => {
      if (error.code !== "invalid_reset_token") return false;
      sessionStorage.removeItem(kept);
      const note = h("div", { class: "alert alert-error", role: "alert", tabindex: "-1" }, error.message);
      shown.replaceWith(note, askAgain);
      note.focus();
      return true;
    },
  });
  page("Choose a new password", trouble, h("p", {}, "Choose the password you will sign in with from now on."), form);
}
