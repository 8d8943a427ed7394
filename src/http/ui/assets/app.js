// The console's frame: hash routes to pages, the leader banner (every page shows when
// the node it talks to knows no leader), the token prompt and the tenant field.
// Each page module exports `mount(el, signal, params)`; `signal` aborts when the
// page is left, which ends its polls, watches and streams.

import { api, events, every, setTenant, setToken, tenant, token } from "./api.js";
import * as cluster from "./cluster.js";
import * as services from "./services.js";
import * as load from "./load.js";
import * as runs from "./runs.js";
import * as run from "./run.js";
import * as search from "./search.js";

const $ = (id) => document.getElementById(id);

/** `#/runs/ID?with=a,b` -> {name: "run", id: "ID", query: URLSearchParams}. */
function route() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, qs] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(qs || "");
  if (parts[0] === "runs" && parts[1]) return { name: "run", nav: "runs", id: parts[1], query };
  const pages = { cluster, services, load, runs, search };
  const name = pages[parts[0]] ? parts[0] : "cluster";
  return { name, nav: name, query };
}

const modules = { cluster, services, load, runs, run, search };
let current = null;

function render() {
  if (current) current.abort();
  current = new AbortController();
  const r = route();
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.route === r.nav);
  }
  const el = $("page");
  el.replaceChildren();
  el.dataset.page = r.name;
  modules[r.name].mount(el, current.signal, r);
}

/** The banner: no leader known, or this node not answering. */
async function watchLeader(signal) {
  const banner = $("leader-banner");
  await every(1000, signal, async () => {
    const { body } = await api("/health", { timeoutMs: 900 });
    $("node-info").textContent = `this node: ${body.role}`;
    if (body.leader) {
      banner.hidden = true;
    } else {
      banner.hidden = false;
      banner.textContent = "No leader: this node knows no leader, so writes fail until one is elected.";
    }
  }, () => {
    banner.hidden = false;
    banner.textContent = "This node does not answer.";
  });
}

function tokenForm() {
  const form = $("token-form");
  events.addEventListener("needtoken", (ev) => {
    $("token-message").textContent = ev.detail;
    if (form.hidden) {
      form.hidden = false;
      $("token-input").focus();
    }
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setToken($("token-input").value.trim());
    $("token-input").value = "";
    form.hidden = true;
    render();
  });
  $("token-clear").addEventListener("click", () => {
    setToken("");
    form.hidden = true;
    render();
  });
  $("token-open").addEventListener("click", () => {
    $("token-message").textContent = token() ? "A token is set for this tab." : "No token is set for this tab.";
    form.hidden = !form.hidden;
  });
}

function tenantField() {
  const input = $("tenant");
  input.value = tenant();
  input.addEventListener("change", () => {
    setTenant(input.value.trim());
    render();
  });
}

tokenForm();
tenantField();
window.addEventListener("hashchange", render);
watchLeader(new AbortController().signal);
render();
