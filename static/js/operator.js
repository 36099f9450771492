// The operator's page: the clinics on this deployment (create, change, suspend, export, delete)
// and the billable calls of each. Operators are the administrators of the operators' clinic, on
// its own host name; they sign in, change their passwords and add one another like any staff
// (the Staff page of the console on this host name lists the operators).

import { api } from "/js/api.js";
import { announce, busy, clearErrors, field, h, page, replace, showError, usDate, when } from "/js/dom.js";
import { forcedChangeForm } from "/js/password.js";

const nav = document.getElementById("nav");
const dialog = document.getElementById("dialog");

const METERS = {
  sign_in: "Sign-ins",
  client_view: "Client Information opened",
  client_change: "Clients added or corrected",
  password_reset: "Portal passwords reset",
};

window.addEventListener("caseport:signed-out", () => signIn(true));

/** A clinic's name; the first clinic of an installation may have none of its own yet. */
function clinicName(name, id) {
  return name || `Clinic ${id} (named by the clinic_name setting)`;
}
window.addEventListener("hashchange", () => route());

async function start() {
  try {
    await api("GET", "/api/auth/me");
  } catch (error) {
    if (error.status === 401) return signIn();
    return page("Operator", h("div", { class: "alert alert-error", role: "alert" }, error.message));
  }
  try {
    await api("GET", "/api/operator/clinics");
  } catch (error) {
    if (error.status !== 404) {
      return page("Operator", h("div", { class: "alert alert-error", role: "alert" }, error.message));
    }
    nav.replaceChildren(signOutButton());
    return page("This is not the operator's address",
      h("p", {}, "You are signed in as a clinic's staff member. The operator's page is on the operators' own host name ",
        "(for the demo, ", h("a", { href: `http://operator.localhost:${location.port || 80}/operator/` }, "operator.localhost"), "), ",
        "and only its administrators may use it."),
      h("p", {}, h("a", { href: "/staff/" }, "Go to the staff console")));
  }
  nav.replaceChildren(
    h("a", { href: "#/clinics" }, "Clinics"), " ",
    h("a", { href: "#/usage" }, "Usage"), " ",
    h("a", { href: "/staff/#/staff" }, "Operators"), " ",
    signOutButton());
  route();
}

function signOutButton() {
  return h("button", {
    type: "button", class: "link",
    onclick: async () => {
      await api("POST", "/api/auth/logout").catch(() => {});
      signIn();
    },
  }, "Sign out");
}

function route() {
  if (!nav.childElementCount) return;
  if (location.hash.startsWith("#/usage")) usage();
  else clinics();
}

function signIn(ended = false) {
  nav.replaceChildren();
  const user = field("Email", { name: "username", type: "email", autocomplete: "username", required: true });
  const pass = field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "card narrow", novalidate: true }, user.wrap, pass.wrap, button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!user.input.value.trim()) return showError(form, { field: "username", message: "Enter your email address." });
    if (!pass.input.value) return showError(form, { field: "password", message: "Enter your password." });
    try {
      const answer = await busy(button, () => api("POST", "/api/auth/login",
        { realm: "staff", username: user.input.value.trim(), password: pass.input.value }));
      if (answer.status === "password_change_required") return forcedChange(answer, pass.input.value);
      await start();
    } catch (error) {
      showError(form, error);
    }
  });
  page("Operator sign-in",
    ended ? h("div", { class: "alert alert-warn", role: "status" }, "Your session ended. Sign in again to continue.") : null,
    h("p", {}, "The deployment's operators sign in here to look after its clinics."), form);
}

function forcedChange(answer, temporary) {
  const form = forcedChangeForm(answer, temporary, {
    label: "Save new password",
    done: async () => {
      announce("Your new password is saved.");
      await start();
    },
    expired: () => signIn(),
  });
  page("Choose a new password", h("p", {}, "You signed in with a temporary password. Choose your own to continue."), form);
}

