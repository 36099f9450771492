// The client portal: sign in, the forced change of a temporary password, forgot password,
// choosing a new password from the emailed link, and the client's own home page.

import { api } from "/js/api.js";
import { changeOwnPassword, forcedChangeForm, forgotPage, resetFromLink } from "/js/password.js";
import {
  h, replace, announce, busy, field, showError, clearErrors, usDate, page,
} from "/js/dom.js";

const nav = document.getElementById("nav");
/** Said once at the top of the home page (after a new password is saved). */
let notice = null;

async function start() {
  if (document.body.dataset.view === "reset") return resetFromLink({ forgotHref: "/portal/#/forgot", home: "/portal/" });
  if (location.hash === "#/forgot") return forgot();
  let me = null;
  try {
    me = await api("GET", "/api/auth/me");
  } catch {
    me = null;
  }
  if (me && me.user && me.user.kind === "client") return home(me);
  return signIn();
}

window.addEventListener("hashchange", () => { if (document.body.dataset.view !== "reset") start(); });
window.addEventListener("caseport:signed-out", () => signIn("Your session has ended. Sign in again."));

function signIn(notice) {
  nav.replaceChildren();
  const user = field("Email or username", { name: "username", autocomplete: "username", required: true });
  const pass = field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true },
    "A temporary password from your email works here too.");
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "card narrow", novalidate: true }, user.wrap, pass.wrap, button,
    h("p", {}, h("a", { href: "#/forgot" }, "Forgot your password?")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!user.input.value.trim()) return showError(form, { field: "username", message: "Enter your email address or username." });
    if (!pass.input.value) return showError(form, { field: "password", message: "Enter your password." });
    try {
      const answer = await busy(button, () => api("POST", "/api/auth/login",
        { realm: "portal", username: user.input.value.trim(), password: pass.input.value }));
      if (answer.status === "password_change_required") return forcedChange(answer, pass.input.value);
      await start();
    } catch (error) {
      showError(form, error);
    }
  });
  page("Client portal sign-in",
    notice ? h("div", { class: "alert alert-ok", role: "status" }, notice) : null,
    h("p", {}, "Sign in to see the details your clinic has for you and to manage your password."), form);
}

function forcedChange(answer, temporary) {
  const form = forcedChangeForm(answer, temporary, {
    label: "Save my new password",
    done: async () => {
      notice = "Your new password is saved. Use it the next time you sign in.";
      announce(notice);
      await start();
    },
    expired: () => signIn("That step took too long. Sign in again with your temporary password."),
  });
  page("Choose your new password",
    h("p", {}, "You signed in with a temporary password. Choose a password of your own to continue; you will use it from now on."),
    form);
}

function forgot() {
  nav.replaceChildren();
  forgotPage({
    realm: "portal",
    label: "Email address",
    intro: "Enter the email address you use for the portal. We will email you a link to choose a new password.",
    missing: "Enter the email address of your account.",
  });
}

function home(me) {
  const p = me.profile || {};
  replace(nav, h("span", { class: "who" }, me.user.display_name),
    h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"));
  const row = (label, value) => [h("dt", {}, label), h("dd", {}, value || "—")];
  const said = notice ? h("div", { class: "alert alert-ok", role: "status" }, notice) : null;
  notice = null;
  page(`Welcome, ${me.user.display_name}`, said,
    h("section", { class: "card", "aria-labelledby": "mine-title" },
      h("h2", { id: "mine-title" }, "Your details"),
      h("dl", { class: "facts" },
        row("Name", [p.first_name, p.middle_name, p.last_name].filter(Boolean).join(" ")),
        row("Date of birth", usDate(p.dob)),
        row("Email", p.email),
        row("Phone", p.phone),
        row("Username", p.username)),
      h("p", { class: "hint" }, "If something here is wrong, tell your case manager.")),
    changeOwnPassword());
}


async function signOut() {
  try { await api("POST", "/api/auth/logout"); } catch { /* signed out either way */ }
  signIn("You are signed out.");
}

start();
