// Centre fleet dashboard: summary -> centre -> PC drill-down, problems, search.
// DOM is built with textContent only (no innerHTML): report data is untrusted.
"use strict";

const REFRESH_MS = 15000;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function link(text, hash) { return el("a", { href: "#" + hash }, text); }

function age(ms) {
  if (!ms) return "";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}

async function api(path) {
  const response = await fetch("/api/" + path, { cache: "no-store" });
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

function table(headers, rows, id) {
  const body = el("tbody");
  for (const row of rows) body.append(row);
  const t = el("table", id ? { id } : {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))), body);
  return t;
}

async function showSummary(view) {
  const data = await api("summary");
  const rows = data.centres.map((c) => el("tr", { "data-centre": c.centre, class: c.problems || c.offline ? "error" : "" },
    el("td", {}, c.province), el("td", {}, link(c.centre, "centre=" + encodeURIComponent(c.centre))),
    el("td", {}, c.online), el("td", { class: c.offline ? "status-offline" : "" }, c.offline),
    el("td", {}, c.missing), el("td", {}, c.devices), el("td", { class: c.problems ? "state-error" : "" }, c.problems)));
  view.replaceChildren(el("h2", {}, "Centres"),
    table(["Province", "Centre", "PCs online", "offline", "missing", "Devices", "With problems"], rows, "centres"));
}

async function showCentre(view, centre) {
  const data = await api("agents?centre=" + encodeURIComponent(centre));
  const rows = data.agents.map((a) => el("tr", { "data-agent": a.agent_id },
    el("td", {}, link(a.agent_id, "agent=" + encodeURIComponent(a.agent_id))), el("td", {}, a.host),
    el("td", { class: "status-" + a.status }, a.status), el("td", {}, age(a.last_seen_ms) + " ago"),
    el("td", {}, a.version), el("td", {}, a.devices.length),
    el("td", {}, a.devices.filter((d) => d.problem_since_ms).length)));
  view.replaceChildren(el("h2", {}, "Centre " + centre),
    table(["PC", "Host", "Status", "Last seen", "Version", "Devices", "With problems"], rows, "agents"));
}

async function showAgent(view, agentId) {
  const data = await api("agents?agent=" + encodeURIComponent(agentId));
  const parts = [el("h2", {}, "PC " + agentId)];
  for (const a of data.agents) {
    parts.push(el("p", {}, "Centre ", link(a.centre, "centre=" + encodeURIComponent(a.centre)), " · host " + a.host +
      " · " + a.status + " · agent " + a.version));
    parts.push(table(["Device", "Kind", "State", "Since", "Last error", "Conditions", "Supplies"], a.devices.map((d) =>
      el("tr", { "data-device": d.device_id },
        el("td", {}, d.name || d.device_id), el("td", {}, d.kind), el("td", { class: "state-" + d.state }, d.state),
        el("td", {}, age(d.state_since_ms)), el("td", {}, d.last_error),
        el("td", {}, d.conditions.map((c) => c.code + " (" + c.severity + ")").join(", ")),
        el("td", {}, d.supplies.map((s) => s.name + " " + (s.level < 0 ? "?" : s.level + "%")).join(", ")))), "devices"));
  }
  view.replaceChildren(...parts);
}

async function showSearch(view, query) {
  const data = await api("search?q=" + encodeURIComponent(query));
  const rows = data.hits.map((h) => el("tr", {},
    el("td", {}, link(h.centre, "centre=" + encodeURIComponent(h.centre))),
    el("td", {}, link(h.agent_id, "agent=" + encodeURIComponent(h.agent_id))), el("td", {}, h.label)));
  view.replaceChildren(el("h2", {}, "Search: " + query), table(["Centre", "PC", "Match"], rows, "hits"));
}

async function showProblems() {
  const data = await api("problems");
  const body = document.querySelector("#problems tbody");
  body.replaceChildren(...data.problems.map((p) => el("tr", { class: p.severity, "data-centre": p.centre },
    el("td", {}, p.severity), el("td", {}, age(p.since_ms)),
    el("td", {}, link(p.centre, "centre=" + encodeURIComponent(p.centre))),
    el("td", {}, link(p.agent_id, "agent=" + encodeURIComponent(p.agent_id))),
    el("td", {}, p.kind ? p.kind + " " + p.device_id : ""), el("td", {}, p.code), el("td", {}, p.detail))));
}

async function render() {
  const view = document.getElementById("view");
  const params = new URLSearchParams(location.hash.slice(1));
  try {
    if (params.get("centre")) await showCentre(view, params.get("centre"));
    else if (params.get("agent")) await showAgent(view, params.get("agent"));
    else if (params.get("q")) await showSearch(view, params.get("q"));
    else await showSummary(view);
    await showProblems();
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.ready = "1";
  } catch (err) {
    document.getElementById("updated").textContent = "update failed: " + err.message;
  }
}

document.getElementById("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = document.getElementById("search").value.trim();
  if (q.length >= 2) location.hash = "q=" + encodeURIComponent(q);
});
window.addEventListener("hashchange", render);
setInterval(render, REFRESH_MS);
render();