/** Asks a yes-or-no question in the page's dialog; answers true for yes. */
function ask(title, text, yes) {
  return new Promise((resolve) => {
    const yesButton = h("button", { type: "button", class: "danger", onclick: () => { dialog.onclose = null; dialog.close(); resolve(true); } }, yes);
    const no = h("button", { type: "button", class: "secondary", onclick: () => dialog.close() }, "Cancel");
    dialog.onclose = () => resolve(false);
    replace(dialog, h("h2", { id: "dialog-title" }, title), h("p", {}, text), h("p", { class: "dialog-actions" }, yesButton, no));
    dialog.showModal();
    no.focus();
  });
}

/** The host names typed in one field, separated by commas or spaces. */
function hostsOf(text) {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

/** The fields a clinic sets for itself, filled from `clinic` when changing one. */
function clinicFields(clinic = {}) {
  return {
    name: field("Clinic name", { name: "name", required: true, value: clinic.name || "", autocomplete: "off" }),
    hosts: field("Host names", { name: "hosts", required: true, value: (clinic.hosts || []).join(", "), autocomplete: "off" },
      "The addresses its staff and clients open, such as portal.sunrise.example, separated by commas."),
    mail_from: field("Sender", { name: "mail_from", value: clinic.mail_from || "", autocomplete: "off" },
      "As the mail provider verified it: \"Sunrise Clinic <portal@sunrise.example>\". Empty: the deployment's."),
    portal_url: field("Portal address", { name: "portal_url", value: clinic.portal_url || "", autocomplete: "off" },
      "Where its clients sign in, linked from its emails: https://portal.sunrise.example. Empty: the deployment's."),
    time_zone: field("Time zone", { name: "time_zone", value: clinic.time_zone || "", autocomplete: "off" },
      "For ages and dates: America/Chicago. Empty: the deployment's."),
    password_min_length: number("Shortest password", "password_min_length", clinic, "Characters, 8 to 64."),
    temp_password_ttl_hours: number("Temporary passwords work for", "temp_password_ttl_hours", clinic, "Hours, 1 to 720."),
    session_idle_minutes: number("Sign out after inactivity", "session_idle_minutes", clinic, "Minutes, 1 to 1440."),
    session_absolute_hours: number("Sign out in any case after", "session_absolute_hours", clinic, "Hours, 1 to 720."),
  };
}

/** A whole-number setting; empty keeps the deployment's. */
function number(label, name, clinic, hint) {
  const value = clinic[name] === null || clinic[name] === undefined ? "" : String(clinic[name]);
  return field(label, { name, type: "number", inputmode: "numeric", value, autocomplete: "off" }, `${hint} Empty: the deployment's.`);
}

const NUMBERS = ["password_min_length", "temp_password_ttl_hours", "session_idle_minutes", "session_absolute_hours"];

function values(fields) {
  return {
    name: fields.name.input.value.trim(),
    hosts: hostsOf(fields.hosts.input.value),
    mail_from: fields.mail_from.input.value.trim(),
    portal_url: fields.portal_url.input.value.trim(),
    time_zone: fields.time_zone.input.value.trim(),
    ...Object.fromEntries(NUMBERS.map((n) => {
      const typed = fields[n].input.value.trim();
      return [n, typed === "" ? null : Number(typed)];
    })),
  };
}

async function clinics(notice) {
  const holder = h("div", {}, h("p", { class: "loading" }, h("span", { class: "spinner", "aria-hidden": "true" }), " Loading the clinics…"));
  page("Clinics", notice, holder, newClinicForm());
  let list;
  try {
    list = (await api("GET", "/api/operator/clinics")).clinics;
  } catch (error) {
    return replace(holder, h("div", { class: "alert alert-error", role: "alert" }, error.message));
  }
  if (!list.length) return replace(holder, h("p", {}, "No clinic yet. Create the first one below."));
  const rows = list.map((c) => h("tr", {},
    h("th", { scope: "row" }, clinicName(c.name, c.id)),
    h("td", {}, c.hosts.join(", ")),
    h("td", {}, c.status === "active" ? "Active" : h("strong", { class: "warn" }, "Suspended")),
    h("td", {}, String(c.staff)),
    h("td", {}, String(c.clients)),
    h("td", {}, h("div", { class: "actions" },
      h("button", { type: "button", class: "secondary", onclick: () => editClinic(c) }, "Change"),
      c.status === "active"
        ? h("button", { type: "button", class: "secondary", onclick: () => setStatus(c, "suspended") }, "Suspend")
        : h("button", { type: "button", class: "secondary", onclick: () => setStatus(c, "active") }, "Resume"),
      h("a", { class: "button", href: `/api/operator/clinics/${c.id}/export`, download: "" }, "Export"),
      c.status === "suspended" ? h("button", { type: "button", class: "danger", onclick: () => deleteClinic(c) }, "Delete…") : null))));
  replace(holder, h("div", { class: "table-wrap" }, h("table", { class: "clinics" },
    h("caption", { class: "visually-hidden" }, "Clinics"),
    h("thead", {}, h("tr", {}, ["Clinic", "Host names", "Status", "Staff", "Clients", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows))),
  h("p", { class: "note" }, "A suspended clinic answers its staff and clients that it is suspended. Export a clinic before deleting it: deleting removes all of it for good."));
}

function newClinicForm() {
  const fields = clinicFields();
  const adminName = field("First administrator's name", { name: "admin_name", required: true, autocomplete: "off" });
  const adminEmail = field("First administrator's email", { name: "admin_email", type: "email", required: true, autocomplete: "off" });
  const button = h("button", { type: "submit" }, "Create clinic");
  const form = h("form", { class: "card", novalidate: true },
    h("h2", {}, "New clinic"),
    h("div", { class: "grid" }, fields.name.wrap, fields.hosts.wrap, adminName.wrap, adminEmail.wrap),
    h("details", {}, h("summary", {}, "Its own sender, portal address, time zone, password and session settings (optional)"),
      h("div", { class: "grid" }, fields.mail_from.wrap, fields.portal_url.wrap, fields.time_zone.wrap,
        NUMBERS.map((n) => fields[n].wrap))),
    button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = { ...values(fields), admin_name: adminName.input.value.trim(), admin_email: adminEmail.input.value.trim() };
    try {
      const created = await busy(button, () => api("POST", "/api/operator/clinics", body));
      const host = created.clinic.hosts[0];
      const ready = h("div", { class: "alert alert-ok", role: "status", tabindex: "-1" },
        h("p", {}, h("strong", {}, `${created.clinic.name} is ready.`), " Give its first administrator these, once — they are not shown again:"),
        h("ul", { class: "plain" },
          h("li", {}, "Sign in at: ", h("span", { class: "secret" }, `${location.protocol}//${host}${location.port ? `:${location.port}` : ""}/staff/`)),
          h("li", {}, "Username: ", h("span", { class: "secret" }, created.admin_username)),
          h("li", {}, "Temporary password: ", h("span", { class: "secret" }, created.temporary_password)),
          h("li", {}, `It works until ${when(created.expires_at)}; they choose their own password when they first sign in.`)));
      await clinics(ready);
      ready.focus();
      announce(`${created.clinic.name} is ready.`);
    } catch (error) {
      showError(form, error);
    }
  });
  return form;
}

function editClinic(clinic) {
  const fields = clinicFields(clinic);
  const button = h("button", { type: "submit" }, "Save changes");
  const cancel = h("button", { type: "button", class: "secondary", onclick: () => clinics() }, "Cancel");
  const form = h("form", { class: "card", novalidate: true },
    h("div", { class: "grid" }, Object.values(fields).map((f) => f.wrap)), button, cancel);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      const changed = await busy(button, () => api("PATCH", `/api/operator/clinics/${clinic.id}`, values(fields)));
      await clinics(h("div", { class: "alert alert-ok", role: "status" }, `${changed.clinic.name} is saved.`));
      announce(`${changed.clinic.name} is saved.`);
    } catch (error) {
      showError(form, error);
    }
  });
  page(`Change ${clinicName(clinic.name, clinic.id)}`, form);
}

