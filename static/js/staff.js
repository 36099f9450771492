// The staff console: sign-in, My Caseload, Client Information with Reset and Send New, and
// staff management for administrators. Views are chosen by the URL's hash.

import { api } from "/js/api.js";
import { changeOwnPassword, forcedChangeForm, forgotPage, passwordRules, resetFromLink } from "/js/password.js";
import {
  h, replace, announce, busy, field, showError, clearErrors, errorBox, usDate, when, newKey, page,
  minutesAndSeconds,
} from "/js/dom.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const dialog = document.getElementById("dialog");
let me = null;
/** The sort choices where the column headings are hidden (a phone): column and direction. */
const SORT_CHOICES = [
  ["name asc", "Name, A to Z"], ["name desc", "Name, Z to A"],
  ["dob asc", "DOB, earliest first"], ["dob desc", "DOB, latest first"],
  ["age asc", "Age, youngest first"], ["age desc", "Age, oldest first"],
  ["role asc", "Case Management Role, A to Z"], ["role desc", "Case Management Role, Z to A"],
  ["date_assigned asc", "Date Assigned, earliest first"], ["date_assigned desc", "Date Assigned, latest first"],
];
/** The caseload's search, sort, page and selected client; kept in the address (`listToUrl`). */
const list = { scope: "mine", q: "", sort: "name", dir: "asc", offset: 0, limit: 25, client: null, read: false, owner: null };
const SORTS = [
  ["name", "Name"], ["dob", "DOB"], ["age", "Age"],
  ["role", "Case Management Role"], ["date_assigned", "Date Assigned"],
];
let selected = null;
/** Said once at the top of the next page (after a new password is saved). */
let notice = null;
/** The shortest password the server takes (`GET /api/auth/password-rules`). */
let passwordMin = 15;
/**
 * A client edit whose save met an ended session: { owner, clientId, name, body }. It waits for
 * the same staff member to sign in again, who is then offered to save it (the version it was
 * made on still guards against overwriting someone else's change).
 */
let unsaved = null;

const PORTAL = {
  none: "No portal account yet",
  active: "Active",
  password_reset_required: "Password Reset Required",
  locked: "Locked after too many wrong passwords",
};
const MAIL = {
  sending: "Sending",
  accepted: "Accepted by the mail service (not yet confirmed delivered)",
  delivered: "Delivered",
  bounced: "Bounced — the email did not arrive",
  failed: "Not sent",
};
const DELIVERY = { email: "emailed", display: "shown once on screen", admin_set: "set by an administrator" };

async function start() {
  if (document.body.dataset.view === "reset") return resetFromLink({ forgotHref: "/staff/#/forgot", home: "/staff/" });
  try {
    me = (await api("GET", "/api/auth/me")).user;
  } catch {
    me = null;
  }
  if (!me || me.kind !== "staff") {
    me = null;
    if (location.hash === "#/forgot") return forgot();
    signIn();
    return;
  }
  // Another person signing in on this page starts from their own defaults.
  if (list.owner !== me.id) {
    list.read = false;
    list.owner = me.id;
    selected = null;
  }
  if (me.role === "admin") {
    try {
      passwordMin = (await api("GET", "/api/auth/password-rules")).min_length;
    } catch { /* the server checks the length anyway */ }
  }
  renderNav();
  route();
}

window.addEventListener("hashchange", () => {
  if (me) return route();
  if (document.body.dataset.view === "reset") return undefined;
  return location.hash === "#/forgot" ? forgot() : signIn();
});
window.addEventListener("caseport:signed-out", () => {
  if (!me) return;
  me = null;
  // After the failed call's own handler has run: it may have kept unsaved work.
  setTimeout(() => {
    signIn({ ended: true });
    announce(unsaved
      ? `Your session has ended. Sign in again to save your changes to ${unsaved.name}.`
      : "Your session has ended. Sign in again.");
  }, 0);
});

function route() {
  const match = location.hash.match(/^#\/client\/(\d+)$/);
  if (match) return clientInformation(Number(match[1]));
  if (location.hash === "#/staff" && me.role === "admin") return staffPage();
  if (location.hash === "#/password") return page("Your password", changeOwnPassword());
  listFromUrl();
  return caseload();
}

/**
 * Reads the caseload's state from an address such as
 * `#/caseload?scope=all&q=doe&sort=dob&dir=desc&offset=25&client=3`, so that a reload or a
 * link keeps the page, the sort and the selected client. An administrator's default is every
 * client: their own caseload is usually empty.
 */
function listFromUrl() {
  // A bare `#/caseload` (the menu, "Select Different Client") comes back to the list as it was.
  if (list.read && !location.hash.includes("?")) return;
  list.read = true;
  const p = new URLSearchParams(location.hash.split("?")[1] || "");
  const scope = p.get("scope");
  list.scope = scope === "all" || scope === "mine" ? scope : (me.role === "admin" ? "all" : "mine");
  if (list.scope === "all" && me.role !== "admin") list.scope = "mine";
  list.q = p.get("q") || "";
  list.sort = SORTS.some(([key]) => key === p.get("sort")) ? p.get("sort") : "name";
  list.dir = p.get("dir") === "desc" ? "desc" : "asc";
  list.offset = Math.max(0, Math.floor(Number(p.get("offset")) || 0));
  list.client = Number(p.get("client")) || null;
}

/** Writes the caseload's state into the address (replacing the entry: no new history step). */
function listToUrl() {
  const p = new URLSearchParams({ scope: list.scope });
  if (list.q) p.set("q", list.q);
  if (list.sort !== "name") p.set("sort", list.sort);
  if (list.dir !== "asc") p.set("dir", list.dir);
  if (list.offset) p.set("offset", String(list.offset));
  if (list.client) p.set("client", String(list.client));
  history.replaceState(null, "", `#/caseload?${p}`);
}

function renderNav() {
  replace(nav,
    h("a", { href: "#/caseload" }, me.role === "admin" ? "Clients" : "My Caseload"),
    me.role === "admin" ? h("a", { href: "#/staff" }, "Staff") : null,
    h("span", { class: "who" }, me.display_name),
    h("a", { href: "#/password" }, "Change password"),
    h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"));
}

async function signOut() {
  try { await api("POST", "/api/auth/logout"); } catch { /* signed out either way */ }
  me = null;
  replace(nav);
  history.replaceState(null, "", "/staff/");
  signIn();
  announce("You are signed out.");
}

// ---------------------------------------------------------------------------------------
// Sign-in and the forced change of a temporary password

function signIn({ ended = false } = {}) {
  const user = field("Email", { name: "username", type: "email", autocomplete: "username", required: true });
  const pass = field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "card narrow", novalidate: true }, user.wrap, pass.wrap, button,
    h("p", {}, h("a", { href: "#/forgot" }, "Forgot your password?")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!user.input.value.trim()) return showError(form, { field: "username", message: "Enter your email address." });
    if (!pass.input.value) return showError(form, { field: "password", message: "Enter your password." });
    try {
      const answer = await busy(button, () => api("POST", "/api/auth/login",
        { realm: "staff", username: user.input.value.trim(), password: pass.input.value }));
      if (answer.status === "password_change_required") {
        forcedChange(answer, pass.input.value);
      } else {
        await start();
      }
    } catch (error) {
      showError(form, error);
    }
  });
  nav.replaceChildren();
  const why = ended
    ? h("div", { class: "alert alert-warn", role: "status" },
      h("strong", {}, "You were signed out. "),
      "Your session ended (after a while without activity, or because you signed out in another tab). ",
      unsaved ? `Your changes to ${unsaved.name} are kept: sign in again to save them.` : "Sign in again to continue.")
    : null;
  page("Staff sign-in", why, h("p", {}, "Case managers and administrators sign in with their work email."), form);
}

