"""The runs dashboard's page: one self-contained HTML document (no build step, no CDN).

It routes on its own path: ``/dashboard`` shows the runs list (filters, live counts, workers),
``/dashboard/runs/<run_id>`` one run: its conversation assembled from the streamed chunks as
messages (and the raw chunks on demand), its timeline, Stop and Cancel. It polls
``api/summary``, ``api/runs`` and ``api/runs/<id>`` every two seconds and follows the run's
output through ``api/runs/<id>/stream`` (Server-Sent Events). The browser's own sign-in dialog
(HTTP basic auth) carries the operator credential to every request.
"""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>chatworker runs</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: .6em 1.2em; display: flex; gap: 1.5em;
  align-items: baseline; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
main { padding: 1em 1.2em; max-width: 80em; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35em .6em; border-bottom: 1px solid #e3e6eb; }
th { font-weight: 600; background: #eef0f4; }
tr.row { cursor: pointer; } tr.row:hover { background: #f0f5ff; }
.counts span { margin-right: 1.2em; } .counts b { font-size: 1.1em; }
.status { padding: .05em .5em; border-radius: 1em; background: #e3e6eb; font-size: .9em; }
.status.running, .status.waiting { background: #d7f0dd; } .status.suspended { background: #fdf0c8; }
.status.failed, .status.canceled { background: #f8d7da; } .status.completed { background: #dde6f8; }
.filters { margin: .8em 0; display: flex; gap: 1em; align-items: center; }
.grid { display: grid; grid-template-columns: 2fr 1fr; gap: 1.2em; }
.msg { background: #fff; border: 1px solid #e3e6eb; border-radius: .5em; padding: .5em .8em;
  margin: .5em 0; white-space: pre-wrap; }
.msg.user { background: #eef4ff; } .msg .role { font-size: .8em; color: #667; font-weight: 600; }
.part.reasoning { color: #667; font-style: italic; } .part.error { color: #b00020; }
.part.note { color: #8a5a00; font-size: .9em; } pre { white-space: pre-wrap; margin: 0; }
.part.tool { font-family: monospace; font-size: .9em; background: #f6f7f9; padding: .3em; }
#raw { background: #fff; border: 1px solid #e3e6eb; padding: .5em; max-height: 30em;
  overflow: auto; font-size: .85em; }
.timeline li { margin: .2em 0; } .timeline time { color: #667; font-size: .85em; }
button { padding: .3em .9em; } .muted { color: #667; } .error-box { color: #b00020; }
</style></head>
<body>
<header><a href="/dashboard" id="home">chatworker runs</a><span class="counts" id="counts"></span>
</header>
<main id="app"></main>
<script>
"use strict";
const base = location.pathname.replace(/\/runs\/[^/]+\/?$/, "").replace(/\/$/, "");
const api = base + "/api";
const app = document.getElementById("app");
const el = (tag, attrs = {}, ...kids) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const kid of kids) if (kid !== null && kid !== undefined)
    node.append(kid instanceof Node ? kid : String(kid));
  return node;
};
const ago = (ms) => {
  if (!ms) return "";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? s + "s" : s < 3600 ? Math.floor(s / 60) + "m" : Math.floor(s / 3600) + "h";
};
async function getJSON(url, options) {
  const r = await fetch(url, options);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.message || ("HTTP " + r.status));
  return body;
}
async function refreshCounts() {
  const s = await getJSON(api + "/summary");
  const c = s.counts, box = document.getElementById("counts");
  box.replaceChildren(...[["runs", c.total], ["owned", c.owned], ["suspended", c.suspended],
    ["starting", c.starting], ["workers", c.workers]].map(([k, v]) =>
      el("span", {"data-count": k}, el("b", {}, v), " " + k)));
  return s;
}

// ---- runs list -------------------------------------------------------------------------
const list = { offset: 0, history: [], status: "", task: "", next: null };
function listView() {
  const status = el("select", {id: "status", onchange: (e) => { list.status = e.target.value;
    list.offset = 0; list.history = []; loadList(); }}, el("option", {value: ""}, "any status"));
  const task = el("select", {id: "task", onchange: (e) => { list.task = e.target.value;
    list.offset = 0; list.history = []; loadList(); }}, el("option", {value: ""}, "any task"));
  const prev = el("button", {id: "prev", onclick: () => { list.offset = list.history.pop() || 0;
    loadList(); }}, "\u2190 newer");
  const next = el("button", {id: "next", onclick: () => { if (list.next === null) return;
    list.history.push(list.offset); list.offset = list.next; loadList(); }}, "older \u2192");
  app.replaceChildren(
    el("div", {class: "filters"}, status, task, prev, next, el("span", {id: "page-info",
      class: "muted"})),
    el("table", {id: "runs"}, el("thead", {}, el("tr", {}, ...["run", "task", "chat", "status",
      "turn", "age", "owner worker", "waiting since"].map((h) => el("th", {}, h)))),
      el("tbody")),
    el("h3", {}, "Workers"), el("div", {id: "workers"}));
  list.statusSelect = status; list.taskSelect = task;
}
function fillSelect(select, values, current) {
  if (select.options.length > 1) return;
  for (const v of values) select.append(el("option", {value: v}, v));
  select.value = current;
}
async function loadList() {
  const q = new URLSearchParams({offset: list.offset, limit: 50});
  if (list.status) q.set("status", list.status);
  if (list.task) q.set("task", list.task);
  const body = await getJSON(api + "/runs?" + q);
  list.next = body.nextOffset;
  const rows = body.runs.map((r) => el("tr", {class: "row", "data-run-id": r.runId,
    onclick: () => { location.href = base + "/runs/" + encodeURIComponent(r.runId); }},
    el("td", {}, el("a", {href: base + "/runs/" + encodeURIComponent(r.runId)}, r.runId)),
    el("td", {}, r.taskId), el("td", {}, r.chatId),
    el("td", {}, el("span", {class: "status " + r.status}, r.status + (r.isStreaming ?
      " \u00b7 streaming" : ""))),
    el("td", {}, r.turn), el("td", {}, ago(r.createdAt)), el("td", {}, r.owner || ""),
    el("td", {}, r.waitingSince ? ago(r.waitingSince) : "")));
  document.querySelector("#runs tbody").replaceChildren(...rows);
  document.getElementById("page-info").textContent = rows.length ? "" : "no runs here" +
    (body.nextOffset !== null ? " (searched " + body.scanned + " runs; older \u2192 goes on)" : "");
  document.getElementById("next").disabled = body.nextOffset === null;
  document.getElementById("prev").disabled = list.offset === 0;
}
function workersView(s) {
  const box = document.getElementById("workers");
  if (!box) return;
  box.replaceChildren(...(s.workers.length ? s.workers.map((w) => el("div", {class: "worker",
    "data-worker": w.id}, el("b", {}, w.id), " ", w.alive ? "alive" : "not beating",
    w.lastBeat ? " (beat " + ago(w.lastBeat * 1000) + " ago)" : "", ": ",
    ...(w.runs.length ? w.runs.flatMap((r) => [el("a", {href: base + "/runs/" +
      encodeURIComponent(r.runId)}, r.runId), " (" + r.status + ") "]) : ["no runs"])))
    : [el("span", {class: "muted"}, "no worker has beaten")]));
}
async function listTick() {
  try {
    const s = await refreshCounts();
    fillSelect(list.statusSelect, ["active", ...s.statuses], list.status);
    fillSelect(list.taskSelect, s.tasks, list.task);
    workersView(s);
    await loadList();
  } catch (e) { showError(e); }
}

// ---- one run ------------------------------------------------------------------------------
function assembler() {
  const state = { messages: [], current: null, raw: [] };
  const clone = (m) => JSON.parse(JSON.stringify(m));
  const cur = () => {
    if (!state.current) {
      state.current = {id: "a" + state.messages.length, role: "assistant", parts: []};
      state.messages.push(state.current);
    }
    return state.current;
  };
  const part = (type, id) => {
    const m = cur();
    let p = m.parts.find((x) => x.type === type && x.id === id && id !== undefined);
    if (!p) { p = {type, id, text: ""}; m.parts.push(p); }
    return p;
  };
  const tool = (c) => {
    const m = cur();
    let p = m.parts.find((x) => x.toolCallId === c.toolCallId);
    if (!p) { p = {type: "tool", toolCallId: c.toolCallId, toolName: c.toolName}; m.parts.push(p); }
    return p;
  };
  state.add = (c) => {
    switch (c.type) {
      case "__turn_start":
        state.current = null;
        if (Array.isArray(c.messages)) {
          if (c.history) state.messages = c.messages.map(clone);
          else for (const m of c.messages)
            if (!state.messages.some((x) => x.id && x.id === m.id)) state.messages.push(clone(m));
        }
        break;
      case "start": state.current = null; cur().id = c.messageId || cur().id; break;
      case "text-start": part("text", c.id); break;
      case "text-delta": part("text", c.id).text += c.delta || ""; break;
      case "reasoning-start": part("reasoning", c.id); break;
      case "reasoning-delta": part("reasoning", c.id).text += c.delta || ""; break;
      case "tool-input-start": tool(c); break;
      case "tool-input-available": tool(c).input = c.input; break;
      case "tool-output-available": tool(c).output = c.output; break;
      case "tool-output-error": tool(c).errorText = c.errorText; break;
      case "error": cur().parts.push({type: "error", text: c.errorText || "error"}); break;
      case "abort": cur().parts.push({type: "note", text: "aborted: " + (c.reason || "")}); break;
      case "__turn_complete": state.current = null; break;
      case "__run_end": state.current = null; break;
    }
  };
  return state;
}
function renderPart(p) {
  if (p.type === "text") return el("div", {class: "part text"}, p.text);
  if (p.type === "reasoning") return el("div", {class: "part reasoning"}, p.text);
  if (p.type === "error") return el("div", {class: "part error"}, p.text);
  if (p.type === "note") return el("div", {class: "part note"}, p.text);
  if (p.type === "tool" || p.type === "dynamic-tool" || (p.type || "").startsWith("tool-")) {
    const name = p.toolName || p.type.replace(/^tool-/, "");
    return el("div", {class: "part tool"}, "\u2692 " + name + "(" + JSON.stringify(p.input ?? {})
      + ")" + (p.output !== undefined ? " \u2192 " + JSON.stringify(p.output) : "")
      + (p.errorText ? " \u2192 error: " + p.errorText : ""));
  }
  if ((p.type || "").startsWith("data-")) return el("div", {class: "part note"},
    p.type + ": " + JSON.stringify(p.data));
  return null;
}
function runView(runId) {
  app.replaceChildren(
    el("p", {}, el("a", {href: base}, "\u2190 all runs")),
    el("h2", {}, "Run ", el("code", {}, runId), " ", el("span", {id: "run-status",
      class: "status"}, "\u2026")),
    el("p", {id: "run-facts", class: "muted"}),
    el("p", {}, el("button", {id: "stop", onclick: () => act(runId, "stop")}, "Stop turn"), " ",
      el("button", {id: "cancel", onclick: () => act(runId, "cancel")}, "Cancel run"), " ",
      el("button", {id: "show-raw", onclick: () => {
        const raw = document.getElementById("raw"); raw.hidden = !raw.hidden; }}, "Raw chunks"),
      " ", el("span", {id: "action-result", class: "muted"})),
    el("div", {class: "grid"},
      el("div", {}, el("h3", {}, "Conversation"), el("div", {id: "messages"}),
        el("pre", {id: "raw", hidden: ""})),
      el("div", {}, el("h3", {}, "Timeline"), el("ol", {id: "timeline", class: "timeline"}))));
}
async function act(runId, what) {
  const out = document.getElementById("action-result");
  try {
    const body = await getJSON(api + "/runs/" + encodeURIComponent(runId) + "/" + what,
      {method: "POST"});
    out.textContent = what === "stop" ? (body.stopped ? "stop requested" : "no turn to stop")
      : "cancel requested";
  } catch (e) { out.textContent = e.message; }
}
async function runTick(runId) {
  try {
    const d = await getJSON(api + "/runs/" + encodeURIComponent(runId));
    const r = d.run, badge = document.getElementById("run-status");
    badge.textContent = r.status + (r.isStreaming ? " \u00b7 streaming" : "");
    badge.className = "status " + r.status;
    badge.dataset.status = r.status;
    document.getElementById("run-facts").textContent = "task " + r.taskId + " \u00b7 chat " +
      r.chatId + " \u00b7 turn " + r.turn + " \u00b7 owner " + (r.owner || "none") +
      " \u00b7 recoveries " + r.recoveries + (r.reason ? " \u00b7 " + r.reason : "");
    document.getElementById("timeline").replaceChildren(...d.timeline.map((e) =>
      el("li", {"data-kind": e.kind}, el("time", {}, new Date(e.at).toLocaleTimeString()), " ",
        e.text)));
  } catch (e) { showError(e); }
}
function follow(runId) {
  const state = assembler();
  let pending = false;
  const draw = () => {
    pending = false;
    document.getElementById("messages").replaceChildren(...state.messages.map((m) =>
      el("div", {class: "msg " + m.role, "data-role": m.role}, el("div", {class: "role"}, m.role),
        ...(m.parts || []).map(renderPart))));
    document.getElementById("raw").textContent = state.raw.join("\n");
  };
  const source = new EventSource(api + "/runs/" + encodeURIComponent(runId) + "/stream");
  source.onmessage = (e) => {
    state.raw.push((e.lastEventId ? e.lastEventId + "  " : "") + e.data);
    if (state.raw.length > 5000) state.raw.shift();
    let chunk = null;
    try { chunk = JSON.parse(e.data); } catch { return; }
    state.add(chunk);
    if (chunk.type === "__run_end") { source.close(); runTick(runId); }
    if (!pending) { pending = true; requestAnimationFrame(draw); }
  };
}
function showError(e) {
  let box = document.getElementById("error");
  if (!box) { box = el("p", {id: "error", class: "error-box"}); app.prepend(box); }
  box.textContent = e.message;
}

const match = location.pathname.match(/\/runs\/([^/]+)\/?$/);
if (match) {
  const runId = decodeURIComponent(match[1]);
  runView(runId); follow(runId); runTick(runId); refreshCounts().catch(showError);
  setInterval(() => { runTick(runId); refreshCounts().catch(showError); }, 2000);
} else {
  listView(); listTick(); setInterval(listTick, 2000);
}
</script>
</body></html>
"""
