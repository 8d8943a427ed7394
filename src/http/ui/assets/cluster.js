// #/cluster: every member as the answering node probes it (/ui/api/cluster): role,
// term, commit and applied index, follower lag, storage per area, health and
// readiness. Polled every second; a member that stops answering reads "down" on the
// next poll.

import { api, badge, bytes, every, h, showError, table } from "./api.js";

const COLUMNS = [
  { title: "id" }, { title: "api" }, { title: "state" }, { title: "role" },
  { title: "health" }, { title: "ready" }, { title: "term", num: true },
  { title: "commit", num: true }, { title: "applied", num: true }, { title: "lag", num: true },
  { title: "db", num: true }, { title: "raft log", num: true }, { title: "snapshots", num: true },
  { title: "search index", num: true }, { title: "points", num: true },
];

/** Follower lag by member id, from the leader's /status. */
function lags(members) {
  const leader = members.find((m) => m.status?.role === "leader");
  return leader?.status?.replication || {};
}

function row(m, lag, leaderId) {
  const st = m.status || {};
  const raft = st.raft || {};
  const disk = st.disk || {};
  const role = m.health?.role || (m.up ? "?" : "–");
  const health = m.health?.status;
  const cell = (v, num) => h("td", { class: num ? "num" : null }, v ?? "–");
  return h("tr", { dataset: { member: m.id, up: m.up } },
    cell(m.id + (m.id === leaderId ? " ★" : "")),
    cell(h("code", {}, m.api)),
    h("td", {}, m.up ? badge("up") : badge("down"), m.error ? h("div", { class: "muted" }, m.error) : null),
    cell(m.voter ? role : `${role} (learner)`),
    h("td", {}, health ? badge(health) : "–"),
    h("td", {}, m.ready === null || m.ready === undefined ? "–" : badge(m.ready ? "ready" : "not ready", m.ready ? "ok" : "warn")),
    cell(raft.term, true), cell(raft.commitIndex, true), cell(raft.appliedIndex, true),
    cell(lag?.lag, true),
    cell(bytes(disk.db), true), cell(bytes(disk.raftLog), true), cell(bytes(disk.snapshots), true),
    cell(bytes(disk.searchIndex), true), cell(st.points?.stored, true));
}

export function mount(el, signal) {
  const summary = h("p", { class: "muted" }, "Loading…");
  const err = h("p", { class: "error" });
  const holder = h("div", { class: "card" });
  el.append(h("h1", {}, "Cluster"), summary, err, holder);
  every(1000, signal, async () => {
    const { body } = await api("/ui/api/cluster", { signal, timeoutMs: 3000 });
    const byId = lags(body.members);
    const up = body.members.filter((m) => m.up).length;
    summary.textContent = `${body.members.length} members, ${up} up; asked node ${body.node}; ` +
      (body.leader ? `leader: node ${body.leader}` : "no leader known");
    holder.replaceChildren(table(COLUMNS, body.members.map((m) => row(m, byId[m.id], body.leader))));
    showError(err, null);
  }, (e) => showError(err, e));
}