function forgot() {
  nav.replaceChildren();
  forgotPage({
    realm: "staff",
    label: "Work email",
    intro: "Enter the work email you sign in with. We will email you a link to choose a new password.",
    missing: "Enter the work email you sign in with.",
    after: " No email? Ask an administrator to reset your password.",
  });
}

function forcedChange(answer, temporary) {
  const form = forcedChangeForm(answer, temporary, {
    label: "Save new password",
    done: async () => {
      notice = "Your new password is saved. Use it the next time you sign in.";
      announce(notice);
      await start();
    },
    expired: () => signIn(),
  });
  page("Choose a new password",
    h("p", {}, "You signed in with a temporary password. Choose your own to continue."), form);
}

// ---------------------------------------------------------------------------------------
// My Caseload

/** My Caseload (or All Clients). `focusSort` puts the focus back on that column's sort button. */
async function caseload({ focusSort } = {}) {
  listToUrl();
  const all = list.scope === "all";
  const params = new URLSearchParams({
    scope: list.scope, q: list.q, sort: list.sort, dir: list.dir,
    offset: String(list.offset), limit: String(list.limit),
  });
  const results = h("div", { class: "results" }, h("p", { class: "loading" }, h("span", { class: "spinner", "aria-hidden": "true" }), " Loading the caseload…"));
  const strip = h("section", { class: "strip", "aria-label": "Selected client" });
  const search = field("Search by name", { name: "q", type: "search", value: list.q, autocomplete: "off" });
  const searchForm = h("form", { class: "search", role: "search" }, search.wrap, h("button", { type: "submit" }, "Search"));
  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    list.q = search.input.value.trim();
    list.offset = 0;
    caseload();
  });
  const addButton = h("button", { type: "button", class: "secondary", "aria-expanded": "false", onclick: () => toggleAddClient(addButton) }, "Add Client");
  const scopeButton = me.role === "admin"
    ? h("button", {
      type: "button", class: "secondary",
      onclick: () => { list.scope = all ? "mine" : "all"; list.offset = 0; caseload(); },
    }, all ? "Show My Caseload" : "Show All Clients")
    : null;
  const addArea = h("div", { id: "add-client" });
  // With the rows shown as cards (a phone), the column headings are hidden: sort here.
  const sortSelect = h("select", { id: "sort-by", name: "sort_by" },
    SORT_CHOICES.map(([value, words]) => h("option", { value, selected: value === `${list.sort} ${list.dir}` }, words)));
  sortSelect.addEventListener("change", () => {
    [list.sort, list.dir] = sortSelect.value.split(" ");
    list.offset = 0;
    caseload();
  });
  const sortField = h("div", { class: "field sort-field" }, h("label", { for: "sort-by" }, "Sort by"), sortSelect);
  const said = notice ? h("div", { class: "alert alert-ok", role: "status" }, notice) : null;
  notice = null;
  page(all ? "All Clients" : "My Caseload",
    said,
    strip,
    h("p", { class: "hint" }, "Select the client from your caseload, then verify the client email address: correction might be needed."),
    h("div", { class: "toolbar" }, searchForm, sortField, h("div", { class: "actions" }, addButton, scopeButton)),
    addArea,
    results);
  renderStrip(strip);
  try {
    const data = await api("GET", `/api/caseload?${params}`);
    renderTable(results, data, all);
  } catch (error) {
    replace(results, errorBox(error));
  }
  if (focusSort) {
    const button = results.querySelector(`button.sort[data-sort="${focusSort}"]`);
    if (button) button.focus();
  }
  // After a reload, the client the address names is selected again.
  if (list.client && (!selected || selected.client.id !== list.client)) await select(list.client, { quiet: true });
}

