// Tandem's web console: plain JavaScript, no build step, no external
// resources. It polls /status every second (and /api/connections,
// /api/consumers every few seconds), draws small charts of the rates, and
// sends operations to /api/ with HTTP basic auth once signed in.
"use strict";

(function () {
  const POLL_MS = 1000;
  const LIST_EVERY = 3; // polls between connection/consumer refreshes
  const HISTORY = 120; // chart points (two minutes)

  const $ = (id) => document.getElementById(id);
  let auth = null; // "Basic ..." once signed in
  let prev = null; // previous /status, for rates
  let prevAt = 0;
  let polls = 0;
  const series = { in: [], out: [], lat: [], batch: [] };
  const queueRates = new Map(); // queue name -> {in, out}

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const c of cells) {
      if (c instanceof Node) {
        const td = document.createElement("td");
        td.appendChild(c);
        tr.appendChild(td);
      } else if (c && typeof c === "object") {
        const td = el("td", c.text, c.cls);
        if (c.node) td.appendChild(c.node);
        tr.appendChild(td);
      } else {
        tr.appendChild(el("td", c));
      }
    }
    return tr;
  }

  function fill(tableId, rows) {
    const tb = $(tableId).tBodies[0];
    tb.replaceChildren(...rows);
  }

  function badge(text) {
    return el("span", text, "badge " + String(text).replace(/[^a-z-]/g, ""));
  }

  function fmtNum(n) {
    if (n === null || n === undefined) return "-";
    if (Math.abs(n) >= 1e9) return (n / 1e9).toFixed(1) + "G";
    if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
    return Number.isInteger(n) ? String(n) : n.toFixed(1);
  }

  function fmtAge(ms) {
    if (ms === null || ms === undefined) return "-";
    if (ms < 1000) return ms + " ms";
    const s = ms / 1000;
    if (s < 120) return s.toFixed(1) + " s";
    if (s < 7200) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(1) + " h";
  }

  function showError(msg) {
    const e = $("error");
    if (msg) {
      e.textContent = msg;
      e.hidden = false;
    } else {
      e.hidden = true;
    }
  }

  async function getJSON(path) {
    // Signed in, reads carry the credentials too: browsing messages needs
    // the browse permission on a broker that requires a login.
    const headers = auth ? { Authorization: auth, "X-Requested-With": "tandem-console" } : {};
    const r = await fetch(path, { cache: "no-store", headers });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || path + ": HTTP " + r.status);
    return body;
  }

  async function op(method, path, body) {
    const headers = { "Content-Type": "application/json", "X-Requested-With": "tandem-console" };
    if (auth) headers.Authorization = auth;
    const r = await fetch(path, { method, headers, body: JSON.stringify(body || {}) });
    const res = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(res.error || method + " " + path + ": HTTP " + r.status);
    return res;
  }

  function push(arr, v) {
    arr.push(v);
    if (arr.length > HISTORY) arr.shift();
  }

  function draw(id, lines) {
    const c = $(id);
    const g = c.getContext("2d");
    g.clearRect(0, 0, c.width, c.height);
    let max = 1;
    for (const l of lines) for (const v of l.data) if (v > max) max = v;
    g.font = "10px sans-serif";
    g.fillStyle = "#7a8494";
    g.fillText(fmtNum(max), 2, 10);
    for (const l of lines) {
      g.strokeStyle = l.color;
      g.lineWidth = 1.5;
      g.beginPath();
      l.data.forEach((v, i) => {
        const x = (c.width * i) / (HISTORY - 1);
        const y = c.height - 2 - ((c.height - 14) * v) / max;
        if (i === 0) g.moveTo(x, y);
        else g.lineTo(x, y);
      });
      g.stroke();
    }
  }

  function renderSummary(st) {
    $("broker-name").textContent = st.name || "";
    const parts = [st.role + " (" + st.policy + ")", st.state, "epoch " + st.epoch, "store " + st.store,
      "node " + st.node_id, "v" + st.version, st.connections + " connection(s)"];
    if (st.halted) parts.push("HALTED: " + st.halted);
    $("broker-summary").textContent = parts.join(" · ");
  }

  function renderCluster(st) {
    const rows = [];
    const peers = st.peers || [];
    let selfListed = false;
    for (const p of peers) {
      const self = p.node_id === st.node_id && p.role === st.role;
      if (self) selfListed = true;
      rows.push(row([p.node_id, p.role, badge(p.state), p.epoch, p.url, self ? "this broker" : ""]));
    }
    if (!selfListed) {
      rows.unshift(row([st.node_id, st.role, badge(st.state), st.epoch, (st.acceptors || [])[0] || "", "this broker"]));
    }
    for (const b of st.colocated_backups || []) {
      rows.push(row([b.requester_node, b.role, badge(b.state), b.epoch, b.url,
        b.name + " of " + b.requester_name + ", hosted in this process" +
        (b.replication ? ", replication " + b.replication.state : "")]));
    }
    fill("cluster", rows);
    $("colocated").textContent = st.colocated_backup_host ? "this broker's colocated backup is hosted by " + st.colocated_backup_host : "";
    const r = st.replication;
    if (r) {
      $("replication").replaceChildren(el("span", "replication: "), badge(r.state),
        el("span", " peer " + (r.peer || "none") + ", lag " + r.lag_records + " records / " + r.lag_bytes + " bytes, since " + r.since));
    } else {
      $("replication").textContent = "";
    }
  }

  function opButtons(q) {
    const span = el("span");
    if (!auth) return span;
    const b = (label, fn) => {
      const x = el("button", label);
      x.addEventListener("click", () => fn().then(poll).catch((e) => showError(e.message)));
      span.appendChild(x);
    };
    const path = "/api/queues/" + encodeURIComponent(q.name);
    b("browse", () => browse(q.name));
    b(q.paused ? "resume" : "pause", () => op("POST", path + (q.paused ? "/resume" : "/pause")));
    b("purge", () => (confirm("Purge every waiting message of " + q.name + "?") ? op("POST", path + "/purge") : Promise.resolve()));
    b("move", () => {
      const to = prompt("Move the waiting messages of " + q.name + " to queue:");
      return to ? op("POST", path + "/move", { to }) : Promise.resolve();
    });
    b("delete", () => (confirm("Delete queue " + q.name + " and its messages?") ? op("DELETE", path) : Promise.resolve()));
    return span;
  }

  function renderQueues(st, dt) {
    const rows = [];
    const old = new Map();
    if (prev) for (const q of prev.queues || []) old.set(q.name, q);
    for (const q of st.queues || []) {
      const p = old.get(q.name);
      let rin = null, rout = null;
      if (p && dt > 0) {
        rin = Math.max(0, (q.enqueued - p.enqueued) / dt);
        rout = Math.max(0, (q.acknowledged - p.acknowledged) / dt);
      }
      queueRates.set(q.name, { in: rin, out: rout });
      const name = auth ? el("a", q.name) : el("span", q.name);
      if (auth) {
        name.href = "#";
        name.addEventListener("click", (e) => { e.preventDefault(); browse(q.name).catch((x) => showError(x.message)); });
      }
      rows.push(row([q.address, name, q.routing, q.durable ? "yes" : "no",
        { text: fmtNum(q.depth), cls: "n" }, { text: q.consumers, cls: "n" },
        { text: fmtNum(rin), cls: "n" }, { text: fmtNum(rout), cls: "n" },
        { text: fmtAge(q.oldest_message_age_ms), cls: "n" },
        q.paused ? badge("paused") : badge("active"), { node: opButtons(q), cls: "ops-col" }]));
    }
    const tr = $("queues").tBodies[0];
    tr.replaceChildren(...rows);
    const shown = (st.queues || []).length;
    $("queue-count").textContent = shown === st.queues_total ? "(" + shown + ")" : "(" + shown + " of " + st.queues_total + ")";
  }

  function renderJournals(st) {
    const rows = [];
    for (const [name, j] of Object.entries(st.journals || {}).sort()) {
      rows.push(row([name, { text: j.segments, cls: "n" }, { text: fmtNum(j.live_records), cls: "n" },
        { text: fmtNum(j.bytes), cls: "n" }, { text: fmtNum(j.appends), cls: "n" },
        { text: j.appends_per_sync.toFixed(1), cls: "n" }, { text: j.compactions, cls: "n" },
        { text: j.reclaimed_segments, cls: "n" }]));
    }
    if (rows.length === 0) rows.push(row(["not a file journal (" + st.store + "): no journal figures"]));
    fill("journals", rows);
  }

  function renderPaging(st) {
    const p = st.paging || { addresses: [], memory_bytes: 0, global_max_size: 0 };
    $("paging-memory").textContent = "(messages in memory: " + fmtNum(p.memory_bytes) +
      (p.global_max_size > 0 ? " of " + fmtNum(p.global_max_size) + " bytes)" : " bytes)");
    const rows = p.addresses.map((a) => row([a.address, a.paging ? badge("paging") : "no",
      { text: fmtNum(a.memory_bytes), cls: "n" }, { text: fmtNum(a.paged_messages), cls: "n" },
      { text: fmtNum(a.paged_bytes), cls: "n" }, { text: a.page_files, cls: "n" },
      { text: a.blocked_sends, cls: "n" }, a.address_full_policy]));
    if (rows.length === 0) rows.push(row(["no address pages or holds blocked sends"]));
    fill("paging", rows);
  }

  function updateCharts(st, dt) {
    if (!prev || dt <= 0) return;
    push(series.in, Math.max(0, (st.stats.messages_in - prev.stats.messages_in) / dt));
    push(series.out, Math.max(0, (st.stats.acks - prev.stats.acks) / dt));
    const j = (st.journals || {}).messages, pj = (prev.journals || {}).messages;
    let lat = 0, batch = 0;
    if (j && pj && j.batches > pj.batches) {
      lat = (j.write_sync_ns - pj.write_sync_ns) / (j.batches - pj.batches) / 1e6;
      batch = (j.appends - pj.appends) / (j.batches - pj.batches);
    }
    push(series.lat, lat);
    push(series.batch, batch);
    draw("chart-rates", [{ data: series.in, color: "#2b6cb0" }, { data: series.out, color: "#2f855a" }]);
    draw("chart-latency", [{ data: series.lat, color: "#c05621" }]);
    draw("chart-batch", [{ data: series.batch, color: "#6b46c1" }]);
  }

  async function refreshLists() {
    const [conns, cons] = await Promise.all([getJSON("/api/connections"), getJSON("/api/consumers")]);
    fill("connections", conns.map((c) => row([c.id, c.remote, c.protocol, c.user || "", c.client_id || "", c.since])));
    fill("consumers", cons.map((c) => row([c.queue, c.connection || "-", c.id,
      { text: c.credit < 0 ? "unlimited" : c.credit, cls: "n" }, { text: c.delivering, cls: "n" }])));
  }

  async function browse(name) {
    const res = await getJSON("/api/queues/" + encodeURIComponent(name) + "/messages?limit=50");
    $("browse-section").hidden = false;
    $("browse-queue").textContent = name;
    $("browse-count").textContent = "(" + res.messages.length + " of " + res.total + " waiting)";
    fill("browse", res.messages.map((m) => row([m.id, m.durable ? "yes" : "no", m.delivery_count, m.timestamp || "-",
      JSON.stringify(m.properties), { text: (m.body_text ? "" : "hex: ") + m.body_preview, cls: "body" }])));
  }

  async function poll() {
    const t = performance.now();
    let st;
    try {
      st = await getJSON("/status?limit=500");
    } catch (e) {
      showError("cannot read /status: " + e.message);
      return;
    }
    showError(null);
    const dt = prev ? (t - prevAt) / 1000 : 0;
    renderSummary(st);
    renderCluster(st);
    renderQueues(st, dt);
    renderJournals(st);
    renderPaging(st);
    updateCharts(st, dt);
    prev = st;
    prevAt = t;
    if (polls++ % LIST_EVERY === 0) {
      refreshLists().catch((e) => {
        fill("connections", [row(["connections: " + e.message])]);
        fill("consumers", []);
      });
    }
    document.body.dataset.polls = String(polls);
  }

  async function whoami() {
    const headers = auth ? { Authorization: auth } : {};
    const r = await fetch("/api/whoami", { headers, cache: "no-store" });
    const w = await r.json();
    const signedIn = w.user !== null && w.user !== undefined;
    if (auth && !signedIn) {
      auth = null;
      showError("sign in failed: wrong user or password");
    }
    $("auth-state").textContent = signedIn ? "signed in as " + w.user : w.users ? "read-only" : "read-only (no users configured: operations with the tandem CLI)";
    $("login").hidden = signedIn || !w.users;
    $("logout").hidden = !signedIn;
    $("create-queue").hidden = !signedIn;
  }

  function init() {
    $("login").addEventListener("submit", (e) => {
      e.preventDefault();
      const raw = new TextEncoder().encode($("login-user").value + ":" + $("login-pass").value);
      auth = "Basic " + btoa(String.fromCharCode(...raw));
      whoami().then(poll).catch((x) => showError(x.message));
    });
    $("logout").addEventListener("click", () => {
      auth = null;
      whoami().then(poll).catch((x) => showError(x.message));
    });
    $("browse-close").addEventListener("click", () => { $("browse-section").hidden = true; });
    $("create-queue").addEventListener("submit", (e) => {
      e.preventDefault();
      op("POST", "/api/queues", {
        name: $("cq-name").value, address: $("cq-address").value,
        routing: $("cq-routing").value, durable: $("cq-durable").checked,
      }).then(poll).catch((x) => showError(x.message));
    });
    whoami().catch((e) => showError(e.message));
    poll();
    setInterval(poll, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", init);
})();
