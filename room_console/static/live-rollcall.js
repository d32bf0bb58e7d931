/* Legal continuity on the live session page: the roll call of venues and attendees (grant call_queue: the
 * chair, the secretary) and the venues' readiness check.
 *
 * Roll call: GET/POST /api/sessions/{room}/roll-call. The form shows the roll call in force (or an empty
 * one); "Ghi điểm danh" records it with the roll call number shown (expected_roll_call_no), so a page that
 * missed another's amendment is refused (409) and reloads. One official per line: "name, position" (split
 * at the first comma). Citizens are a count, never names. After a roll call the queue panel reloads.
 *
 * Readiness (a page that publishes for its own venue: a venue operator, the chair for the main venue):
 * the round trip from the publishing connection's selected candidate pair (currentRoundTripTime) once it is
 * connected, else a signalling ping on the page's WebSocket; the bandwidth estimate
 * (availableOutgoingBitrate) when publishing; TURN: a relay-only gathering against the TURN servers the
 * room gave the page (media.ice_servers) — a relay candidate means reachable, none within 8 s unreachable,
 * no TURN server "not_configured"; camera and microphone from the page's stream or enumerateDevices().
 * POST /api/sessions/{room}/readiness. The chair's table (GET …/readiness) lists each venue's latest check.
 * Plain JavaScript, no build step; reads window.tiepdanLive (live.js) and never changes its state.
 */
'use strict';