function renderTable(results, data, all) {
  const header = h("tr", {}, SORTS.map(([key, label]) => {
    const active = list.sort === key;
    const sortLabel = active ? (list.dir === "asc" ? "ascending" : "descending") : "none";
    return h("th", { scope: "col", "aria-sort": sortLabel },
      h("button", {
        type: "button", class: "sort", "data-sort": key,
        onclick: () => {
          list.dir = active && list.dir === "asc" ? "desc" : "asc";
          list.sort = key;
          list.offset = 0;
          caseload({ focusSort: key });
          announce(`Sorted by ${label}, ${list.dir === "asc" ? "ascending" : "descending"}.`);
        },
      }, label, h("span", { "aria-hidden": "true" }, active ? (list.dir === "asc" ? " ▲" : " ▼") : "")));
  }), h("th", { scope: "col" }, "Actions"));
  const rows = data.rows.map((row) => h("tr", { class: selected && selected.client.id === row.client_id ? "selected" : null },
    h("td", { "data-label": "Name" }, h("button", {
      type: "button", class: "link name",
      "aria-pressed": selected && selected.client.id === row.client_id ? "true" : "false",
      onclick: () => select(row.client_id),
    }, row.name)),
    h("td", { "data-label": "DOB" }, usDate(row.dob)),
    h("td", { "data-label": "Age" }, String(row.age)),
    all ? managerCells(row.case_managers || []) : [
      h("td", { "data-label": "Role" }, row.role_label || ""),
      h("td", { "data-label": "Date Assigned" }, usDate(row.date_assigned))],
    h("td", { "data-label": "Actions" }, h("a", { href: `#/client/${row.client_id}`, "aria-label": `Client Information for ${row.name}` }, "Client Information"))));
  const first = data.total === 0 ? 0 : data.offset + 1;
  const last = data.offset + data.rows.length;
  const previous = h("button", {
    type: "button", class: "secondary", disabled: data.offset === 0,
    onclick: () => { list.offset = Math.max(0, list.offset - list.limit); caseload(); },
  }, "Previous");
  const next = h("button", {
    type: "button", class: "secondary", disabled: last >= data.total,
    onclick: () => { list.offset += list.limit; caseload(); },
  }, "Next");
  replace(results,
    data.rows.length === 0
      ? h("p", { class: "empty" }, list.q ? `No client matches “${list.q}”.` : "No clients are on this caseload yet.")
      : h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Caseload table" },
        h("table", { class: "caseload" }, h("caption", { class: "visually-hidden" }, all ? "All clients" : "My Caseload"),
          h("thead", {}, header), h("tbody", {}, rows))),
    h("div", { class: "pager" }, h("p", { class: "count" }, `Showing ${first} to ${last} of ${data.total} rows`), previous, next));
}

async function select(id, { quiet = false } = {}) {
  try {
    selected = await api("GET", `/api/clients/${id}`);
    list.client = id;
    listToUrl();
    const strip = main.querySelector(".strip");
    renderStrip(strip);
    for (const tr of main.querySelectorAll("tbody tr")) {
      const link = tr.querySelector("a");
      const mine = link && link.getAttribute("href") === `#/client/${id}`;
      tr.classList.toggle("selected", mine);
      const button = tr.querySelector("button.name");
      if (button) button.setAttribute("aria-pressed", mine ? "true" : "false");
    }
    if (quiet) return;
    announce(`Selected ${selected.client.last_name}, ${selected.client.first_name}.`);
    strip.focus();
  } catch (error) {
    if (list.client === id) {
      list.client = null;
      listToUrl();
    }
    main.prepend(errorBox(error));
  }
}

/** The selected-client strip: name, DOB, age, email, phone, and the email warning. */
function renderStrip(strip, onChange) {
  strip.setAttribute("tabindex", "-1");
  if (!selected) {
    replace(strip, h("p", { class: "muted" }, "Selected Client: none. Select a client by name."));
    return;
  }
  const c = selected.client;
  const check = selected.email_check;
  const warning = !check.ok
    ? h("div", { class: "alert alert-warn", role: "note" },
      h("strong", {}, "Check this email address. "), check.reason || "",
      check.suggestion
        ? h("p", { class: "suggest" }, h("button", {
          type: "button", class: "secondary",
          onclick: (event) => saveEmail(event.currentTarget, check.suggestion, strip, onChange),
        }, `Use ${check.suggestion}`))
        : null)
    : null;
  const emailForm = h("form", { class: "inline", hidden: true, novalidate: true });
  const email = field("Correct email", { name: "email", type: "email", value: c.email || "", autocomplete: "off" });
  const save = h("button", { type: "submit" }, "Save email");
  emailForm.append(email.wrap, save, h("button", { type: "button", class: "secondary", onclick: () => { emailForm.hidden = true; } }, "Cancel"));
  emailForm.addEventListener("submit", (event) => {
    event.preventDefault();
    saveEmail(save, email.input.value.trim(), strip, onChange, emailForm);
  });
  replace(strip,
    h("p", { class: "strip-name" }, h("span", { class: "label" }, "Selected Client: "), h("strong", {}, `${c.last_name}, ${c.first_name}`)),
    h("p", {}, h("span", { class: "label" }, "DOB: "), usDate(c.dob), " ", h("span", { class: "label" }, "Age: "), String(c.age)),
    h("p", {}, h("span", { class: "label" }, "Email: "), c.email || "none on file", " ",
      h("span", { class: "label" }, "Phone: "), c.phone || "none on file", " ",
      h("button", { type: "button", class: "link", onclick: () => { emailForm.hidden = false; email.input.focus(); } }, "Correct email")),
    warning,
    emailForm,
    location.hash.startsWith("#/client/") ? null : h("p", {}, h("a", { href: `#/client/${c.id}`, class: "button" }, "Client Information")));
}

async function saveEmail(button, address, strip, onChange, form) {
  if (form) clearErrors(form);
  try {
    const answer = await busy(button, () => api("PATCH", `/api/clients/${selected.client.id}`,
      { version: selected.client.version, email: address }));
    selected = { ...selected, client: answer.client, email_check: answer.email_check };
    renderStrip(strip, onChange);
    if (onChange) onChange();
    announce(`Email saved: ${answer.client.email || "none"}.`);
    strip.focus();
  } catch (error) {
    if (form) {
      form.hidden = false;
      showError(form, error);
    } else {
      strip.prepend(errorBox(error));
    }
  }
}

