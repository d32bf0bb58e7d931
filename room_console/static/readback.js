// The read-back of a case's minutes (templates/minutes/_readback.html): on the called venue's live page it shows
// the version read back and takes the citizen's signature drawn on a canvas (sent as a PNG with the hash of what
// was shown); on the chair's page it approves the confirmed minutes; on the secretary's minutes page it reads the
// current version back and notes a verbal confirmation with the recording time. The server decides every state
// (GET /api/minutes-approval/...); this script polls it every 3 s and sets texts as text, never as HTML.
"use strict";

(function () {
  const panel = document.querySelector("[data-readback]");
  if (!panel) { return; }
  const messages = JSON.parse(panel.dataset.messages || "{}");
  const sessionApi = panel.dataset.sessionApi || "";
  let caseApi = panel.dataset.caseApi || "";
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const $ = function (id) { return panel.querySelector('[data-testid="' + id + '"]'); };
  const stateLine = $("readback-state");
  const caseLine = $("readback-case");
  const content = $("readback-content");
  const problems = $("readback-problems");
  const message = $("readback-message");
  const signBox = $("readback-sign");
  const verbalBox = $("readback-verbal");
  const approveBox = $("readback-approve");
  const canvas = $("readback-canvas");
  const FIELDS = ["citizen_request", "local_report", "discussion", "conclusion"];
  let current = null;
  let drawn = false;
  let busy = false;
  let signingFor = null;  // the read-back the canvas is for: a signature is never carried to another one

  function say(text) { message.textContent = text || ""; }

  function clearCanvas() {
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    drawn = false;
  }

  function stateText(state) {
    let text = messages["state_" + state.state] || state.state;
    if (state.changed_since_readback && state.state !== "recorded") { text += " " + messages.changed; }
    if (state.confirmation === "signature") { text += " · " + messages.signed; }
    if (state.confirmation === "verbal") { text += " · " + messages.verbal + " " + state.verbal_time; }
    if (state.case_closed && state.state !== "recorded") { text += " · " + messages.case_closed; }
    return text;
  }

  function renderContent(shown) {
    content.replaceChildren();
    if (!shown) { return; }
    FIELDS.forEach(function (name) {
      if (!shown[name]) { return; }
      const dt = document.createElement("dt");
      dt.textContent = messages[name] || name;
      const dd = document.createElement("dd");
      dd.textContent = shown[name];
      content.append(dt, dd);
    });
    (shown.directives || []).forEach(function (d, i) {
      const dt = document.createElement("dt");
      dt.textContent = (messages.directive || "") + " " + (i + 1);
      const dd = document.createElement("dd");
      dd.textContent = d.content + (d.deadline ? " (" + d.deadline.split("-").reverse().join("/") + ")" : "");
      content.append(dt, dd);
    });
  }

  function renderProblems(list) {
    problems.replaceChildren();
    (list || []).forEach(function (p) {
      const li = document.createElement("li");
      li.textContent = p.message;
      problems.append(li);
    });
    problems.hidden = !list || list.length === 0;
  }

  function render(state, shown) {
    current = state;
    stateLine.textContent = stateText(state);
    caseLine.textContent = (messages.case || "") + " " + (state.tracking_code || state.case) + " · " +
      (messages.hash || "") + " " + (state.readback_sha256 || state.draft_sha256).slice(0, 12);
    if (shown !== undefined) { renderContent(shown); }
    if (canvas && state.readback_sha256 !== signingFor) {
      signingFor = state.readback_sha256;
      clearCanvas();
      say("");
    }
    renderProblems(state.problems);
    const open = state.draft_state === "open";
    const readBack = open && state.readback_sha256 && !state.changed_since_readback;
    if (signBox) { signBox.hidden = !(readBack && state.state === "readback"); }
    if (verbalBox) { verbalBox.hidden = !(readBack && state.state === "readback"); }
    if (approveBox) { approveBox.hidden = !(open && state.state === "confirmed" && !state.changed_since_readback); }
  }

  async function refresh() {
    try {
      if (sessionApi) {
        const response = await fetch(sessionApi, { credentials: "same-origin", cache: "no-store" });
        if (!response.ok) { return; }
        const body = await response.json();
        panel.hidden = !body.readback;
        if (!body.readback) { current = null; caseApi = ""; return; }
        caseApi = sessionApi + "/" + encodeURIComponent(body.readback.case);
        render(body.readback, body.readback.content);
      } else if (caseApi) {
        const response = await fetch(caseApi, { credentials: "same-origin", cache: "no-store" });
        if (response.ok) { render(await response.json()); }
      }
    } catch (error) {
      say(messages.failed);
    }
  }

  async function send(path, body, contentType) {
    if (busy || !caseApi) { return; }
    busy = true;
    try {
      const response = await fetch(caseApi + path, {
        method: "POST", credentials: "same-origin", cache: "no-store",
        headers: { "Content-Type": contentType || "application/json", "X-CSRF-Token": csrf },
        body: contentType ? body : JSON.stringify(body),
      });
      const answer = await response.json().catch(function () { return {}; });
      if (response.ok) {
        say(messages.sent);
        render(answer);
      } else {
        say(answer.message || messages.failed);
        if (answer.errors) { renderProblems(answer.errors); }
      }
    } catch (error) {
      say(messages.failed);
    } finally {
      busy = false;
      refresh();
    }
  }

  if (canvas) {
    const pen = canvas.getContext("2d");
    let last = null;
    const point = function (event) {
      const box = canvas.getBoundingClientRect();
      return [(event.clientX - box.left) * canvas.width / box.width, (event.clientY - box.top) * canvas.height / box.height];
    };
    canvas.addEventListener("pointerdown", function (event) {
      canvas.setPointerCapture(event.pointerId);
      last = point(event);
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!last) { return; }
      const next = point(event);
      pen.lineWidth = 3;
      pen.lineCap = "round";
      pen.strokeStyle = "#000";
      pen.beginPath();
      pen.moveTo(last[0], last[1]);
      pen.lineTo(next[0], next[1]);
      pen.stroke();
      last = next;
      drawn = true;
    });
    ["pointerup", "pointercancel", "pointerleave"].forEach(function (name) {
      canvas.addEventListener(name, function () { last = null; });
    });
    canvas.style.touchAction = "none";
  }

  panel.addEventListener("click", function (event) {
    const button = event.target.closest("[data-readback-action]");
    if (!button) { return; }
    const action = button.dataset.readbackAction;
    if (action === "clear" && canvas) {
      clearCanvas();
    } else if (action === "sign" && canvas && current) {
      if (!drawn) { say(messages.empty_canvas); return; }
      const sha = current.readback_sha256;
      canvas.toBlob(function (blob) {
        if (blob) { send("/signature?readback=" + encodeURIComponent(sha), blob, "image/png"); }
      }, "image/png");
    } else if (action === "readback" && current) {
      send("/readback", { version: current.draft_version });
    } else if (action === "verbal" && current) {
      const input = $("readback-media-time");
      send("/verbal", { readback_sha256: current.readback_sha256, media_time: input ? input.value : "" });
    } else if (action === "approve" && current) {
      send("/approve", { confirmed_sha256: current.confirmed_sha256 });
    }
  });

  refresh();
  window.setInterval(refresh, 3000);
})();