async function setStatus(clinic, status) {
  if (status === "suspended" && !await ask(`Suspend ${clinic.name}?`,
    "Its staff and clients will be told the clinic is suspended, and nobody can sign in until you resume it. Nothing is deleted.",
    "Suspend")) return;
  try {
    await api("PATCH", `/api/operator/clinics/${clinic.id}`, { status });
    const said = status === "suspended" ? `${clinic.name} is suspended.` : `${clinic.name} is active again.`;
    await clinics(h("div", { class: "alert alert-ok", role: "status" }, said));
    announce(said);
  } catch (error) {
    await clinics(h("div", { class: "alert alert-error", role: "alert" }, error.message));
  }
}

function deleteClinic(clinic) {
  const confirm = field(`Type the clinic's name, ${clinic.name}, to delete it`, { name: "confirm", autocomplete: "off", required: true });
  const button = h("button", { type: "submit", class: "danger" }, "Delete for good");
  const cancel = h("button", { type: "button", class: "secondary", onclick: () => clinics() }, "Cancel");
  const form = h("form", { class: "card narrow", novalidate: true },
    h("p", {}, "This removes the clinic's staff, clients, caseloads, accounts, emails, usage and audit log, and signs everyone of it out. It cannot be undone. ",
      h("a", { href: `/api/operator/clinics/${clinic.id}/export`, download: "" }, "Export it first"), "."),
    confirm.wrap, button, cancel);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      await busy(button, () => api("DELETE", `/api/operator/clinics/${clinic.id}?confirm=${encodeURIComponent(confirm.input.value.trim())}`));
      await clinics(h("div", { class: "alert alert-ok", role: "status" }, `${clinic.name} is deleted.`));
      announce(`${clinic.name} is deleted.`);
    } catch (error) {
      showError(form, error);
    }
  });
  page(`Delete ${clinic.name}`, form);
}