function toggleAddClient(button) {
  const area = document.getElementById("add-client");
  if (area.childElementCount) {
    area.replaceChildren();
    button.setAttribute("aria-expanded", "false");
    return;
  }
  button.setAttribute("aria-expanded", "true");
  const fields = [
    field("First Name", { name: "first_name", required: true, autocomplete: "off" }),
    field("Middle Name", { name: "middle_name", autocomplete: "off" }),
    field("Last Name", { name: "last_name", required: true, autocomplete: "off" }),
    field("Date of Birth", { name: "dob", type: "date", required: true }),
    field("Email", { name: "email", type: "email", autocomplete: "off" }),
    field("Phone", { name: "phone", type: "tel", autocomplete: "off" }),
  ];
  const save = h("button", { type: "submit" }, "Add Client");
  const form = h("form", { class: "card", novalidate: true, "aria-label": "Add Client" },
    h("h2", {}, "Add Client"), h("div", { class: "grid" }, fields.map((f) => f.wrap)), save,
    h("button", { type: "button", class: "secondary", onclick: () => toggleAddClient(button) }, "Cancel"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = {};
    for (const f of fields) if (f.input.value.trim() !== "" || f.input.required) body[f.input.name] = f.input.value.trim();
    const add = async () => {
      const answer = await busy(save, () => api("POST", "/api/clients", body));
      announce("The client was added to your caseload.");
      selected = await api("GET", `/api/clients/${answer.client.id}`);
      list.client = answer.client.id;
      caseload();
    };
    try {
      await add();
    } catch (error) {
      if (error.code !== "possible_duplicate") return showError(form, error);
      // The same person twice makes two records that drift apart: ask first.
      const again = await ask("This client may already be in Caseport", [error.message,
        "Search My Caseload (or Show All Clients) for the name first. Add a second record only for a different person."],
      "Add another client");
      save.focus();
      if (!again) return undefined;
      body.confirm_duplicate = true;
      try {
        await add();
      } catch (retry) {
        showError(form, retry);
      }
    }
    return undefined;
  });
  area.append(form);
  fields[0].input.focus();
}

/** Show All Clients' role and date cells: every case manager of the client, in words. */
function managerCells(managers) {
  if (!managers.length) {
    return [h("td", { "data-label": "Role" }, h("span", { class: "muted" }, "Not assigned to anyone")),
      h("td", { "data-label": "Date Assigned" }, "")];
  }
  return [
    h("td", { "data-label": "Role" }, h("ul", { class: "plain" },
      managers.map((m) => h("li", {}, `${m.display_name} (${m.role_label})`)))),
    h("td", { "data-label": "Date Assigned" }, h("ul", { class: "plain" },
      managers.map((m) => h("li", {}, usDate(m.date_assigned))))),
  ];
}

// ---------------------------------------------------------------------------------------
// Client Information

async function clientInformation(id) {
  const loading = h("p", { class: "loading" }, h("span", { class: "spinner", "aria-hidden": "true" }), " Loading…");
  page("Client Information", h("p", {}, h("a", { href: "#/caseload" }, "Select Different Client")), loading);
  let view;
  try {
    view = await api("GET", `/api/clients/${id}`);
  } catch (error) {
    replace(loading, errorBox(error));
    return;
  }
  selected = view;
  const strip = h("section", { class: "strip", "aria-label": "Selected client" });
  const details = h("section", { class: "card", "aria-labelledby": "details-title" });
  const portal = h("section", { class: "card", "aria-labelledby": "portal-title" });
  const history = h("section", { class: "card", "aria-labelledby": "history-title" });
  const team = h("section", { class: "card", "aria-labelledby": "team-title" });
  // The portal's actions come right after the client's name, as on the help page: Reset
  // and Send New is in view without scrolling past the details form.
  loading.replaceWith(strip, portal, details, team, history);
  const refresh = async () => {
    try {
      selected = await api("GET", `/api/clients/${id}`);
    } catch (error) {
      portal.prepend(errorBox(error));
      return;
    }
    renderStrip(strip, refresh);
    renderDetails(details, refresh);
    renderPortal(portal, refresh);
    renderTeam(team, refresh);
    renderHistory(history, id);
  };
  renderStrip(strip, refresh);
  renderDetails(details, refresh);
  renderPortal(portal, refresh);
  renderTeam(team, refresh);
  renderHistory(history, id);
}

/**
 * Who manages the client; administrators assign the client to a staff member (a new hire's
 * caseload is filled here) or take it off someone's caseload.
 */
function renderTeam(section, refresh) {
  const c = selected.client;
  const managers = selected.case_managers || [];
  const admin = me.role === "admin";
  const list = managers.length
    ? h("ul", { class: "plain team" }, managers.map((m) => {
      const remove = admin ? h("button", { type: "button", class: "link" }, "Remove") : null;
      if (remove) {
        remove.setAttribute("aria-label", `Remove ${c.last_name}, ${c.first_name} from ${m.display_name}'s caseload`);
        remove.addEventListener("click", async () => {
          const ok = await ask("Remove from caseload?", [
            `${m.display_name} will no longer see ${c.last_name}, ${c.first_name} in My Caseload or open their information.`,
          ], "Remove");
          if (!ok) return;
          try {
            await busy(remove, () => api("DELETE", `/api/clients/${c.id}/assignments/${m.staff_id}`));
            announce(`Removed from ${m.display_name}'s caseload.`);
            await refresh();
          } catch (error) {
            section.append(errorBox(error));
          }
        });
      }
      return h("li", {}, h("strong", {}, m.display_name), ` — ${m.role_label}, since ${usDate(m.date_assigned)} `, remove);
    }))
    : h("p", { class: "muted" }, "No one has this client on their caseload.");
  replace(section, h("h2", { id: "team-title" }, "Case managers"), list, admin ? assignForm(c, managers, refresh) : null);
}