(function () {
  const root = document.getElementById('live');
  if (!root) return;
  const config = JSON.parse(root.dataset.config);
  const messages = JSON.parse(root.dataset.messages);
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : '';
  const base = '/api/sessions/' + encodeURIComponent(config.room);
  const POLL_MS = 10000;
  const PING_TIMEOUT_MS = 5000;
  const TURN_TIMEOUT_MS = 8000;

  function T(key, params) {
    let text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
    if (params) {
      for (const [name, value] of Object.entries(params)) text = text.split('{' + name + '}').join(String(value));
    }
    return text;
  }

  function clockTime(iso) {
    if (!iso) return '';
    return new Date(iso).toLocaleTimeString('vi-VN', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  async function send(url, method, body) {
    const response = await fetch(url, {
      method, credentials: 'same-origin', cache: 'no-store',
      headers: body ? { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const answer = await response.json().catch(() => ({}));
    return { response, answer };
  }

  // -- roll call ---------------------------------------------------------------------------------------------

  const panel = root.querySelector('[data-testid="rollcall-panel"]');
  const rollCall = { data: null, busy: false, requests: 0 };

  function rollCallUi() {
    const $ = (selector) => panel.querySelector(selector);
    return {
      status: $('[data-testid="rollcall-status"]'),
      form: $('[data-testid="rollcall-form"]'),
      save: $('[data-testid="rollcall-save"]'),
      history: $('[data-testid="rollcall-history"]'),
      message: $('[data-testid="rollcall-message"]'),
      venues: Array.from(panel.querySelectorAll('fieldset[data-venue]')),
    };
  }

  function renderRollCall(ui) {
    const data = rollCall.data;
    panel.dataset.state = data ? (data.required ? 'required' : 'recorded') : 'loading';
    panel.dataset.rollCallNo = data ? String(data.roll_call_no) : '';
    ui.save.disabled = rollCall.busy || !data || !data.live;
    if (!data) return;
    ui.save.textContent = T(data.required ? 'live.rollcall.save_first' : 'live.rollcall.save_amend');
    const present = data.venues.filter((v) => v.present).length;
    ui.status.textContent = data.required ? T('live.rollcall.required') : T('live.rollcall.recorded', {
      no: data.roll_call_no, time: clockTime(data.recorded_at), present, total: data.venues.length,
    });
    for (const fieldset of ui.venues) {
      const venue = data.venues.find((v) => v.venue === fieldset.dataset.venue);
      if (!venue || fieldset.dataset.touched === 'true') continue;
      fieldset.querySelector('[name="present"]').checked = !!venue.present;
      fieldset.querySelector('[name="citizens"]').value = String(venue.citizens || 0);
      fieldset.querySelector('[name="officials"]').value = venue.officials
        .map((o) => o.name + ', ' + o.position).join('\n');
    }
    ui.history.replaceChildren(...data.history.slice().reverse().map((h) => {
      const li = document.createElement('li');
      li.textContent = T('live.rollcall.history', {
        no: h.roll_call_no, time: clockTime(h.recorded_at),
        absent: h.absent.length ? h.absent.map(venueName).join(', ') : T('live.rollcall.none_absent'),
      });
      return li;
    }));
  }

  function venueName(id) {
    const venue = (config.venues || []).find((v) => v.venue === id);
    return venue ? venue.name : id;
  }

  /** The form as the API's body; throws the message of the first unreadable official line. */
  function rollCallBody(ui) {
    const venues = ui.venues.map((fieldset) => {
      const present = fieldset.querySelector('[name="present"]').checked;
      const officials = [];
      for (const raw of fieldset.querySelector('[name="officials"]').value.split('\n')) {
        const line = raw.trim();
        if (!line) continue;
        const comma = line.indexOf(',');
        if (comma <= 0 || !line.slice(comma + 1).trim()) throw new Error(T('live.rollcall.bad_official', { line }));
        officials.push({ name: line.slice(0, comma).trim(), position: line.slice(comma + 1).trim() });
      }
      const citizens = parseInt(fieldset.querySelector('[name="citizens"]').value || '0', 10);
      return {
        venue: fieldset.dataset.venue, present,
        citizens: present && Number.isFinite(citizens) ? citizens : 0,
        officials: present ? officials : [],
      };
    });
    return { expected_roll_call_no: rollCall.data ? rollCall.data.roll_call_no : 0, venues };
  }

  async function loadRollCall(ui) {
    try {
      const { response, answer } = await send(base + '/roll-call', 'GET');
      if (response.ok) rollCall.data = answer;
      else ui.message.textContent = T('live.rollcall.unreachable');
    } catch (err) {
      ui.message.textContent = T('live.rollcall.unreachable');
    }
    renderRollCall(ui);
  }

  async function saveRollCall(ui) {
    if (rollCall.busy || !rollCall.data) return;
    let body;
    try {
      body = rollCallBody(ui);
    } catch (err) {
      ui.message.textContent = err.message;
      return;
    }
    rollCall.busy = true;
    renderRollCall(ui);
    try {
      rollCall.requests += 1;
      const { response, answer } = await send(base + '/roll-call', 'POST', body);
      if (response.ok) {
        rollCall.data = answer;
        for (const fieldset of ui.venues) delete fieldset.dataset.touched;
        ui.message.textContent = T('live.rollcall.saved', { no: answer.roll_call_no });
        root.dispatchEvent(new CustomEvent('tiepdan:queue', { detail: { type: 'session.roll_call_recorded' } }));
      } else if (response.status === 409 && answer.error === 'stale_version') {
        for (const fieldset of ui.venues) delete fieldset.dataset.touched;
        ui.message.textContent = T('live.rollcall.conflict');
        await loadRollCall(ui);
      } else {
        ui.message.textContent = T('live.rollcall.failed', { message: answer.message || response.status });
      }
    } catch (err) {
      ui.message.textContent = T('live.rollcall.unreachable');
    } finally {
      rollCall.busy = false;
      renderRollCall(ui);
    }
  }

  if (panel) {
    const ui = rollCallUi();
    ui.form.addEventListener('input', (event) => {
      const fieldset = event.target.closest('fieldset[data-venue]');
      if (fieldset) fieldset.dataset.touched = 'true';
    });
    ui.form.addEventListener('submit', (event) => {
      event.preventDefault();
      saveRollCall(ui);
    });
    window.setInterval(() => {
      if (!document.hidden && !rollCall.busy) loadRollCall(ui);
    }, POLL_MS);
    loadRollCall(ui);
  }

  // -- readiness ---------------------------------------------------------------------------------------------

  const readinessPanel = root.querySelector('[data-testid="readiness-panel"]');
  const readiness = { last: null, table: null, running: false };

  /** Round trip of a ping on the page's signalling socket, in ms; null when it does not come back. */
  function signallingRtt(ws) {
    return new Promise((resolve) => {
      const id = 'readiness-' + Math.random().toString(36).slice(2, 10);
      const started = performance.now();
      const timer = window.setTimeout(() => { ws.removeEventListener('message', onMessage); resolve(null); },
        PING_TIMEOUT_MS);
      function onMessage(event) {
        let msg = null;
        try { msg = JSON.parse(event.data); } catch (err) { return; }
        if (!msg || msg.type !== 'pong' || msg.ref !== id) return;
        window.clearTimeout(timer);
        ws.removeEventListener('message', onMessage);
        resolve(performance.now() - started);
      }
      ws.addEventListener('message', onMessage);
      ws.send(JSON.stringify({ type: 'ping', id }));
    });
  }

  /** {rttMs, kbps} from the publishing connection's selected candidate pair; nulls when not connected. */
  async function mediaFigures(pc) {
    const out = { rttMs: null, kbps: null };
    if (!pc || pc.connectionState !== 'connected') return out;
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((report) => {
      if (report.type === 'transport' && report.selectedCandidatePairId) pair = stats.get(report.selectedCandidatePairId);
    });
    if (!pair) {
      stats.forEach((report) => {
        if (!pair && report.type === 'candidate-pair' && report.state === 'succeeded' && report.nominated) pair = report;
      });
    }
    if (pair && typeof pair.currentRoundTripTime === 'number') out.rttMs = pair.currentRoundTripTime * 1000;
    if (pair && typeof pair.availableOutgoingBitrate === 'number') out.kbps = Math.round(pair.availableOutgoingBitrate / 1000);
    return out;
  }

  function turnServers(iceServers) {
    const servers = [];
    for (const server of iceServers || []) {
      const urls = [].concat(server.urls || []).filter((u) => /^turns?:/.test(u));
      if (urls.length) servers.push(Object.assign({}, server, { urls }));
    }
    return servers;
  }

  /** 'reachable' when relay-only gathering yields a relay candidate, else 'unreachable'; 'not_configured'. */
  async function turnReachability(iceServers) {
    const servers = turnServers(iceServers);
    if (!servers.length) return 'not_configured';
    const pc = new RTCPeerConnection({ iceServers: servers, iceTransportPolicy: 'relay' });
    try {
      pc.createDataChannel('readiness');
      const found = new Promise((resolve) => {
        const timer = window.setTimeout(() => resolve(false), TURN_TIMEOUT_MS);
        pc.addEventListener('icecandidate', (event) => {
          if (event.candidate && / typ relay /.test(' ' + event.candidate.candidate + ' ')) {
            window.clearTimeout(timer);
            resolve(true);
          } else if (!event.candidate) {
            window.clearTimeout(timer);
            resolve(false);
          }
        });
      });
      await pc.setLocalDescription(await pc.createOffer());
      return (await found) ? 'reachable' : 'unreachable';
    } finally {
      pc.close();
    }
  }

  async function devicesFound(stream) {
    const found = { camera: false, microphone: false };
    if (stream) {
      found.camera = stream.getVideoTracks().some((t) => t.readyState === 'live');
      found.microphone = stream.getAudioTracks().some((t) => t.readyState === 'live');
    }
    if ((!found.camera || !found.microphone) && navigator.mediaDevices && navigator.mediaDevices.enumerateDevices) {
      const devices = await navigator.mediaDevices.enumerateDevices();
      found.camera = found.camera || devices.some((d) => d.kind === 'videoinput');
      found.microphone = found.microphone || devices.some((d) => d.kind === 'audioinput');
    }
    return found;
  }

  function browserName() {
    const brands = navigator.userAgentData && navigator.userAgentData.brands;
    const named = brands && brands.find((b) => !/Not.?A.?Brand/i.test(b.brand));
    if (named) return named.brand + ' ' + named.version;
    return (navigator.userAgent || '').slice(0, 200);
  }

  function figureTexts(check) {
    return {
      rtt: check.rtt_ms === null || check.rtt_ms === undefined ? T('live.readiness.unmeasured')
        : T('live.readiness.ms', { value: check.rtt_ms, source: check.rtt_source ? check.rtt_source.label : '' }),
      kbps: check.outgoing_kbps === null || check.outgoing_kbps === undefined ? T('live.readiness.unmeasured')
        : T('live.readiness.kbps', { value: check.outgoing_kbps }),
      turn: check.turn ? check.turn.label : '',
    };
  }

  async function runCheck(result) {
    const live = window.tiepdanLive;
    const ws = live && live.ws;
    if (readiness.running) return;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      result.textContent = T('live.readiness.join_first');
      return;
    }
    readiness.running = true;
    result.textContent = T('live.readiness.running');
    try {
      const media = await mediaFigures(live.publisherPc);
      let rttMs = media.rttMs;
      let source = rttMs === null ? null : 'media';
      if (rttMs === null) {
        rttMs = await signallingRtt(ws);
        source = rttMs === null ? null : 'signalling';
      }
      const [turn, devices] = await Promise.all([
        turnReachability(live.state.iceServers), devicesFound(live.state.stream),
      ]);
      const body = {
        venue: config.venue, rtt_ms: rttMs === null ? null : Math.round(rttMs * 10) / 10, rtt_source: source,
        outgoing_kbps: media.kbps, turn, camera: devices.camera, microphone: devices.microphone,
        browser: browserName(),
      };
      const { response, answer } = await send(base + '/readiness', 'POST', body);
      if (!response.ok) {
        result.textContent = T('live.readiness.failed', { message: answer.message || response.status });
        return;
      }
      readiness.last = answer;
      readinessPanel.dataset.status = answer.status;
      result.textContent = answer.status === 'ready' ? T('live.readiness.result_ready', figureTexts(answer))
        : T('live.readiness.result_not_ready', { problems: answer.problems.map((p) => p.label).join(', ') });
      if (table) loadTable();
    } catch (err) {
      result.textContent = T('live.readiness.failed', { message: String(err && err.message || err) });
    } finally {
      readiness.running = false;
    }
  }

  const table = readinessPanel && readinessPanel.querySelector('[data-testid="readiness-table"] tbody');

  function cell(text) {
    const td = document.createElement('td');
    td.textContent = text;
    return td;
  }

  function renderTable() {
    const rows = (readiness.table && readiness.table.venues) || [];
    table.replaceChildren(...rows.map((row) => {
      const tr = document.createElement('tr');
      tr.dataset.venue = row.venue;
      tr.dataset.status = row.status;
      const figures = row.status === 'not_checked' ? { rtt: '', kbps: '', turn: '' } : figureTexts(row);
      const yes = (flag) => T(flag ? 'live.readiness.yes' : 'live.readiness.no');
      const status = cell(T('live.readiness.status.' + row.status));
      if (row.problems && row.problems.length) status.title = row.problems.map((p) => p.label).join(', ');
      tr.append(cell(row.name), status, cell(figures.rtt), cell(figures.kbps), cell(figures.turn),
        cell(row.status === 'not_checked' ? '' : T('live.readiness.devices', {
          camera: yes(row.camera), microphone: yes(row.microphone),
        })), cell(clockTime(row.checked_at)));
      return tr;
    }));
  }

  async function loadTable() {
    try {
      const { response, answer } = await send(base + '/readiness', 'GET');
      if (response.ok) {
        readiness.table = answer;
        renderTable();
      }
    } catch (err) {
      // the next poll tries again
    }
  }

  if (readinessPanel) {
    const run = readinessPanel.querySelector('[data-testid="readiness-run"]');
    const result = readinessPanel.querySelector('[data-testid="readiness-result"]');
    if (run) run.addEventListener('click', () => { runCheck(result); });
    const reload = readinessPanel.querySelector('[data-testid="readiness-reload"]');
    if (reload) reload.addEventListener('click', () => { loadTable(); });
    if (table) {
      window.setInterval(() => { if (!document.hidden) loadTable(); }, POLL_MS);
      loadTable();
    }
  }

  // What the tests read (never changes the page).
  window.TiepdanRollCall = { rollCall, readiness, loadTable, signallingRtt, turnReachability };
})();
