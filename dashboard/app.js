// repowire dashboard: one live subscription (/dashboard/ws) plus the hub's REST routes.
// Everything from peers is shown as text (textContent, never HTML). Lists are capped, and the
// page redraws at most once per animation frame however fast events arrive.
"use strict";

(() => {
  const BACKLOG = 200;          // recent events a fresh page starts with
  const KEPT_MESSAGES = 2000;   // message rows kept in memory
  const SHOWN_MESSAGES = 200;   // message rows in the page
  const SHOWN_PEERS = 300;      // peer rows in the page
  const PEERS_REFRESH_MS = 3000;
  const SHOWN_JOBS = 50;        // job rows in the page (newest first)
  const JOBS_REFRESH_MS = 500;  // job events reload the list at most this often
  const KIND_FILTER = { notify: "notify", ask: "ask", ack: "reply", reply: "reply", answer: "answer", expired: "expired" };

  const $ = (id) => document.getElementById(id);
  const state = {
    cursor: null, socket: null, paused: false, retry: 0, signedIn: false,
    peers: new Map(), questions: new Map(), messages: [], byTrace: new Map(),
    kinds: new Set(["notify", "ask", "reply", "answer", "expired"]),
    peerFilter: "", messagePeer: "", trace: null, peersStale: false, scheduled: false,
    dirty: new Set(), peerRows: new Map(), messageRows: new Map(), questionCards: new Map(), namesKey: "",
    selected: null, jobsLoading: false, jobsAgain: false,
  };

  // The page's half of the session. The sign-in sends the browser here with `#key=…`: a URL
  // fragment no server ever receives. The key is kept for this tab only (sessionStorage) and
  // taken out of the address bar; the hub counts the session cookie only with it, so a local
  // server that the browser also sends the cookie to gets nothing from it.
  const SESSION_KEY = "repowire-page-key";
  // An alert's link also names the question it is about (`&question=<id>`): that card is
  // selected once it shows.
  let openQuestion = null;
  function takePageKey() {
    const match = /^#key=([A-Za-z0-9_-]{16,128})(?:&question=([0-9a-f]{32}))?$/.exec(location.hash);
    if (match) {
      sessionStorage.setItem(SESSION_KEY, match[1]);
      openQuestion = match[2] || null;
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem(SESSION_KEY) || "";
  }
  const pageKey = takePageKey();

  // ---- small helpers ------------------------------------------------------------------------

  // Agent text, every character visible: controls and characters that show nothing or reorder
  // what follows (bidi controls, zero-width and tag characters, variation selectors, fillers) as
  // markers such as ⟨U+202E⟩ (the same rule as the CLI and the panes). Line breaks and tabs stay.
  const HIDDEN = /[\p{Cf}\u034F\u115F\u1160\u17B4\u17B5\u180B-\u180F\u3164\uFE00-\uFE0F\uFFA0\u{E0100}-\u{E01EF}\u0000-\u0008\u000B-\u001F\u007F-\u009F\u2028\u2029]/gu;
  function visible(text) {
    return String(text ?? "").replace(HIDDEN, (c) => `⟨U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}⟩`);
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "data") Object.assign(node.dataset, value);
      else if (key === "on") for (const [event, fn] of Object.entries(value)) node.addEventListener(event, fn);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const CLOCK = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });

  function clock(ms) {
    return CLOCK.format(new Date(ms));
  }

  // Make `list`'s children be `rows`, in order, touching only what differs: a new message is
  // one insertion, not 200 (the browser then lays out and paints little; bench/dashboard.py).
  function reconcile(list, rows) {
    let at = list.firstChild;
    for (const row of rows) {
      if (at === row) { at = at.nextSibling; continue; }
      list.insertBefore(row, at);
    }
    while (at) { const next = at.nextSibling; at.remove(); at = next; }
  }

  // A row rebuilt for a new version takes its old row's place, so `reconcile` finds it there.
  function swapRow(rows, key, row) {
    const old = rows.get(key);
    if (old && old.isConnected) old.replaceWith(row);
    rows.set(key, row);
  }

  function precise(ms) {
    return `${clock(ms)}.${String(new Date(ms).getMilliseconds()).padStart(3, "0")}`;
  }

  function ago(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
    return `${Math.floor(s / 86400)}d ago`;
  }

  function cursorAfter(a, b) {   // is event id a after b? ids are "<ms>-<seq>"
    if (b === null) return true;
    const [am, as] = a.split("-").map(BigInt);
    const [bm, bs] = b.split("-").map(BigInt);
    return am > bm || (am === bm && as > bs);
  }

  const OPERATOR = "0".repeat(32);

  function peerLabel(ref) {
    if (!ref) return "?";
    if (ref === OPERATOR || ref.peer_id === OPERATOR) return "operator";
    const known = typeof ref === "string" ? state.peers.get(ref) : state.peers.get(ref.peer_id);
    if (typeof ref === "string") {
      if (known) return known.name;
      return ref.length === 32 ? ref.slice(0, 8) : ref.replace(/@default$/, "");
    }
    return ref.circle && ref.circle !== "default" ? `${ref.name}@${ref.circle}` : ref.name;
  }

  function markDirty(part) {
    state.dirty.add(part);
    if (!state.scheduled) {
      state.scheduled = true;
      requestAnimationFrame(render);
    }
  }

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { "X-Repowire-Dashboard": pageKey } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (response.status === 401) showSignedOut();
    if (!response.ok) {
      const error = new Error((data && data.error && data.error.message) || `the hub answered ${response.status}`);
      error.code = data && data.error && data.error.code;
      throw error;
    }
    return data;
  }

  // ---- the live subscription ----------------------------------------------------------------

  function setLive(mode, text) {
    const node = $("live-status");
    node.dataset.state = mode;
    node.textContent = text || mode;
  }

  function connect() {
    if (state.socket || state.paused || !state.signedIn) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/dashboard/ws`,
                                 ["repowire.dashboard", `repowire.key.${pageKey}`]);
    state.socket = socket;
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "subscribe", cursor: state.cursor, backlog: BACKLOG }));
    });
    socket.addEventListener("message", (event) => onFrame(JSON.parse(event.data)));
    socket.addEventListener("close", (event) => {
      if (state.socket !== socket) return;
      state.socket = null;
      if (event.code === 4401) { showSignedOut(); return; }
      if (state.paused) return;
      const wait = Math.min(5000, 250 * 2 ** state.retry++);
      setLive("reconnecting", "reconnecting…");
      setTimeout(connect, wait);
    });
  }

  function onFrame(frame) {
    if (frame.type === "subscribed") {
      state.retry = 0;
      setLive("live", "live");
      const fresh = state.cursor === null;
      if (frame.history_lost) {
        showBanner("Some events were no longer kept by the hub while this page was away; the lists were reloaded.");
        state.messages = [];
        state.byTrace.clear();
        markDirty("messages");
      }
      state.cursor = frame.cursor;
      if (fresh || frame.history_lost) loadSnapshot();
    } else if (frame.type === "event") {
      if (!cursorAfter(frame.cursor, state.cursor)) return;   // never twice
      state.cursor = frame.cursor;
      apply(frame.kind, frame.data, frame.cursor);
    } else if (frame.type === "error") {
      showBanner(`${frame.error.code}: ${frame.error.message}`);
    }
  }

  function apply(kind, data, cursor) {
    if (kind === "presence") {
      const before = state.peers.get(data.peer_id);
      const peer = data.peer ? { ...(before || { pending: 0, open_asks: 0 }), ...data.peer }
                             : before && { ...before, status: data.status, status_reason: data.reason || "" };
      if (peer) { peer.v = (before ? before.v : 0) + 1; state.peers.set(peer.peer_id, peer); }
      markDirty("peers");
    } else if (kind === "peer_deleted") {
      state.peers.delete(data.peer_id);
      markDirty("peers");
    } else if (kind === "traces") {
      data.forEach((trace, i) => applyTrace(trace, `${cursor}/${i}`));
    } else if (kind === "question") {
      state.questions.set(data.correlation_id, data);
      markDirty("questions");
    } else if (kind === "question_decided") {
      state.questions.delete(data.correlation_id);
      markDirty("questions");
    } else if (kind === "job") {
      loadJobs();
      if (state.trace && state.trace.job && state.trace.id === data.job_id) openJob(data.job_id);
    }
  }

  function applyTrace(data, cursor) {
    const message = data.message;
    if (message) {
      const opens = message.kind === "notify" || message.kind === "ask";
      const row = {
        key: opens ? data.trace_id : cursor, trace_id: data.trace_id, kind: message.kind, at: message.at,
        from: message.from, to: message.to, text: message.text, truncated: message.truncated,
        question: message.question, attachments: message.attachments,
        state: opens ? "accepted" : message.kind, v: 0,
      };
      if (opens) state.byTrace.set(data.trace_id, row);
      addMessage(row);
    }
    const row = state.byTrace.get(data.trace_id);
    for (const stage of data.stages) {
      if (row && stage.stage !== "late_receipt") {
        row.state = stage.stage === "failed" || stage.stage === "held" ? `${stage.stage}${stage.reason ? `: ${stage.reason}` : ""}` : stage.stage;
        row.v += 1;
        markDirty("messages");
      }
      if (stage.stage === "expired" && row) {
        addMessage({ key: `${cursor}-expired`, trace_id: data.trace_id, kind: "expired", at: stage.at, from: row.from,
                     to: row.to, text: `${row.kind} expired${stage.reason ? ` (${stage.reason})` : ""}: ${row.text || ""}`,
                     state: "expired", v: 0 });
      }
      if (state.trace && state.trace.id === data.trace_id) addTraceStage(stage);
    }
    state.peersStale = true;
  }

  function addMessage(row) {
    state.messages.push(row);
    if (state.messages.length > KEPT_MESSAGES) {
      for (const gone of state.messages.splice(0, state.messages.length - KEPT_MESSAGES)) {
        if (state.byTrace.get(gone.trace_id) === gone) state.byTrace.delete(gone.trace_id);
        state.messageRows.delete(gone.key);
      }
    }
    markDirty("messages");
  }

  async function loadSnapshot() {
    await Promise.all([loadPeers(), loadQuestions(), loadPanes(), loadJobs()]);
  }

  async function loadPeers() {
    try {
      const { peers } = await api("GET", "/peers");
      const seen = new Set();
      for (const peer of peers) {
        const before = state.peers.get(peer.peer_id);
        seen.add(peer.peer_id);
        if (before && sameFacts(before, peer)) continue;   // its row stays as it is
        peer.v = (before ? before.v : 0) + 1;
        state.peers.set(peer.peer_id, peer);
      }
      for (const id of [...state.peers.keys()]) if (!seen.has(id)) state.peers.delete(id);
      state.peersStale = false;
      markDirty("peers");
    } catch (error) { showBanner(`peers: ${error.message}`); }
  }

  function sameFacts(a, b) {
    return a.status === b.status && a.status_reason === b.status_reason && a.pending === b.pending
      && a.open_asks === b.open_asks && a.last_seen === b.last_seen && a.role === b.role
      && JSON.stringify(a.pane) === JSON.stringify(b.pane);
  }

  async function loadQuestions() {
    try {
      const { questions } = await api("GET", "/questions?limit=1000");
      state.questions = new Map(questions.filter((q) => q.state === "pending").map((q) => [q.correlation_id, q]));
      markDirty("questions");
    } catch (error) { showBanner(`questions: ${error.message}`); }
  }

  // ---- drawing --------------------------------------------------------------------------------

  function render() {
    state.scheduled = false;
    const dirty = state.dirty;
    state.dirty = new Set();
    if (dirty.has("peers")) renderPeers();
    if (dirty.has("messages") || dirty.has("peers")) renderMessages();
    if (dirty.has("questions")) renderQuestions();
    renderCounts();
  }

  // Text that did not change is left alone: writing it again makes the browser lay out anew.
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function renderCounts() {
    const all = [...state.peers.values()];
    const online = all.filter((p) => p.status !== "offline").length;
    setText($("counts"), `${online} online · ${all.length} peers · ${state.questions.size} waiting`);
    setText($("peers-count"), String(all.length));
    setText($("questions-count"), state.questions.size ? String(state.questions.size) : "");
    const title = state.questions.size ? `(${state.questions.size}) repowire` : "repowire";
    if (document.title !== title) document.title = title;
  }

  function peerMatches(peer, filter) {
    return !filter || `${peer.name}@${peer.circle} ${peer.role} ${peer.status}`.toLowerCase().includes(filter);
  }

  function renderPeers() {
    const filter = state.peerFilter.toLowerCase();
    const order = { online: 0, busy: 0, awaiting_input: 0, offline: 1 };
    const shown = [...state.peers.values()].filter((p) => peerMatches(p, filter))
      .sort((a, b) => (order[a.status] - order[b.status]) || a.circle.localeCompare(b.circle) || a.name.localeCompare(b.name));
    const rows = shown.slice(0, SHOWN_PEERS).map((peer) => {
      let row = state.peerRows.get(peer.peer_id);
      if (!row || row.dataset.v !== String(peer.v)) {
        row = peerRow(peer);
        swapRow(state.peerRows, peer.peer_id, row);
      }
      return row;
    });
    for (const id of [...state.peerRows.keys()]) if (!state.peers.has(id)) state.peerRows.delete(id);
    reconcile($("peer-list"), rows);
    const more = $("peers-more");
    more.hidden = shown.length <= SHOWN_PEERS;
    more.textContent = `and ${shown.length - SHOWN_PEERS} more; filter to narrow the list`;
    const names = [...state.peers.values()].slice(0, 500).map((p) => (p.circle === "default" ? p.name : `${p.name}@${p.circle}`));
    const key = names.join("\n");
    if (key !== state.namesKey) {   // the composer's suggestions, rebuilt only when names change
      state.namesKey = key;
      $("peer-names").replaceChildren(...names.map((value) => el("option", { value })));
    }
  }

  function transportOf(peer) {
    if (peer.pane) return { text: `pane ${peer.pane.pane_id}`, tone: peer.status === "offline" ? "bad" : "ok" };
    if (peer.status !== "offline") return { text: "socket", tone: "ok" };
    return { text: peer.status_reason || "offline", tone: "" };
  }

  function peerRow(peer) {
    const transport = transportOf(peer);
    return el("li", { class: "peer", data: { peerId: peer.peer_id, status: peer.status, v: peer.v }, tabindex: 0,
                      title: `${peer.name}@${peer.circle} (${peer.peer_id})` },
      el("span", { class: "dot", "aria-hidden": "true" }),
      el("span", { class: "name" }, peer.name, el("span", { class: "muted" }, peer.circle === "default" ? "" : `@${peer.circle}`)),
      el("span", { class: "badges" },
        peer.open_asks ? el("span", { class: "badge warn", title: "asks waiting for this peer's reply" }, `${peer.open_asks} ask${peer.open_asks === 1 ? "" : "s"}`) : null,
        peer.pending ? el("span", { class: "badge", title: "messages queued for this peer" }, `${peer.pending} queued`) : null,
        el("span", { class: `badge ${transport.tone}` }, transport.text)),
      el("span", { class: "meta" }, `${peer.status.replace("_", " ")} · ${peer.role} · ${peer.node || "-"} · seen ${ago(peer.last_seen)}`));
  }

  function messageMatches(row, peerFilter) {
    if (!state.kinds.has(KIND_FILTER[row.kind] || row.kind)) return false;
    if (!peerFilter) return true;
    const from = row.from ? `${row.from.name}@${row.from.circle}` : "";
    const to = peerLabel(row.to);
    return `${from} ${row.to} ${to}`.toLowerCase().includes(peerFilter);
  }

  function renderMessages() {
    const filter = state.messagePeer.toLowerCase();
    const rows = [];
    for (let i = state.messages.length - 1; i >= 0 && rows.length < SHOWN_MESSAGES; i -= 1) {
      const message = state.messages[i];
      if (!messageMatches(message, filter)) continue;
      let row = state.messageRows.get(message.key);
      if (!row || row.dataset.v !== String(message.v)) {
        row = messageRow(message);
        swapRow(state.messageRows, message.key, row);
      }
      rows.push(row);
    }
    reconcile($("message-list"), rows);
    if ($("messages-empty").hidden !== rows.length > 0) $("messages-empty").hidden = rows.length > 0;
  }

  function messageRow(message) {
    const extra = [];
    if (message.question && message.question.options) {
      extra.push(` [${message.question.options.map((o) => visible(o.title)).join(" / ")}]`);
    }
    if (message.attachments) extra.push(` [files: ${message.attachments.join(", ")}]`);
    if (message.truncated) extra.push(" …");
    return el("li", { class: "message", data: { kind: message.kind, traceId: message.trace_id, v: message.v }, tabindex: 0,
                      title: "Open its trace", on: { click: () => openTrace(message.trace_id),
                                                      keydown: (e) => { if (e.key === "Enter") openTrace(message.trace_id); } } },
      el("span", { class: "time" }, clock(message.at)),
      el("span", { class: "kind" }, message.kind),
      el("span", { class: "route" }, `${peerLabel(message.from)} → ${peerLabel(message.to)}`),
      el("span", { class: "state badge" }, message.state),
      el("span", { class: "text" }, visible(message.text || "") + extra.join("")));
  }

  // Newest first; one card is selected (the alert's, else the first) for the keyboard:
  // a allow once · s allow for this session · A always allow · d deny · j/k next/previous.
  function renderQuestions() {
    const list = $("question-list");
    const cards = [...state.questions.values()].sort((a, b) => b.created_at - a.created_at).map((q) => {
      let card = state.questionCards.get(q.correlation_id);
      if (!card) {
        card = questionCard(q);
        state.questionCards.set(q.correlation_id, card);
      }
      return card;
    });
    for (const id of [...state.questionCards.keys()]) if (!state.questions.has(id)) state.questionCards.delete(id);
    list.replaceChildren(...cards);
    $("questions-empty").hidden = cards.length > 0;
    if (openQuestion && state.questions.has(openQuestion)) {
      select(openQuestion, true);
      openQuestion = null;
    } else if (!state.questions.has(state.selected)) {
      select(cards.length ? cards[0].dataset.questionId : null, false);
    } else {
      select(state.selected, false);
    }
    tickCountdowns();
  }

  function select(id, scroll) {
    state.selected = id;
    for (const [cid, card] of state.questionCards) card.classList.toggle("selected", cid === id);
    const card = id && state.questionCards.get(id);
    if (card && scroll) card.scrollIntoView({ block: "nearest" });
  }

  // What "always" keeps of a shell command: the program and, unless it is an option or a path,
  // its first argument (the hub's default, shown so the person knows what they allow).
  function commandPrefix(command) {
    const words = String(command || "").split(/\s+/).filter(Boolean);
    if (words.length > 1 && !/^[-/.~]/.test(words[1]) && !words[1].includes("=")) return `${words[0]} ${words[1]}`;
    return words[0] || "";
  }

  function questionCard(q) {
    const problem = el("span", { class: "problem", role: "alert" });
    const buttons = [];
    const answer = async (body) => {
      for (const b of buttons) b.disabled = true;
      problem.textContent = "";
      try {
        await api("POST", `/questions/${q.correlation_id}/answer`, { ...body, content_hash: q.content_hash });
        state.questions.delete(q.correlation_id);
        markDirty("questions");
      } catch (error) {
        problem.textContent = `${error.code || "error"}: ${error.message}`;
        if (["already_answered", "expired", "question_not_found", "question_abandoned"].includes(error.code)) {
          setTimeout(() => { state.questions.delete(q.correlation_id); markDirty("questions"); }, 4000);
        } else {
          for (const b of buttons) b.disabled = false;
        }
      }
    };
    const button = (label, kind, key, body, title) => {
      const data = { key: key || "", decision: body.decision || "", scope: body.scope || "" };
      if (body.option_id) {
        const option = q.options.find((o) => o.id === body.option_id);
        data.decision = (option && option.decision) || "";
      }
      const b = el("button", { type: "button", class: kind, title: title || "", data,
                               on: { click: () => answer(body) } },
                   label, key ? el("kbd", {}, key) : null);
      buttons.push(b);
      return b;
    };
    const who = q.peer || q.asker;
    if (q.kind === "choice") {
      // a plain question: each button is one of the asker's options, its title only quoted
      for (const option of q.options) {
        button(`«${visible(option.title)}»${option.id === q.default ? " (default)" : ""}`, "choice", null,
               { option_id: option.id });
      }
      return el("li", { class: "question", data: { questionId: q.correlation_id }, on: { click: () => select(q.correlation_id) } },
        el("div", { class: "title" }, el("span", {}, visible(q.title)), el("span", { class: "countdown", data: { deadline: q.deadline } })),
        el("div", { class: "who" }, `${peerLabel(who)} asks${q.cwd ? ` in ${visible(q.cwd)}` : ""}`),
        q.prompt ? el("pre", { class: "prompt" }, visible(q.prompt)) : null,
        el("div", { class: "choices" }, buttons), problem);
    }
    const custom = q.options && q.options.length && !(q.options.length === 2 && q.options[0].id === "allow" && q.options[1].id === "deny");
    if (custom) {
      // what a button does is the hub's word (its decision); the agent's title is only shown, quoted
      for (const option of q.options) {
        const does = option.decision === "allow" ? "Allow" : "Deny";
        button(`${does}: «${visible(option.title)}»`, option.decision === "allow" ? "allow" : "deny", null,
               { option_id: option.id });
      }
    } else {
      button("Allow once", "allow", "a", { decision: "allow" });
    }
    if (q.peer) {
      if (q.session_id) {
        button("Allow for this session", "allow scoped", "s", { decision: "allow", scope: "session" },
               "this exact call runs again without asking until the agent's session ends");
      }
      const prefix = q.tool_name === "Bash" ? commandPrefix(q.tool_input && q.tool_input.command) : "";
      button(prefix ? `Always allow “${visible(prefix)} …”` : `Always allow ${visible(q.tool_name)}`, "allow scoped", "A",
             { decision: "allow", scope: "always", ...(prefix ? { prefix } : {}) },
             `from now on, for ${peerLabel(who)}; a policy you can remove`);
    }
    if (!custom) button("Deny", "deny", "d", { decision: "deny" });
    const input = visible(JSON.stringify(q.tool_input, null, 2));
    return el("li", { class: "question", data: { questionId: q.correlation_id }, on: { click: () => select(q.correlation_id) } },
      el("div", { class: "title" }, el("span", {}, visible(q.tool_name)), el("span", { class: "countdown", data: { deadline: q.deadline } })),
      el("div", { class: "who" }, `${peerLabel(who)}${q.cwd ? ` in ${visible(q.cwd)}` : ""}`),
      q.prompt ? el("div", { class: "prompt" }, visible(q.prompt)) : null,
      el("pre", { class: "tool-input", tabindex: 0, title: "the whole tool input; scroll for more" }, input),
      el("div", { class: "choices" }, buttons),
      problem);
  }

  function onQuestionKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || !$("trace").hidden) return;
    if (e.target.closest && e.target.closest("input, textarea, select, [contenteditable]")) return;
    const ids = [...state.questionCards.keys()].filter((id) => state.questions.has(id))
      .sort((a, b) => state.questions.get(b).created_at - state.questions.get(a).created_at);
    if (!ids.length) return;
    if (e.key === "j" || e.key === "k") {
      const at = Math.max(ids.indexOf(state.selected), 0);
      select(ids[Math.min(Math.max(at + (e.key === "j" ? 1 : -1), 0), ids.length - 1)], true);
      e.preventDefault();
      return;
    }
    const card = state.questionCards.get(state.selected);
    const target = card && [...card.querySelectorAll("button[data-key]")].find((b) => b.dataset.key === e.key && !b.disabled);
    if (target) {
      target.click();
      e.preventDefault();
    }
  }

  function tickCountdowns() {
    for (const node of document.querySelectorAll(".countdown")) {
      const left = Math.round((Number(node.dataset.deadline) - Date.now()) / 1000);
      node.textContent = left > 0 ? `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}` : "0:00";
      node.classList.toggle("late", left <= 10);
    }
  }

  // ---- trace drawer ---------------------------------------------------------------------------

  async function openTrace(traceId) {
    state.trace = { id: traceId, seen: new Set(), first: null };
    $("trace-facts").replaceChildren();
    $("trace-stages").replaceChildren();
    $("trace-title").textContent = "Trace";
    $("trace").hidden = false;
    $("trace-close").focus();
    try {
      const trace = await api("GET", `/traces/${traceId}`);
      if (!state.trace || state.trace.id !== traceId) return;
      $("trace-title").textContent = `${trace.kind} trace`;
      const row = state.byTrace.get(traceId);
      const facts = [["id", trace.trace_id], ["from", peerLabel(trace.from)], ["to", trace.to || "-"],
                     ["final", trace.final || "not yet"]];
      if (row && row.text) facts.push(["text", row.text]);
      $("trace-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { data: { fact: k } }, v)]));
      for (const stage of trace.stages) addTraceStage(stage);
    } catch (error) {
      $("trace-facts").replaceChildren(el("dt", {}, "error"), el("dd", {}, error.message));
    }
  }

  function addTraceStage(stage) {
    const trace = state.trace;
    const key = `${stage.stage}|${stage.at}|${stage.peer_id || ""}|${stage.node}`;
    if (trace.seen.has(key)) return;
    trace.seen.add(key);
    if (trace.first === null) trace.first = stage.at;
    const details = Object.entries(stage)
      .filter(([k]) => !["stage", "at", "node"].includes(k))
      .map(([k, v]) => `${k}=${describe(k, v)}`);
    $("trace-stages").append(el("li", { class: "stage", data: { stage: stage.stage } },
      el("div", { class: "line" }, el("span", { class: "name" }, stage.stage),
         el("span", { class: "when" }, `${precise(stage.at)}  +${stage.at - trace.first} ms  ${stage.node}`)),
      details.length ? el("div", { class: "detail" }, details.join("  ")) : null));
  }

  function describe(key, value) {
    if (key === "peer_id" || key === "from_peer" || key === "by") return peerLabel(String(value));
    if (key === "deadline") return precise(value);
    return typeof value === "object" ? JSON.stringify(value) : value;
  }

  function closeTrace() {
    state.trace = null;
    $("trace").hidden = true;
  }

  // ---- jobs -----------------------------------------------------------------------------------

  async function loadJobs() {
    if (state.jobsLoading) { state.jobsAgain = true; return; }   // one load at a time; one more after it
    state.jobsLoading = true;
    try {
      const { work, recurring } = await api("GET", `/jobs?view=summary&limit=${SHOWN_JOBS}`);
      const jobs = [...recurring, ...work].slice(0, SHOWN_JOBS);
      $("job-list").replaceChildren(...jobs.map(jobRow));
      $("jobs-empty").hidden = jobs.length > 0;
      $("jobs-count").textContent = jobs.length ? String(jobs.length) : "";
    } catch (error) {
      showBanner(`jobs: ${error.message}`);
    } finally {
      setTimeout(() => {
        state.jobsLoading = false;
        if (state.jobsAgain) { state.jobsAgain = false; loadJobs(); }
      }, JOBS_REFRESH_MS);
    }
  }

  function jobTarget(job) {
    const target = job.target || {};
    return target.peer ? peerLabel(target.peer) : `${target.backend} in ${target.path}`;
  }

  function jobRow(job) {
    const state_ = job.reason && job.state !== "cancelled" ? `${job.state}: ${job.reason}` : job.state;
    const when = job.kind === "recurring" ? `cron ${job.cron}` : clock(Date.parse(job.finished_at || job.started_at || job.created_at));
    const summary = job.result && job.result.summary ? job.result.summary : "";
    return el("li", { class: "row job", data: { job: job.id, state: job.state }, tabindex: "0",
                      on: { click: () => openJob(job.id), keydown: (e) => { if (e.key === "Enter") openJob(job.id); } } },
      el("span", { class: "badge", data: { state: job.state } }, state_),
      el("span", { class: "name" }, jobTarget(job)),
      el("span", { class: "muted" }, when),
      summary ? el("div", { class: "detail" }, visible(summary)) : null);
  }

  async function openJob(jobId) {
    const fresh = !state.trace || state.trace.id !== jobId;
    state.trace = { id: jobId, job: true, seen: new Set(), first: null };
    if (fresh) {
      $("trace-facts").replaceChildren();
      $("trace-stages").replaceChildren();
      $("trace-title").textContent = "Job";
      $("trace").hidden = false;
      $("trace-close").focus();
    }
    try {
      const job = await api("GET", `/jobs/${encodeURIComponent(jobId)}/status`);
      if (!state.trace || state.trace.id !== jobId) return;
      $("trace-title").textContent = `${job.kind === "recurring" ? "recurring job" : "job"}: ${job.state}`;
      const facts = [["id", job.id], ["state", job.reason ? `${job.state} (${job.reason})` : job.state],
                     ["target", jobTarget(job)], ["by", peerLabel(job.owner)], ["prompt", job.prompt || ""]];
      if (job.cron) facts.push(["cron", `${job.cron} ${job.timezone}`], ["next", job.next_fire_at || "-"]);
      if (job.runtime_session_id) facts.push(["session", job.runtime_session_id]);
      if (job.result) facts.push(["result", job.result.summary || ""]);
      if (job.result && job.result.error) facts.push(["error", job.result.error]);
      for (const p of (job.progress || []).slice(-10)) facts.push(["progress", `${p.at.slice(11, 23)}  ${p.text}`]);
      $("trace-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { data: { fact: k } }, visible(String(v)))]));
      $("trace-stages").replaceChildren(...(job.trace || []).map((stage) => el("li", { class: "stage", data: { stage: stage.stage } },
        el("div", { class: "line" }, el("span", { class: "name" }, stage.stage),
           el("span", { class: "when" }, `${stage.at.slice(11, 23)}  ${stage.node || ""}`)),
        stage.detail || stage.work_id ? el("div", { class: "detail" }, visible([stage.work_id, stage.detail].filter(Boolean).join("  "))) : null)));
    } catch (error) {
      $("trace-facts").replaceChildren(el("dt", {}, "error"), el("dd", {}, error.message));
    }
  }

  // ---- panes ----------------------------------------------------------------------------------

  async function loadPanes() {
    const orphans = $("orphan-list");
    try {
      const { panes, bridges } = await api("GET", "/panes/orphans");
      orphans.replaceChildren(...panes.map(orphanRow));
      $("orphans-empty").hidden = panes.length > 0;
      $("orphans-empty").textContent = bridges.length ? "No orphan panes." : "No pane bridge is connected to this hub.";
    } catch (error) {
      orphans.replaceChildren();
      $("orphans-empty").hidden = false;
      $("orphans-empty").textContent = error.message;
    }
    const linked = [...state.peers.values()].filter((p) => p.pane).slice(0, 50);
    $("linked-empty").hidden = linked.length > 0;
    $("linked-list").replaceChildren(...await Promise.all(linked.map(linkedRow)));
  }

  function orphanRow(pane) {
    const problem = el("span", { class: "problem", role: "alert" });
    const button = el("button", { type: "button", on: { click: async () => {
      button.disabled = true;
      problem.textContent = "";
      try {
        await api("POST", `/panes/${encodeURIComponent(pane.pane_id)}/link`, { backend: pane.agent || "claude", bridge: pane.bridge });
        await loadPeers();
        await loadPanes();
      } catch (error) {
        problem.textContent = `${error.code || "error"}: ${error.message}`;
        button.disabled = false;
      }
    } } }, "Link");
    return el("li", { class: "pane", data: { paneId: pane.pane_id } },
      el("span", { class: "what" }, `${pane.pane_id}  ${pane.agent || pane.command}`), button,
      el("span", { class: "where" }, `${pane.session}:${pane.window_name} · ${pane.cwd}`), problem);
  }

  async function linkedRow(peer) {
    let health = "";
    let problems = [];
    try {
      const report = await api("GET", `/peers/${peer.peer_id}/doctor`);
      health = report.healthy ? "healthy" : "needs care";
      problems = report.contradictions.map((c) => `${c.code}: ${c.detail}`);
    } catch (error) { health = error.code || "unknown"; }
    return el("li", { class: "pane", data: { peerId: peer.peer_id } },
      el("span", { class: "what" }, `${peer.pane.pane_id}  ${peer.name}`),
      el("span", { class: `badge ${health === "healthy" ? "ok" : "bad"}` }, health),
      el("span", { class: "where" }, `${peer.pane.backend} · ${peer.status.replace("_", " ")} · bridge ${peer.pane.bridge}`),
      problems.length ? el("span", { class: "problem" }, problems.join("; ")) : null);
  }

  // ---- composer, controls, start --------------------------------------------------------------

  async function send(event) {
    event.preventDefault();
    const kind = $("compose-kind").value;
    const to = $("compose-to").value.trim();
    const text = $("compose-text").value;
    const result = $("compose-result");
    result.className = "compose-result";
    result.textContent = "sending…";
    try {
      const body = kind === "ask" ? { to, text, queue_if_offline: true } : { to, text };
      const accepted = await api("POST", kind === "ask" ? "/ask" : "/messages", body);
      result.textContent = `${kind} ${accepted.state}: ${accepted.correlation_id || accepted.message_id}`;
      $("compose-text").value = "";
    } catch (error) {
      result.className = "compose-result bad";
      result.textContent = `${error.code || "error"}: ${error.message}`;
    }
  }

  function showBanner(text) {
    const banner = $("banner");
    banner.textContent = text;
    banner.hidden = false;
    clearTimeout(showBanner.timer);
    showBanner.timer = setTimeout(() => { banner.hidden = true; }, 15000);
  }

  function showSignedOut() {
    state.signedIn = false;
    if (state.socket) { const s = state.socket; state.socket = null; s.close(); }
    $("app").hidden = true;
    $("signed-out").hidden = false;
    setLive("paused", "signed out");
  }

  function togglePause() {
    state.paused = !state.paused;
    $("pause").textContent = state.paused ? "Resume" : "Pause";
    if (state.paused) {
      setLive("paused", "paused");
      if (state.socket) { const s = state.socket; state.socket = null; s.close(1000, "paused"); }
    } else {
      setLive("reconnecting", "catching up…");
      connect();
    }
  }

  function applyTheme(theme) {
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
    else delete document.documentElement.dataset.theme;
  }

  function cycleTheme() {
    const now = document.documentElement.dataset.theme
      || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
    const next = now === "dark" ? "light" : "dark";
    localStorage.setItem("repowire-theme", next);
    applyTheme(next);
  }

  async function start() {
    applyTheme(localStorage.getItem("repowire-theme"));
    $("pause").addEventListener("click", togglePause);
    $("theme").addEventListener("click", cycleTheme);
    $("sign-out").addEventListener("click", async () => {
      try { await api("POST", "/dashboard/logout"); } catch (_) { /* signed out either way */ }
      sessionStorage.removeItem(SESSION_KEY);
      showSignedOut();
    });
    $("peer-filter").addEventListener("input", (e) => { state.peerFilter = e.target.value; markDirty("peers"); });
    $("message-peer").addEventListener("input", (e) => { state.messagePeer = e.target.value; markDirty("messages"); });
    for (const chip of document.querySelectorAll("#kind-filter button")) {
      chip.addEventListener("click", () => {
        const on = chip.getAttribute("aria-pressed") !== "true";
        chip.setAttribute("aria-pressed", String(on));
        if (on) state.kinds.add(chip.dataset.kind); else state.kinds.delete(chip.dataset.kind);
        markDirty("messages");
      });
    }
    $("composer").addEventListener("submit", send);
    $("panes-refresh").addEventListener("click", loadPanes);
    $("trace-close").addEventListener("click", closeTrace);
    $("trace").addEventListener("click", (e) => { if (e.target === $("trace")) closeTrace(); });
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeTrace(); });
    document.addEventListener("keydown", onQuestionKey);
    setInterval(tickCountdowns, 1000);
    setInterval(() => { if (state.peersStale && state.signedIn) loadPeers(); }, PEERS_REFRESH_MS);
    try {
      const session = await api("GET", "/dashboard/session");
      state.signedIn = true;
      $("node-name").textContent = `node ${session.node}`;
      $("app").hidden = false;
      connect();
    } catch (_) {
      showSignedOut();
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