function assignForm(c, managers, refresh) {
  const who = h("select", { id: "assign-staff", name: "staff_id" }, h("option", { value: "" }, "Loading staff…"));
  const role = h("select", { id: "assign-role", name: "role" },
    h("option", { value: "primary_case_manager" }, "Primary Case Manager"),
    h("option", { value: "support_primary_staff" }, "Support Primary Staff"));
  const save = h("button", { type: "submit", class: "secondary" }, "Assign");
  const form = h("form", { novalidate: true, "aria-label": "Assign to a staff member" },
    h("div", { class: "grid" },
      h("div", { class: "field" }, h("label", { for: "assign-staff" }, "Staff member"), who),
      h("div", { class: "field" }, h("label", { for: "assign-role" }, "Case Management Role"), role)),
    save);
  api("GET", "/api/staff").then((data) => {
    const active = data.staff.filter((s) => s.status === "active");
    replace(who, h("option", { value: "" }, "Choose a staff member"),
      active.map((s) => h("option", { value: String(s.id) },
        managers.some((m) => m.staff_id === s.id) ? `${s.display_name} (change role)` : s.display_name)));
  }).catch((error) => form.prepend(errorBox(error)));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!who.value) return showError(form, { field: "staff_id", message: "Choose the staff member to assign the client to." });
    try {
      await busy(save, () => api("POST", `/api/clients/${c.id}/assignments`, { staff_id: Number(who.value), role: role.value }));
      announce("Assigned.");
      await refresh();
    } catch (error) {
      showError(form, error);
    }
    return undefined;
  });
  return form;
}

function renderDetails(section, refresh) {
  const c = selected.client;
  const fields = [
    field("First Name", { name: "first_name", value: c.first_name, autocomplete: "off" }),
    field("Middle Name", { name: "middle_name", value: c.middle_name, autocomplete: "off" }),
    field("Last Name", { name: "last_name", value: c.last_name, autocomplete: "off" }),
    field("Date of Birth", { name: "dob", type: "date", value: c.dob }),
    field("Email", { name: "email", type: "email", value: c.email || "", autocomplete: "off" }),
    field("Phone", { name: "phone", type: "tel", value: c.phone || "", autocomplete: "off" }),
  ];
  const save = h("button", { type: "submit" }, "Save changes");
  const form = h("form", { novalidate: true }, h("div", { class: "grid" }, fields.map((f) => f.wrap)),
    h("p", {}, h("span", { class: "label" }, "Age: "), String(c.age)), save);
  // Work kept from a save that met an ended session, for this client and this staff member:
  // typed back in, on the version it was made on.
  const kept = unsaved && me && unsaved.owner === me.id && unsaved.clientId === c.id ? unsaved : null;
  let version = c.version;
  let keptNote = null;
  if (kept) {
    version = kept.body.version;
    for (const f of fields) if (f.input.name in kept.body) f.input.value = kept.body[f.input.name];
    const discard = h("button", { type: "button", class: "secondary" }, "Discard them");
    discard.addEventListener("click", () => {
      unsaved = null;
      renderDetails(section, refresh);
      announce("Your unsaved changes were discarded.");
    });
    const saveNow = h("button", { type: "button", class: "primary" }, "Save them now");
    saveNow.addEventListener("click", () => form.requestSubmit());
    keptNote = h("div", { class: "alert alert-warn", role: "status", id: "kept-changes" },
      h("p", {}, h("strong", {}, "These changes were not saved yet. "),
        "You were signed out before they were saved; they are filled in below. Check them, then save them or discard them."),
      h("p", { class: "dialog-actions" }, saveNow, discard));
  } else if (unsaved && me && unsaved.owner !== me.id) {
    unsaved = null;
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = { version };
    const before = { ...c, email: c.email || "", phone: c.phone || "" };
    for (const f of fields) if (f.input.value.trim() !== String(before[f.input.name] ?? "")) body[f.input.name] = f.input.value.trim();
    if (Object.keys(body).length === 1) {
      unsaved = null;
      announce("Nothing has changed.");
      return;
    }
    const owner = me && me.id;
    try {
      await busy(save, () => api("PATCH", `/api/clients/${c.id}`, body));
      unsaved = null;
      announce("Saved.");
      await refresh();
      section.querySelector("h2").focus();
    } catch (error) {
      if (error.code === "not_signed_in") {
        unsaved = { owner, clientId: c.id, name: `${c.last_name}, ${c.first_name}`, body };
        return;
      }
      showError(form, error);
      if (error.code === "version_conflict") {
        unsaved = null;
        form.prepend(h("button", { type: "button", class: "secondary", onclick: refresh }, "Reload the client"));
      }
    }
  });
  replace(section, h("h2", { id: "details-title", tabindex: "-1" }, "Client details"), keptNote, form);
}

function describeReset(last) {
  if (!last) return h("p", { class: "muted" }, "The portal password has not been reset in Caseport yet.");
  const status = last.mail_status;
  return h("div", { class: `last-reset status-${status || last.delivery}` },
    h("p", {}, h("span", { class: "label" }, "Last reset: "), `${when(last.at)} by ${last.by}, ${DELIVERY[last.delivery] || last.delivery}`,
      last.sent_to ? ` to ${last.sent_to}` : "", "."),
    status ? h("p", {}, h("span", { class: "label" }, "Email status: "), h("strong", {}, MAIL[status] || status)) : null,
    last.detail ? h("p", { class: "detail" }, last.detail) : null);
}

