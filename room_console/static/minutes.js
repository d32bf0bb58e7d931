// The live minutes (biên bản tiếp công dân): autosaves the secretary's form to the server while typing
// (debounced) and on leaving a field, through PUT /api/minutes/<session>/<case> with the version the page is
// based on. Each acknowledgement is shown ("Đã lưu phiên bản N lúc hh:mm:ss"). Until the server acknowledged
// it, what was typed is kept in this browser's localStorage (never the denouncer's identity: that stays in
// the page only until sealed), so a reload, a crash or a dead server loses nothing; a reload resumes from the
// server's draft and restores unsent text on top of it. When another page saved first the server answers 409
// and a banner offers to see the other version, take it, or keep this one (a deliberate overwrite).
"use strict";

(function () {
  const root = document.getElementById("minutes");
  const form = document.getElementById("minutes-form");
  if (!root || !form) { return; }
  const config = JSON.parse(root.dataset.config || "{}");
  const messages = JSON.parse(root.dataset.messages || "{}");
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const ack = root.querySelector('[data-testid="minutes-ack"]');
  const errorBox = root.querySelector('[data-testid="minutes-error"]');
  const conflictBox = root.querySelector('[data-testid="minutes-conflict"]');
  const conflictText = root.querySelector('[data-testid="conflict-text"]');
  const conflictOther = root.querySelector('[data-testid="conflict-other"]');
  const sealedLine = root.querySelector('[data-testid="identity-sealed"]');
  const TEXT_FIELDS = ["citizen_request", "prior_handling", "local_report", "discussion", "conclusion"];
  const DEBOUNCE_MS = 700;     // a pause in typing saves
  const MAX_WAIT_MS = 2000;    // and typing without a pause still saves this often
  const key = config.session + "/" + config.case;
  const pendingKey = "minutes-pending:" + key;
  const clientKey = "minutes-client:" + key;

  function msg(name, params) {
    let text = messages["minutes.js." + name] || name;
    Object.keys(params || {}).forEach(function (k) { text = text.split("{" + k + "}").join(String(params[k])); });
    return text;
  }

  function newClient() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return "c" + Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  // One id per browser tab (kept across reloads of the tab): the server lets a page follow its own saves.
  let client = sessionStorage.getItem(clientKey);
  if (!client) { client = newClient(); sessionStorage.setItem(clientKey, client); }

  const state = {
    version: config.version,   // the server version the form is based on
    inFlight: false,
    again: false,              // an edit came while a save was in flight
    timer: null,
    firstUnsaved: 0,           // when the oldest change not yet sent was made
    retryMs: 0,
    conflict: null,            // the server's version after a 409
    identityDirty: false,
    lastSent: null,
  };

  // -- the form as data ------------------------------------------------------------------------------------

  function numberOrNull(input) {
    const value = input.value.trim();
    return value === "" ? null : Number(value);
  }

  function collect() {
    const content = {
      attendees: [], directives: [], documents: [], answer: null, outcome: null, handling_direction: null,
      receipt_issued: false,
    };
    form.querySelectorAll("[data-attendees]").forEach(function (area) {
      content.attendees.push({ venue: area.dataset.attendees, people: area.value });
    });
    TEXT_FIELDS.forEach(function (name) {
      const area = form.querySelector('[data-field="' + name + '"]');
      content[name] = area ? area.value : "";
    });
    const answer = form.querySelector('input[name="answer"]:checked');
    content.answer = answer && answer.value ? answer.value : null;
    ["outcome", "handling_direction"].forEach(function (name) {
      const select = form.querySelector('[data-field="' + name + '"]');
      content[name] = select && select.value ? select.value : null;
    });
    const receipt = form.querySelector('[data-field="receipt_issued"]');
    content.receipt_issued = !!(receipt && receipt.checked);
    form.querySelectorAll('[data-row="directives"]').forEach(function (row) {
      content.directives.push({
        unit: row.querySelector('[data-key="unit"]').value,
        content: row.querySelector('[data-key="content"]').value,
        working_days: numberOrNull(row.querySelector('[data-key="working_days"]')),
      });
    });
    form.querySelectorAll('[data-row="documents"]').forEach(function (row) {
      content.documents.push({
        title: row.querySelector('[data-key="title"]').value,
        pages: numberOrNull(row.querySelector('[data-key="pages"]')),
        original: row.querySelector('[data-key="original"]').checked,
        note: row.querySelector('[data-key="note"]').value,
      });
    });
    return content;
  }

  function identity() {
    const fields = form.querySelectorAll("[data-identity]");
    if (!fields.length) { return null; }
    const value = {};
    fields.forEach(function (input) { value[input.dataset.identity] = input.value; });
    return value;
  }

  function addRow(list, templateId) {
    const template = document.getElementById(templateId);
    const target = form.querySelector('[data-list="' + list + '"]');
    target.appendChild(template.content.cloneNode(true));
    return target.lastElementChild;
  }

  function deadlineText(day) {
    if (!day) { return ""; }
    const parts = day.split("-");
    return msg("deadline", { day: parts[2] + "/" + parts[1] + "/" + parts[0] });
  }

  function apply(content) {
    form.querySelectorAll("[data-attendees]").forEach(function (area) {
      const found = (content.attendees || []).find(function (a) { return a.venue === area.dataset.attendees; });
      area.value = found ? found.people : "";
    });
    TEXT_FIELDS.forEach(function (name) {
      const area = form.querySelector('[data-field="' + name + '"]');
      if (area) { area.value = content[name] || ""; }
    });
    form.querySelectorAll('input[name="answer"]').forEach(function (radio) {
      radio.checked = radio.value === (content.answer || "");
    });
    ["outcome", "handling_direction"].forEach(function (name) {
      const select = form.querySelector('[data-field="' + name + '"]');
      if (select) { select.value = content[name] || ""; }
    });
    const receipt = form.querySelector('[data-field="receipt_issued"]');
    if (receipt) { receipt.checked = !!content.receipt_issued; }
    form.querySelectorAll('[data-row="directives"], [data-row="documents"]').forEach(function (row) { row.remove(); });
    (content.directives || []).forEach(function (d) {
      const row = addRow("directives", "directive-row");
      const unit = row.querySelector('[data-key="unit"]');
      if (d.unit && !Array.from(unit.options).some(function (o) { return o.value === d.unit; })) {
        unit.appendChild(new Option(d.unit, d.unit));
      }
      unit.value = d.unit || "";
      row.querySelector('[data-key="content"]').value = d.content || "";
      row.querySelector('[data-key="working_days"]').value = d.working_days == null ? "" : d.working_days;
      row.querySelector("[data-deadline]").textContent = deadlineText(d.deadline);
    });
    (content.documents || []).forEach(function (doc) {
      const row = addRow("documents", "document-row");
      row.querySelector('[data-key="title"]').value = doc.title || "";
      row.querySelector('[data-key="pages"]').value = doc.pages == null ? "" : doc.pages;
      row.querySelector('[data-key="original"]').checked = !!doc.original;
      row.querySelector('[data-key="note"]').value = doc.note || "";
    });
    counters();
  }

  function showDeadlines(content) {
    const rows = form.querySelectorAll('[data-row="directives"]');
    (content.directives || []).forEach(function (d, i) {
      if (rows[i]) { rows[i].querySelector("[data-deadline]").textContent = deadlineText(d.deadline); }
    });
  }

  function counters() {
    TEXT_FIELDS.forEach(function (name) {
      const area = form.querySelector('[data-field="' + name + '"]');
      const counter = form.querySelector('[data-counter="' + name + '"]');
      if (!area || !counter) { return; }
      const over = area.value.length > config.maxText;
      counter.hidden = !over;
      counter.textContent = over ? msg("too_long", { count: area.value.length, max: config.maxText }) : "";
    });
  }

  // -- what is kept locally until acknowledged --------------------------------------------------------------

  function keepLocally() {
    try {
      localStorage.setItem(pendingKey, JSON.stringify({ base: state.version, content: collect(), at: Date.now() }));
    } catch (e) {
      // storage full or disabled: the server copy is then the only one; nothing else to do here
    }
  }

  function localPending() {
    try { return JSON.parse(localStorage.getItem(pendingKey) || "null"); } catch (e) { return null; }
  }

  // -- saving -----------------------------------------------------------------------------------------------

  function setAck(text, version) {
    ack.textContent = text;
    if (version != null) { ack.dataset.version = String(version); }
  }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  function schedule(delay) {
    if (!config.writable || state.conflict) { return; }
    const now = Date.now();
    if (!state.firstUnsaved) { state.firstUnsaved = now; }
    const wait = Math.max(0, Math.min(delay, state.firstUnsaved + MAX_WAIT_MS - now));
    clearTimeout(state.timer);
    state.timer = setTimeout(save, wait);
  }

  function changed() {
    keepLocally();
    counters();
    if (!state.conflict) { setAck(msg("pending"), null); }
    schedule(DEBOUNCE_MS);
  }

  async function save() {
    clearTimeout(state.timer);
    if (!config.writable || state.conflict) { return; }
    if (state.inFlight) { state.again = true; return; }
    const content = collect();
    const body = { base_version: state.version, client: client, content: content };
    const sendingIdentity = state.identityDirty;
    if (sendingIdentity) { body.identity = identity(); }
    const sent = JSON.stringify(content);
    state.inFlight = true;
    state.firstUnsaved = 0;
    state.again = false;
    let response = null;
    try {
      response = await fetch(config.api, {
        method: "PUT", credentials: "same-origin", cache: "no-store",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body),
      });
    } catch (e) {
      response = null;
    }
    state.inFlight = false;
    if (response === null || response.status >= 500) {
      state.retryMs = Math.min(state.retryMs ? state.retryMs * 2 : 1000, 5000);
      showError(msg("retry"));
      schedule(state.retryMs);
      return;
    }
    state.retryMs = 0;
    let answer = {};
    try { answer = await response.json(); } catch (e) { answer = {}; }
    if (response.ok) {
      state.version = answer.version;
      if (sendingIdentity) { state.identityDirty = false; }
      if (answer.sealed_handle && sealedLine) { sealedLine.textContent = msg("sealed", { handle: answer.sealed_handle }); }
      showError("");
      setAck(msg("ack", { version: answer.version, time: answer.saved_time }), answer.version);
      showDeadlines(answer.content || {});
      if (JSON.stringify(collect()) === sent && !state.again) {
        try { localStorage.removeItem(pendingKey); } catch (e) { /* nothing kept */ }
      } else {
        keepLocally();  // typed while saving: still pending, now on the new base
        schedule(0);
      }
      return;
    }
    if (response.status === 409 && answer.current) {
      showConflict(answer.current, msg("conflict", {
        name: answer.current.saved_by_name, version: answer.current.version, time: answer.current.saved_time,
      }));
      return;
    }
    showError(msg("error", { message: answer.message || response.statusText }));
  }

  // -- conflicts --------------------------------------------------------------------------------------------

  function showConflict(current, text) {
    state.conflict = current;
    clearTimeout(state.timer);
    conflictText.textContent = text;
    conflictOther.hidden = true;
    conflictOther.textContent = "";
    conflictBox.hidden = false;
    showError("");
  }

  function renderOther(current) {
    conflictOther.textContent = "";
    const title = document.createElement("p");
    title.textContent = msg("other_title", { version: current.version, name: current.saved_by_name,
                                             time: current.saved_time });
    conflictOther.appendChild(title);
    const content = current.content || {};
    TEXT_FIELDS.forEach(function (name) {
      const label = form.querySelector('label[for="field-' + name + '"]');
      const head = document.createElement("h3");
      head.textContent = label ? label.textContent : name;
      const text = document.createElement("pre");
      text.className = "minutes-other";
      text.textContent = content[name] || "";
      conflictOther.appendChild(head);
      conflictOther.appendChild(text);
    });
    conflictOther.hidden = false;
  }

  function fetchCurrent() {
    return fetch(config.api, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (draft) {
      if (!draft) { return null; }
      return { version: draft.version, content: draft.content, saved_by_name: draft.updated_by_name,
               saved_time: draft.saved_time };
    });
  }

  root.addEventListener("click", function (event) {
    const button = event.target.closest("[data-action]");
    if (!button) { return; }
    const action = button.dataset.action;
    if (action === "conflict-show" && state.conflict) {
      renderOther(state.conflict);
    } else if (action === "conflict-take" && state.conflict) {
      const current = state.conflict;
      state.conflict = null;
      conflictBox.hidden = true;
      state.version = current.version;
      apply(current.content || {});
      try { localStorage.removeItem(pendingKey); } catch (e) { /* nothing kept */ }
      setAck(msg("ack", { version: current.version, time: current.saved_time }), current.version);
    } else if (action === "conflict-keep" && state.conflict) {
      state.version = state.conflict.version;  // a deliberate overwrite of the version just shown
      state.conflict = null;
      conflictBox.hidden = true;
      keepLocally();
      save();
    } else if (action === "add-row") {
      addRow(button.dataset.target, button.dataset.template);
      changed();
    } else if (action === "remove-row") {
      const row = button.closest("[data-row]");
      if (row) { row.remove(); changed(); }
    }
  });

  // -- events -----------------------------------------------------------------------------------------------

  form.addEventListener("input", function (event) {
    if (event.target.dataset && event.target.dataset.identity) {
      state.identityDirty = true;
      if (!state.conflict) { setAck(msg("pending"), null); }
      schedule(DEBOUNCE_MS);
      return;
    }
    changed();
  });
  form.addEventListener("change", function (event) {
    if (event.target.dataset && event.target.dataset.identity) { return; }
    changed();
  });
  form.addEventListener("focusout", function () {
    if (!state.conflict && (localPending() || state.identityDirty)) { schedule(0); }
  });
  form.addEventListener("submit", function (event) { event.preventDefault(); save(); });
  window.addEventListener("beforeunload", function (event) {
    if (state.identityDirty) {  // the identity is never kept locally: leaving now would lose it
      event.preventDefault();
      event.returnValue = msg("leave");
    }
  });

  // -- resuming after a reload ------------------------------------------------------------------------------

  counters();
  const pending = localPending();
  if (pending && config.writable) {
    if (JSON.stringify(pending.content) === JSON.stringify(collect())) {
      localStorage.removeItem(pendingKey);
    } else if (pending.base === config.version || config.client === client) {
      apply(pending.content);
      setAck(msg("restored"), null);
      if (config.client === client) { state.version = pending.base; }  // its own saves follow its base
      schedule(0);
    } else {
      apply(pending.content);  // shown, not saved: the server moved on under another page
      fetchCurrent().then(function (current) {
        if (current) {
          showConflict(current, msg("local_conflict", { base: pending.base, version: current.version,
                                                        name: current.saved_by_name, time: current.saved_time }));
        }
      });
    }
  }

  // -- a closed segment (phiên kín) asked from the minutes --------------------------------------------------
  // The same request as the live page's: a short connection to the live room (/ws, docs/protocol.md) that
  // joins, sends closed_segment.request{venue} and leaves once the room shows it requested. The chair confirms
  // it on the live page, as always.
  const cs = root.querySelector('[data-testid="minutes-cs"]');
  if (cs) {
    const csButton = cs.querySelector('[data-action="cs-request"]');
    const csVenue = cs.querySelector('[data-testid="minutes-cs-venue"]');
    const csStatus = cs.querySelector('[data-testid="minutes-cs-status"]');
    const csText = function (name, state) {
      csStatus.textContent = msg(name);
      csStatus.dataset.state = state;
    };
    csButton.addEventListener("click", async function () {
      const venue = csVenue.value;
      csButton.disabled = true;
      csText("cs_sending", "sending");
      let socket = null;
      const finish = function (name, stateName) {
        csText(name, stateName);
        csButton.disabled = false;
        if (socket && socket.readyState === WebSocket.OPEN) {
          socket.send(JSON.stringify({ type: "leave" }));
        }
        socket = null;
      };
      let response;
      try {
        response = await fetch("/api/live/connect-ticket", {
          method: "POST", credentials: "same-origin", cache: "no-store",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify({ room: config.session }),
        });
      } catch (err) {
        finish("cs_failed", "failed");
        return;
      }
      if (!response.ok) {
        finish(response.status === 404 ? "cs_no_room" : "cs_failed", "failed");
        return;
      }
      const ticket = (await response.json()).connect_ticket;
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      socket = new WebSocket(scheme + "//" + location.host + "/ws?room=" + encodeURIComponent(config.session) +
                             "&connect=" + encodeURIComponent(ticket));
      const ws = socket;
      const timer = setTimeout(function () { if (socket === ws) { finish("cs_failed", "failed"); } }, 15000);
      ws.addEventListener("open", function () {
        ws.send(JSON.stringify({ type: "join", protocol: 1, id: "minutes-join" }));
      });
      ws.addEventListener("message", function (event) {
        if (socket !== ws) { return; }
        let m;
        try { m = JSON.parse(event.data); } catch (err) { return; }
        const shown = function (segment) {
          if (!segment || segment.venue !== venue) { return false; }
          clearTimeout(timer);
          finish(segment.state === "active" ? "cs_active" : "cs_requested", segment.state);
          return true;
        };
        if (m.type === "welcome") {
          if (m.status !== "admitted") { clearTimeout(timer); finish("cs_lobby", "failed"); return; }
          if (shown(m.room ? m.room.closed_segment : null)) { return; }
          ws.send(JSON.stringify({ type: "closed_segment.request", venue: venue, id: "minutes-cs" }));
        } else if (m.type === "closed_segment.changed") {
          shown(m.closed_segment);
        } else if (m.type === "error" && (m.ref === "minutes-cs" || m.ref === "minutes-join")) {
          clearTimeout(timer);
          csText("cs_failed", "failed");
          csStatus.textContent = m.message || msg("cs_failed");
          csButton.disabled = false;
          ws.send(JSON.stringify({ type: "leave" }));
          socket = null;
        }
      });
      ws.addEventListener("close", function () {
        if (socket === ws) { clearTimeout(timer); finish("cs_failed", "failed"); }
      });
    });
  }
})();
