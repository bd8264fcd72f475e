// The Flotilla dashboard, served at /ui by every replica. Read-only; plain JavaScript.
//
// Data flow:
// - Objects: every kind in KINDS is listed through this replica's Kubernetes API (same
//   origin), then one merged watch, /ui/api/watch?nodes=<rv>&pods=<rv>&..., keeps the copies
//   current (one stream, because a browser gives an origin only six HTTP/1.1 connections).
//   When that stream fails, reports 410 Expired or ends, everything is listed again.
// - Cluster health: every POLL_MS the page asks /ui/api/cluster of its own replica and of
//   every API server the answers name (that endpoint allows any origin). The leader is the
//   replica that says it leads, in the highest term; lag per member is what the leader
//   reports, since only the leader tracks it.
// - The Kubernetes API allows no cross-origin reads, so objects come only from the page's
//   own replica: when that replica stops answering, or knows no leader while another
//   replica leads, for MOVE_AFTER polls in a row, the page moves to a replica that answers.
//
// Everything is drawn with textContent, never innerHTML: names and messages are user data.

"use strict";

/** How often the cluster view is polled; each answer must come within POLL_TIMEOUT_MS. */
const POLL_MS = 1500;
const POLL_TIMEOUT_MS = 1200;
/** Polls in a row this replica may fail before the page moves (about 6 s: several elections). */
const MOVE_AFTER = 4;
/** How long a list may take (the server gives up on a read after 5 s). */
const LIST_TIMEOUT_MS = 15000;
/** Back-off between failed attempts to list and watch. */
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 8000;
/** Newest events shown. */
const EVENTS_SHOWN = 30;
/** Changes arriving within this window are drawn together. */
const RENDER_DELAY_MS = 150;

const KINDS = [
  { name: "nodes", path: "/api/v1/nodes" },
  { name: "pods", path: "/api/v1/pods" },
  { name: "deployments", path: "/apis/apps/v1/deployments", kind: "Deployment" },
  { name: "statefulsets", path: "/apis/apps/v1/statefulsets", kind: "StatefulSet" },
  { name: "daemonsets", path: "/apis/apps/v1/daemonsets", kind: "DaemonSet" },
  { name: "jobs", path: "/apis/batch/v1/jobs", kind: "Job" },
  { name: "events", path: "/api/v1/events" },
];

/** Kind name -> Map(uid -> object): the page's copy of each kind. */
const objects = Object.fromEntries(KINDS.map((k) => [k.name, new Map()]));
/** API server URLs the last answers named (master leases: alive within their TTL). */
let apiUrls = [];
/** Polls in a row in which this replica failed us; see MOVE_AFTER. */
let originTroubles = 0;
let moving = false;
let renderTimer = null;

// ---- objects: list, then one merged watch -------------------------------------------------