function renderPortal(section, refresh) {
  const p = selected.portal;
  const c = selected.client;
  const result = h("div", { class: "result", tabindex: "-1" });
  const mailReady = !selected.mail || selected.mail.configured;
  // Without an address there is nowhere to send it: the button says why it is off.
  const canSend = mailReady && Boolean(c.email);
  const resetButton = h("button", { type: "button", class: "primary", disabled: !canSend,
    "aria-describedby": mailReady ? (c.email ? null : "no-email") : "mail-off" }, "Reset and Send New");
  resetButton.addEventListener("click", () => resetAndSend(resetButton, result, refresh));
  const showButton = h("button", { type: "button", class: "secondary" }, "Show a temporary password once");
  showButton.addEventListener("click", () => showOnce(showButton, result, refresh));
  const refreshButton = h("button", { type: "button", class: "link" }, "Refresh status");
  refreshButton.addEventListener("click", () => busy(refreshButton, refresh));
  // The action first, as on the help page ("Password: Reset and Send New"); what is known of
  // the account follows.
  replace(section,
    h("h2", { id: "portal-title" }, "Client Portal"),
    h("p", { class: "password-row" }, h("span", { class: "label" }, "Password: "), resetButton, " ", refreshButton),
    mailReady && c.email
      ? h("p", { class: "hint" }, `The new temporary password goes to ${c.email}.`)
      : null,
    mailReady && !c.email
      ? h("p", { class: "alert alert-warn", id: "no-email" }, h("strong", {}, "No email on file. "),
        "Add the client's email under Client details to use Reset and Send New, or give a temporary password another way (Other ways).")
      : null,
    mailReady
      ? null
      : h("p", { class: "alert alert-warn", id: "mail-off" }, h("strong", {}, "Email is not set up. "),
        "This Caseport cannot send email, so Reset and Send New is off. Use “Show a temporary password once” under Other ways, ",
        "and ask your operator to set the mail_provider variable."),
    p.status === "locked"
      ? h("p", { class: "alert alert-warn" }, h("strong", {}, "Locked. "),
        "Reset and Send New unlocks the account: the client gets a new temporary password by email and chooses their own at the next sign-in.")
      : null,
    result,
    h("dl", { class: "facts" },
      h("dt", {}, "Status"), h("dd", {}, PORTAL[p.status] || p.status),
      p.username ? [h("dt", {}, "Username"), h("dd", {}, p.username)] : null,
      p.temp_expires_at ? [h("dt", {}, "Temporary password expires"), h("dd", {}, when(p.temp_expires_at))] : null,
      p.last_sign_in_at ? [h("dt", {}, "Last sign-in"), h("dd", {}, when(p.last_sign_in_at))] : null),
    describeReset(p.last_reset),
    h("details", { open: !canSend }, h("summary", {}, "Other ways"),
      h("p", {}, "Give the client a temporary password in person or by phone; no email is sent."), showButton,
      me.role === "admin" ? setPasswordForm(c.id, refresh, passwordMin) : null));
}

/**
 * How long a new confirmation keeps its Yes disabled: the second click of a double-click on
 * the button that opened it lands within this time, and must not answer it.
 */
const CONFIRM_ARMS_AFTER_MS = 700;

/**
 * A modal question; answers true when the person chose `yes`. Cancel comes first and has the
 * focus, so Enter or a stray click never says yes; Yes works only after a moment.
 */
function ask(title, paragraphs, yes) {
  return new Promise((resolve) => {
    const yesButton = h("button", { type: "button", class: "primary", disabled: true }, yes);
    const noButton = h("button", { type: "button", class: "secondary" }, "Cancel");
    const done = (answer) => {
      dialog.close();
      resolve(answer);
    };
    yesButton.addEventListener("click", () => done(true));
    noButton.addEventListener("click", () => done(false));
    dialog.onclose = () => resolve(false);
    replace(dialog, h("h2", { id: "dialog-title" }, title), paragraphs.map((t) => h("p", {}, t)),
      h("div", { class: "dialog-actions" }, noButton, yesButton));
    dialog.showModal();
    noButton.focus();
    setTimeout(() => { yesButton.disabled = false; }, CONFIRM_ARMS_AFTER_MS);
  });
}

async function resetAndSend(button, result, refresh) {
  const ok = await ask("Alert", [
    "You are about to reset the Client's password automatically, and email the new password to the Client.",
    "Would you like to proceed?",
  ], "Yes, reset and send");
  button.focus();
  if (!ok) return;
  const key = newKey();
  try {
    const answer = await busy(button, () => api("POST", `/api/clients/${selected.client.id}/portal-password/reset`,
      { delivery: "email", idempotency_key: key }));
    await refresh();
    const fresh = document.querySelector(".result");
    replace(fresh, h("div", { class: "alert alert-ok", role: "status" },
      h("strong", {}, "Sent. "),
      `A new temporary password was emailed to ${answer.sent_to}. It works until ${when(answer.expires_at)}. `,
      `The client signs in with the username ${answer.username} and must choose a new password.`));
    fresh.focus();
  } catch (error) {
    replace(result, errorBox(error));
    if (error.code === "recently_reset" && Number(error.retryAfter) > 0) waitBeforeResend(button, result, Number(error.retryAfter));
    result.focus();
  }
}

/**
 * After a password was just sent, Reset and Send New waits: the button stays off and a line
 * counts down to when another may be sent.
 */
function waitBeforeResend(button, result, seconds) {
  const until = Date.now() + seconds * 1000;
  const line = h("p", { class: "countdown", "aria-live": "off" });
  result.append(line);
  const tick = () => {
    const left = (until - Date.now()) / 1000;
    if (!line.isConnected) return;
    if (left <= 0) {
      button.disabled = false;
      line.textContent = "You can send another one now.";
      announce("Reset and Send New is available again.");
      return;
    }
    button.disabled = true;
    line.textContent = `You can send another one in ${minutesAndSeconds(left)}.`;
    setTimeout(tick, 1000);
  };
  tick();
}

/**
 * The dialog that shows a temporary password once: the username and password each on a line
 * of their own, never broken mid-word where there is room. Escape does not simply close it:
 * the password cannot be shown again, so it asks first. `closed()` runs once it is closed.
 */
function showOnceDialog({ title, lead, username, password, expiresAt, after, closed }) {
  const close = h("button", { type: "button", class: "primary" }, "I have passed it on");
  const keep = h("button", { type: "button", class: "secondary" }, "Keep it open");
  const leave = h("button", { type: "button", class: "danger" }, "Close without passing it on");
  const question = h("div", { class: "alert alert-warn", role: "alert", hidden: true },
    h("p", {}, h("strong", {}, "Close it? "), "This password is shown only once: once closed, it cannot be shown again, and a new one would have to be made."),
    h("div", { class: "dialog-actions" }, keep, leave));
  const askFirst = (event) => {
    event.preventDefault();
    question.hidden = false;
    keep.focus();
  };
  const onKey = (event) => { if (event.key === "Escape") askFirst(event); };
  close.addEventListener("click", () => dialog.close());
  leave.addEventListener("click", () => dialog.close());
  keep.addEventListener("click", () => { question.hidden = true; close.focus(); });
  dialog.addEventListener("keydown", onKey);
  dialog.oncancel = askFirst;
  dialog.onclose = () => {
    dialog.removeEventListener("keydown", onKey);
    dialog.oncancel = null;
    closed();
  };
  replace(dialog, h("h2", { id: "dialog-title" }, title), lead,
    h("dl", { class: "facts big" },
      h("dt", {}, "Username"), h("dd", { class: "secret", id: "shown-username" }, username),
      h("dt", {}, "Temporary password"), h("dd", { class: "secret", id: "shown-password" }, password),
      h("dt", {}, "Works until"), h("dd", {}, when(expiresAt))),
    h("p", {}, after), question,
    h("div", { class: "dialog-actions" }, close));
  dialog.showModal();
  close.focus();
}

