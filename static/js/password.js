// The new-password fields, with a live hint of the rules as the person types.

import { api } from "/js/api.js";
import { h, field, busy, clearErrors, showError } from "/js/dom.js";

/** The new-password fields with a live hint of the rules. */
export function passwordRules(minLength, temporary) {
  const pass = field("New password", { name: "new_password", type: "password", autocomplete: "new-password", required: true },
    `At least ${minLength} characters. A few unrelated words make a good one.`);
  const again = field("New password again", { name: "new_password_again", type: "password", autocomplete: "new-password", required: true });
  const items = {
    length: h("li", {}, ""),
    match: h("li", {}, ""),
    temporary: temporary ? h("li", {}, "") : null,
  };
  const hint = h("ul", { class: "rules", "aria-live": "polite" }, Object.values(items));
  const canonical = (s) => s.replace(/[^0-9a-z]/gi, "").toUpperCase();
  const update = () => {
    const n = [...pass.input.value].length;
    const set = (li, ok, text) => { li.className = ok ? "ok" : "todo"; li.textContent = `${ok ? "✓" : "•"} ${text}`; };
    set(items.length, n >= minLength, n >= minLength
      ? `At least ${minLength} characters`
      : `At least ${minLength} characters (${n} so far)`);
    set(items.match, pass.input.value !== "" && pass.input.value === again.input.value, "Both entries match");
    if (items.temporary) {
      set(items.temporary, pass.input.value !== "" && canonical(pass.input.value) !== canonical(temporary),
        "Different from the temporary password");
    }
  };
  pass.input.addEventListener("input", update);
  again.input.addEventListener("input", update);
  update();
  const ok = () => [...pass.input.value].length >= minLength && pass.input.value === again.input.value;
  return { parts: [pass.wrap, again.wrap, hint], pass, again, ok };
}


/**
 * A card with the new-password fields and its button. `save(password)` sends it (throwing an
 * ApiError on refusal); `done()` runs after it succeeds. `onError(error, form)` may handle an
 * error itself by answering true; other errors show on the form, next to their field.
 */
export function newPasswordForm({ minLength, temporary, label, save, done, onError }) {
  const rules = passwordRules(minLength, temporary);
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