async function followObjects() {
  let delay = RETRY_MIN_MS;
  for (;;) {
    try {
      const versions = await listAll();
      setText("#sync", "live");
      delay = RETRY_MIN_MS;
      await watchAll(versions);
      setText("#sync", "watch ended, listing again");
      await sleep(RETRY_MIN_MS);
    } catch (e) {
      setText("#sync", `retrying: ${e.message}`);
      if (!e.gone) {
        await sleep(delay);
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    }
  }
}

/** List every kind; the resourceVersion of each list, as the watch's query. */
async function listAll() {
  const lists = await Promise.all(KINDS.map((k) => getJSON(k.path, LIST_TIMEOUT_MS)));
  const versions = new URLSearchParams();
  KINDS.forEach((k, i) => {
    objects[k.name] = new Map((lists[i].items || []).map((o) => [keyOf(o), o]));
    versions.set(k.name, lists[i].metadata.resourceVersion);
  });
  scheduleRender();
  return versions;
}

/** Apply the merged watch's events until the stream ends (resolves) or fails (throws). */
async function watchAll(versions) {
  const resp = await fetch(`/ui/api/watch?${versions}`, { cache: "no-store" });
  if (!resp.ok) throw new Error(`watch: HTTP ${resp.status}`);
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffered += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) apply(JSON.parse(line));
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function apply(event) {
  const obj = event.object || {};
  if (event.type === "ERROR") {
    const e = new Error(`${event.resource}: ${obj.message || "watch failed"}`);
    e.gone = obj.code === 410;
    throw e;
  }
  const map = objects[event.resource];
  if (!map || event.type === "BOOKMARK") return;
  if (event.type === "DELETED") map.delete(keyOf(obj));
  else map.set(keyOf(obj), obj);
  scheduleRender();
}

function keyOf(o) {
  const m = o.metadata || {};
  return m.uid || `${m.namespace || ""}/${m.name}`;
}

// ---- cluster health: poll every replica ---------------------------------------------------

async function pollLoop() {
  for (;;) {
    const started = Date.now();
    try {
      await pollCluster();
    } catch (e) {
      console.error("cluster view", e);
    }
    await sleep(Math.max(0, POLL_MS - (Date.now() - started)));
  }
}

async function pollCluster() {
  const targets = [{ url: location.origin, path: "/ui/api/cluster" }];
  for (const url of apiUrls) {
    if (url !== location.origin) targets.push({ url, path: `${url}/ui/api/cluster` });
  }
  const answers = await Promise.all(
    targets.map(async (t) => {
      try {
        return { url: t.url, view: await getJSON(t.path, POLL_TIMEOUT_MS) };
      } catch (e) {
        return { url: t.url, error: e.message || String(e) };
      }
    }),
  );
  const named = [...new Set(answers.flatMap((a) => (a.view ? a.view.api_urls : [])))];
  if (named.length) apiUrls = named;
  const c = combine(answers);
  renderCluster(c);
  maybeMove(c);
}

/**
 * One picture from every replica's answer: `leader` is the answer of the replica that leads
 * in the highest term (null: none that answered leads), `byId` the first answer per member.
 */
function combine(answers) {
  const origin = answers[0];
  const views = answers.filter((a) => a.view);
  const byId = new Map();
  for (const a of views) if (!byId.has(a.view.replica.id)) byId.set(a.view.replica.id, a);
  const claimants = views.filter((a) => a.view.replica.leader);
  claimants.sort((a, b) => b.view.replica.term - a.view.replica.term);
  const leader = claimants[0] || null;
  const reference = leader || (origin.view ? origin : views[0]) || null;
  return {
    origin,
    views,
    byId,
    leader,
    members: reference ? reference.view.members : [],
    term: views.length ? Math.max(...views.map((a) => a.view.replica.term)) : null,
  };
}

function maybeMove(c) {
  const o = c.origin.view;
  const troubled = !o || (!o.leader && c.leader !== null);
  originTroubles = troubled ? originTroubles + 1 : 0;
  if (moving || originTroubles < MOVE_AFTER) return;
  const self = o ? o.replica.id : null;
  const to = c.views.find((a) => a.url !== location.origin && a.view.replica.id !== self && a.view.leader);
  if (!to) return;
  moving = true;
  const why = o ? "knows no leader" : "stopped answering";
  const notice = document.querySelector("#notice");
  notice.textContent = `This replica ${why}; moving to ${to.url}/ui`;
  notice.hidden = false;
  location.replace(`${to.url}/ui`);
}

function renderCluster(c) {
  const leaderId = c.leader ? c.leader.view.replica.id : null;
  const leaderMember = c.members.find((m) => m.id === leaderId);
  setText("#leader", leaderId ? memberName(leaderMember, leaderId) : "none");
  setText("#term", c.term === null ? "?" : String(c.term));
  const answering = c.members.filter((m) => c.byId.has(m.id)).length;
  setText("#answering", `${answering} of ${c.members.length}`);
  setText("#served-by", c.origin.view ? c.origin.view.replica.name : "(this replica does not answer)");
  setText("#updated", new Date().toLocaleTimeString());

  const health = document.querySelector("#health");
  if (!c.views.length) setHealth(health, "bad", "no replica answers");
  else if (!leaderId) setHealth(health, "bad", "no leader");
  else if (answering < c.members.length) setHealth(health, "degraded", `${c.members.length - answering} member(s) not answering`);
  else setHealth(health, "ok", "healthy");

  const lagOf = new Map((c.leader ? c.leader.view.members : []).map((m) => [m.id, m.lag]));
  const members = [...c.members].sort((x, y) => memberName(x, x.id).localeCompare(memberName(y, y.id)));
  const rows = members.map((m) => {
    const a = c.byId.get(m.id);
    const r = a ? a.view.replica : null;
    let role = "no answer";
    if (r) role = m.id === leaderId ? "leader" : r.leader ? "stale leader" : m.learner ? "learner" : "follower";
    const tone = { leader: "ok", follower: "muted", learner: "warn" }[role] || "bad";
    return el(
      "tr",
      { "data-id": m.id, "data-name": m.name, "data-role": role },
      el("td", { class: "name" }, memberName(m, m.id)),
      el("td", { class: "id" }, m.id),
      el("td", { class: "role" }, badge(role, tone, a ? "" : "no answer from this member's API")),
      el("td", { class: "num" }, r ? r.term : "—"),
      el("td", { class: "num" }, r ? r.raft_index : "—"),
      el("td", { class: "num" }, r ? r.applied_index : "—"),
      el("td", { class: "num lag" }, lagOf.get(m.id) ?? "—"),
      el("td", { class: "api", title: a ? a.url : "" }, a ? new URL(a.url).host : "—"),
    );
  });
  fillTable("#members", rows, "no member known");
}

function setHealth(node, tone, text) {
  node.className = `health ${tone}`;
  node.textContent = text;
}

function memberName(m, id) {
  return m && m.name ? m.name : `(unstarted ${id})`;
}

// ---- objects: drawing ---------------------------------------------------------------------

function scheduleRender() {
  if (renderTimer === null) {
    renderTimer = setTimeout(() => {
      renderTimer = null;
      renderObjects();
    }, RENDER_DELAY_MS);
  }
}

function renderObjects() {
  renderNodes();
  renderWorkloads();
  renderPods();
  renderEvents();
}

function renderNodes() {
  const pods = [...objects.pods.values()];
  const nodes = sortByName([...objects.nodes.values()]);
  setText("#nodes-count", `(${nodes.length})`);
  const rows = nodes.map((n) => {
    const conds = (n.status && n.status.conditions) || [];
    const ready = conds.find((c) => c.type === "Ready");
    const status = !ready ? "Unknown" : ready.status === "True" ? "Ready" : ready.status === "False" ? "NotReady" : "Unknown";
    const unschedulable = n.spec && n.spec.unschedulable;
    const count = pods.filter((p) => p.spec && p.spec.nodeName === n.metadata.name).length;
    return el(
      "tr",
      { "data-name": n.metadata.name },
      el("td", { class: "name" }, n.metadata.name),
      el(
        "td",
        { class: "status" },
        badge(status, status === "Ready" ? "ok" : "bad", ready && ready.message),
        unschedulable ? badge("SchedulingDisabled", "warn") : "",
      ),
      el("td", { class: "conditions" }, conds.filter((c) => c.type !== "Ready").map(conditionBadge)),
      el("td", { class: "num" }, count),
      el("td", {}, (n.status && n.status.nodeInfo && n.status.nodeInfo.kubeletVersion) || ""),
      el("td", {}, age(n.metadata.creationTimestamp)),
    );
  });
  fillTable("#nodes", rows, "no nodes registered");
}

/**
 * A condition other than Ready (MemoryPressure, DiskPressure, ...): red while it holds,
 * amber when unknown, grey (struck through) when it does not hold.
 */
function conditionBadge(c) {
  const tone = c.status === "True" ? "bad" : c.status === "False" ? "off" : "warn";
  return badge(c.type, tone, `${c.type}=${c.status}${c.message ? `: ${c.message}` : ""}`);
}

function renderWorkloads() {
  const rows = [];
  for (const k of KINDS.filter((k) => k.kind)) {
    for (const o of objects[k.name].values()) rows.push({ kind: k.kind, o, ...readiness(k.kind, o) });
  }
  rows.sort((a, b) => byNamespaceName(a.o, b.o) || a.kind.localeCompare(b.kind));
  setText("#workloads-count", `(${rows.length})`);
  const trs = rows.map((w) => {
    const m = w.o.metadata;
    return el(
      "tr",
      { "data-key": `${w.kind}/${m.namespace}/${m.name}` },
      el("td", { class: "kind" }, w.kind),
      el("td", {}, m.namespace),
      el("td", { class: "name" }, m.name),
      el("td", { class: "ready num" }, w.ready),
      el("td", { class: "status" }, badge(w.status, w.healthy ? "ok" : "warn")),
      el("td", {}, age(m.creationTimestamp)),
    );
  });
  fillTable("#workloads", trs, "no deployments, statefulsets, daemonsets or jobs");
}

/** `ready`: as kubectl's READY (COMPLETIONS for a Job); `status`: a few words. */
function readiness(kind, o) {
  const spec = o.spec || {};
  const st = o.status || {};
  const n = (v) => v || 0;
  switch (kind) {
    case "Deployment": {
      const want = spec.replicas ?? 1;
      return {
        ready: `${n(st.readyReplicas)}/${want}`,
        healthy: n(st.readyReplicas) >= want,
        status: `${n(st.updatedReplicas)} up to date, ${n(st.availableReplicas)} available`,
      };
    }
    case "StatefulSet": {
      const want = spec.replicas ?? 1;
      return {
        ready: `${n(st.readyReplicas)}/${want}`,
        healthy: n(st.readyReplicas) >= want,
        status: `${n(st.currentReplicas)} current`,
      };
    }
    case "DaemonSet": {
      const want = n(st.desiredNumberScheduled);
      return {
        ready: `${n(st.numberReady)}/${want}`,
        healthy: n(st.numberReady) >= want,
        status: `${n(st.currentNumberScheduled)} scheduled, ${n(st.numberAvailable)} available`,
      };
    }
    default: {
      const finished = (st.conditions || []).find(
        (c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True",
      );
      const failed = st.failed ? `, ${st.failed} failed` : "";
      return {
        ready: `${n(st.succeeded)}/${spec.completions ?? 1}`,
        healthy: !finished || finished.type === "Complete",
        status: finished ? finished.type : `${n(st.active)} active${failed}`,
      };
    }
  }
}

function renderPods() {
  const groups = new Map();
  for (const p of objects.pods.values()) {
    const node = (p.spec && p.spec.nodeName) || "";
    if (!groups.has(node)) groups.set(node, []);
    groups.get(node).push(p);
  }
  // Scheduled pods by node name; the unscheduled last.
  const names = [...groups.keys()].sort((a, b) => (a === "") - (b === "") || a.localeCompare(b));
  setText("#pods-count", `(${objects.pods.size})`);
  const blocks = names.map((node) => {
    const rows = groups.get(node).sort(byNamespaceName).map(podRow);
    return el(
      "div",
      { class: "pod-group", "data-node": node },
      el("h3", {}, node || "not scheduled", el("span", { class: "count" }, ` (${rows.length})`)),
      el(
        "table",
        {},
        el("thead", {}, el("tr", {}, ["Namespace", "Pod", "Status", "Ready", "Restarts", "Age"].map((h) => el("th", {}, h)))),
        el("tbody", {}, rows),
      ),
    );
  });
  const box = document.querySelector("#pods");
  if (blocks.length) box.replaceChildren(...blocks);
  else box.replaceChildren(el("p", { class: "count" }, "no pods"));
}

function podRow(p) {
  const m = p.metadata;
  const statuses = (p.status && p.status.containerStatuses) || [];
  const containers = (p.spec && p.spec.containers) || [];
  const ready = statuses.filter((s) => s.ready).length;
  const restarts = statuses.reduce((sum, s) => sum + (s.restartCount || 0), 0);
  const waiting = statuses.map((s) => s.state && s.state.waiting && s.state.waiting.reason).find(Boolean);
  const phase = (p.status && p.status.phase) || "Pending";
  const status = m.deletionTimestamp ? "Terminating" : waiting || phase;
  const tone = status === "Running" || status === "Succeeded" ? "ok" : status === "Pending" ? "warn" : "bad";
  return el(
    "tr",
    { "data-key": `${m.namespace}/${m.name}` },
    el("td", {}, m.namespace),
    el("td", { class: "name" }, m.name),
    el("td", { class: "status" }, badge(status, tone)),
    el("td", { class: "num" }, `${ready}/${containers.length}`),
    el("td", { class: "num" }, restarts),
    el("td", {}, age(m.creationTimestamp)),
  );
}

function renderEvents() {
  const when = (e) => Date.parse(e.lastTimestamp || e.eventTime || e.metadata.creationTimestamp) || 0;
  const events = [...objects.events.values()].sort((a, b) => when(b) - when(a)).slice(0, EVENTS_SHOWN);
  const rows = events.map((e) => {
    const o = e.involvedObject || {};
    return el(
      "tr",
      { "data-key": `${e.metadata.namespace}/${e.metadata.name}` },
      el("td", {}, age(e.lastTimestamp || e.eventTime || e.metadata.creationTimestamp)),
      el("td", {}, badge(e.type || "Normal", e.type === "Warning" ? "warn" : "muted")),
      el("td", { class: "reason" }, e.reason || ""),
      el("td", { title: o.namespace || "" }, `${(o.kind || "").toLowerCase()}/${o.name || ""}`),
      el("td", { class: "message" }, e.message || ""),
      el("td", { class: "num" }, e.count || 1),
    );
  });
  fillTable("#events", rows, "no events");
}

// ---- small helpers ------------------------------------------------------------------------

/** An element with attributes and children (nodes or text; arrays are flattened). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined && v !== "") node.setAttribute(k, v);
  }
  for (const c of children.flat(2)) {
    if (c === null || c === undefined || c === "") continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function badge(text, tone, title) {
  return el("span", { class: `badge ${tone}`, title }, text);
}

function fillTable(selector, rows, emptyText) {
  const columns = document.querySelectorAll(`${selector} thead th`).length;
  const body = document.querySelector(`${selector} tbody`);
  if (rows.length) body.replaceChildren(...rows);
  else body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: columns }, emptyText)));
}

function setText(selector, text) {
  const node = document.querySelector(selector);
  if (node.textContent !== text) node.textContent = text;
}

function sortByName(list) {
  return list.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

function byNamespaceName(a, b) {
  const ka = `${a.metadata.namespace || ""}/${a.metadata.name}`;
  const kb = `${b.metadata.namespace || ""}/${b.metadata.name}`;
  return ka.localeCompare(kb);
}

/** kubectl-style age: 42s, 5m, 3h, 2d. */
function age(timestamp) {
  const t = Date.parse(timestamp);
  if (!t) return "";
  const s = Math.max(0, Math.floor((Date.now() - t) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

async function getJSON(url, timeoutMs) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const resp = await fetch(url, { signal: abort.signal, cache: "no-store" });
    if (!resp.ok) throw new Error(`${url}: HTTP ${resp.status}`);
    return await resp.json();
  } catch (e) {
    throw e.name === "AbortError" ? new Error(`${url}: no answer within ${timeoutMs} ms`) : e;
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

followObjects();
pollLoop();
// Ages move on without changes.
setInterval(scheduleRender, 5000);