async function showOnce(button, result, refresh) {
  const ok = await ask("Alert", [
    "You are about to reset the Client's password and show the new temporary password here, once. No email is sent: you pass it on to the account holder.",
    "Would you like to proceed?",
  ], "Yes, show it once");
  button.focus();
  if (!ok) return;
  try {
    const answer = await busy(button, () => api("POST", `/api/clients/${selected.client.id}/portal-password/reset`,
      { delivery: "display", idempotency_key: newKey() }));
    showOnceDialog({
      title: "Temporary log-in information",
      lead: [h("p", {}, "Pass this on to the account holder now: it is shown only once, and no email is sent.")],
      username: answer.username,
      password: answer.temporary_password,
      expiresAt: answer.expires_at,
      after: "The account holder must choose a new password after signing in with it.",
      closed: refresh,
    });
  } catch (error) {
    replace(result, errorBox(error));
    result.focus();
  }
}

function setPasswordForm(id, refresh, minLength) {
  const rules = passwordRules(minLength, undefined, { client_id: id },
    { label: "Password", name: "password", againLabel: "Password again", againName: "password_confirm" });
  const { pass, again } = rules;
  const required = h("input", { type: "checkbox", id: "reset-required", name: "reset_required", checked: true });
  const save = h("button", { type: "submit" }, "Set password");
  const form = h("form", { class: "set-password", novalidate: true, "aria-labelledby": "set-title" },
    h("h3", { id: "set-title" }, "Set the password (administrators)"),
    ...rules.parts,
    h("div", { class: "check" }, required, h("label", { for: "reset-required" }, "Password Reset Required")),
    save);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (pass.input.value !== again.input.value) {
      return showError(form, { field: "password_confirm", message: "The two passwords are not the same. Type the password again in both boxes." });
    }
    try {
      const answer = await busy(save, () => api("PUT", `/api/clients/${id}/portal-password`,
        { password: pass.input.value, password_confirm: again.input.value, reset_required: required.checked }));
      await refresh();
      const fresh = document.querySelector(".result");
      replace(fresh, h("div", { class: "alert alert-ok", role: "status" }, h("strong", {}, "Password set. "),
        `Username ${answer.username}. `,
        answer.reset_required ? "The client must choose a new password at the next sign-in." : "The client can sign in with it now."));
      fresh.focus();
    } catch (error) {
      showError(form, error);
    }
  });
  return form;
}

/** Each recorded action in a client's history, in words. */
const ACTIONS = {
  client_viewed: "Viewed", client_added: "Added to Caseport", client_created: "Added to Caseport",
  client_updated: "Corrected details",
  client_assigned: "Put on a caseload", client_unassigned: "Taken off a caseload",
  portal_password_reset_started: "Started Reset and Send New", portal_password_reset: "New temporary password sent",
  portal_password_reset_failed: "Reset and Send New failed", portal_password_shown: "Temporary password shown once",
  portal_password_set: "Password set by an administrator",
  mail_delivered: "Email delivered", mail_bounced: "Email bounced", mail_failed: "Email not delivered",
  email_change_notice_sent: "Previous address told of the email change",
  email_change_notice_failed: "Could not tell the previous address of the email change",
  password_reset_requested: "A reset link was asked for (Forgot password)",
  reset_link_sent: "Reset link emailed", reset_link_failed: "Reset link could not be emailed",
  password_reset_completed: "New password chosen with the reset link",
  password_changed: "Portal password changed", password_change_failed: "Wrong current password when changing it",
  sign_in: "Signed in to the portal", sign_in_change_required: "Signed in with a temporary password",
  sign_in_failed: "Wrong password at sign-in", sign_in_temporary_expired: "Tried an expired temporary password",
  sign_in_throttled: "Sign-in refused after too many attempts", sign_out: "Signed out of the portal",
};

const FIELDS = {
  first_name: "First name", middle_name: "Middle name", last_name: "Last name", dob: "Date of birth",
  email: "Email", phone: "Phone", username: "Portal username",
};

const ROLES = { primary_case_manager: "Primary Case Manager", support_primary_staff: "Support Primary Staff" };

/** Who did it, in words: a staff member's name, the client, or someone not signed in. */
function actorWords(actor) {
  if (/^client:\d+$/.test(actor)) return "the client";
  if (actor === "anonymous") return "someone on the portal's sign-in page";
  if (actor === "system") return "Caseport";
  return actor;
}

/** What an entry's detail says, in words (a change from the old value to the new one). */
function detailWords(e) {
  const d = e.detail || {};
  if (e.action === "client_updated") {
    const value = (v) => (v === null || v === undefined || v === "" ? "(none)" : String(v));
    return Object.entries(d).filter(([, c]) => c && typeof c === "object")
      .map(([k, c]) => `${FIELDS[k] || k}: ${value(c.old)} → ${value(c.new)}`).join("; ");
  }
  if (e.action === "client_assigned") return `${d.staff_name || "a staff member"} as ${ROLES[d.role] || d.role}`;
  if (e.action === "client_unassigned") return d.staff_name || "a staff member";
  return d.sent_to || d.to || d.reason || "";
}