async function usage() {
  const holder = h("div", {}, h("p", { class: "loading" }, h("span", { class: "spinner", "aria-hidden": "true" }), " Loading the usage…"));
  page("Usage", h("p", {}, "Billable calls per clinic and day (UTC): what each clinic's audit log shows was done. ",
    "Refused calls, failed sign-ins and repeats of the same click are not counted."),
  holder,
  h("p", {}, h("a", { class: "button", href: "/api/operator/usage?limit=1000", download: "caseport-usage.json" }, "Download usage as CloudEvents"),
    " ", h("span", { class: "note" }, "(the first 1,000 events; the API pages through the rest)")));
  let summary;
  try {
    summary = await api("GET", "/api/operator/usage/summary");
  } catch (error) {
    return replace(holder, h("div", { class: "alert alert-error", role: "alert" }, error.message));
  }
  if (!summary.days.length) return replace(holder, h("p", {}, `No billable calls since ${usDate(summary.since)}.`));
  replace(holder, h("div", { class: "table-wrap" }, h("table", { class: "usage" },
    h("caption", { class: "visually-hidden" }, "Billable calls per clinic and day"),
    h("thead", {}, h("tr", {}, ["Day", "Clinic", "Meter", "Calls"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, summary.days.map((d) => h("tr", {},
      h("td", {}, usDate(d.day)),
      h("td", {}, d.clinic_name === null ? `Clinic ${d.clinic_id} (deleted)` : clinicName(d.clinic_name, d.clinic_id)),
      h("td", {}, METERS[d.meter] || d.meter),
      h("td", {}, String(d.calls))))))));
}

start();