async function renderHistory(section, id) {
  replace(section, h("h2", { id: "history-title" }, "History"), h("p", { class: "loading" }, "Loading…"));
  try {
    const data = await api("GET", `/api/clients/${id}/history`);
    const shown = data.entries.filter((e) => e.action !== "client_viewed").slice(0, 30);
    replace(section, h("h2", { id: "history-title" }, "History"),
      shown.length === 0 ? h("p", { class: "muted" }, "Nothing has happened yet.")
        : h("ol", { class: "history" }, shown.map((e) => {
          const detail = detailWords(e);
          return h("li", {},
            h("span", { class: "when" }, when(e.at)), " ", h("strong", {}, ACTIONS[e.action] || e.action.replaceAll("_", " ")),
            ` — ${actorWords(e.actor)}`, detail ? `: ${detail}` : "");
        })));
  } catch (error) {
    replace(section, h("h2", { id: "history-title" }, "History"), errorBox(error));
  }
}

// ---------------------------------------------------------------------------------------
// Staff (administrators)

/** A staff member's standing in words: disabled, locked, never signed in, or active. */
function standing(s) {
  const more = (text) => h("small", { class: "muted block" }, text);
  if (s.status === "disabled") return h("span", {}, "Disabled ", more("(cannot sign in)"));
  if (s.locked_until) {
    return h("span", {}, h("strong", { class: "warn" }, "Locked "), more(`(until ${when(s.locked_until)}, after too many wrong passwords)`));
  }
  if (!s.last_sign_in_at) return "Never signed in";
  return h("span", {}, "Active ", more(`(last signed in ${when(s.last_sign_in_at)})`));
}

/**
 * A new temporary password for a staff member (`answer` of adding them or resetting it):
 * emailed, so the page says to whom; or, when the email failed, shown once.
 */
async function handOver(answer, done) {
  if (answer.delivery === "email") {
    await staffPage();
    const note = h("div", { class: "alert alert-ok", role: "status", tabindex: "-1" }, h("strong", {}, `${done} `),
      `${answer.staff.display_name}'s temporary password was emailed to ${answer.sent_to}; it works until ${when(answer.expires_at)}. They choose their own at the next sign-in.`);
    document.querySelector("main h1").after(note);
    note.focus();
    return;
  }
  showOnceDialog({
    title: "Temporary password",
    lead: [h("p", { class: "alert alert-warn" }, `The email could not be sent: ${answer.mail_error}`),
      h("p", {}, `Give ${answer.staff.display_name} this temporary password instead; it is shown only once.`)],
    username: answer.staff.email,
    password: answer.temporary_password,
    expiresAt: answer.expires_at,
    after: "They choose their own password at the next sign-in.",
    closed: staffPage,
  });
}

/** What an administrator can do to another staff member: unlock, reset the password, disable or enable. */
function staffActions(s, listArea) {
  const act = (label, className, work) => {
    const button = h("button", { type: "button", class: className }, label);
    button.setAttribute("aria-label", `${label} ${s.display_name}`);
    button.addEventListener("click", async () => {
      try {
        await work(button);
      } catch (error) {
        listArea.prepend(errorBox(error));
      }
    });
    return button;
  };
  const buttons = [];
  if (s.status === "active" && s.locked_until) {
    buttons.push(act("Unlock", "primary", async (button) => {
      await busy(button, () => api("POST", `/api/staff/${s.id}/unlock`));
      announce(`${s.display_name} can sign in again.`);
      await staffPage();
    }));
  }
  if (s.status === "active") {
    buttons.push(act("Reset password", "secondary", async (button) => {
      const ok = await ask(`Reset ${s.display_name}'s password?`, [
        "Their current password stops working and they are signed out everywhere.",
        "A temporary password is emailed to them (if the email fails, it is shown here once), and they choose their own at the next sign-in.",
      ], "Reset password");
      if (!ok) return;
      await handOver(await busy(button, () => api("POST", `/api/staff/${s.id}/reset-password`)), "Password reset.");
    }));
  }
  const disabling = s.status === "active";
  buttons.push(act(disabling ? "Disable" : "Enable", disabling ? "secondary" : "primary", async (button) => {
    if (disabling) {
      const ok = await ask(`Disable ${s.display_name}?`, [
        "They are signed out at once and cannot sign in until an administrator enables them again.",
        "Their caseload stays as it is, for whoever takes it over.",
      ], "Disable");
      if (!ok) return;
    }
    await busy(button, () => api("PATCH", `/api/staff/${s.id}`, { status: disabling ? "disabled" : "active" }));
    announce(`${s.display_name} is ${disabling ? "disabled" : "enabled"}.`);
    await staffPage();
  }));
  return buttons;
}

async function staffPage() {
  const listArea = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  const fields = [
    field("Email", { name: "email", type: "email", autocomplete: "off" }),
    field("Name", { name: "display_name", autocomplete: "off" }),
  ];
  const role = h("select", { id: "new-role", name: "role" },
    h("option", { value: "case_manager" }, "Case manager"), h("option", { value: "admin" }, "Administrator"));
  const save = h("button", { type: "submit" }, "Add staff member");
  const form = h("form", { class: "card", novalidate: true, "aria-labelledby": "add-staff-title" },
    h("h2", { id: "add-staff-title" }, "Add a staff member"), h("div", { class: "grid" }, fields.map((f) => f.wrap),
      h("div", { class: "field" }, h("label", { for: "new-role" }, "Role"), role)), save);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      const answer = await busy(save, () => api("POST", "/api/staff",
        { email: fields[0].input.value.trim(), display_name: fields[1].input.value.trim(), role: role.value }));
      await handOver(answer, "Added.");
    } catch (error) {
      showError(form, error);
    }
  });
  page("Staff", listArea, form);
  try {
    const data = await api("GET", "/api/staff");
    const row = (s) => h("tr", {},
      h("td", { "data-label": "Name" }, s.display_name), h("td", { "data-label": "Email" }, s.email),
      h("td", { "data-label": "Role" }, s.role === "admin" ? "Administrator" : "Case manager"),
      h("td", { "data-label": "Status" }, standing(s)),
      h("td", { "data-label": "Actions" }, s.id === me.id ? h("span", { class: "muted" }, "You")
        : h("div", { class: "actions" }, staffActions(s, listArea))));
    replace(listArea, h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Staff" },
      h("table", { class: "staff-list" }, h("thead", {}, h("tr", {}, ["Name", "Email", "Role", "Status", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, data.staff.map(row)))));
  } catch (error) {
    replace(listArea, errorBox(error));
  }
}

start();
