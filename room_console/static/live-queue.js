/* The queue controls of the live session page (grant call_queue: the chair, the secretary): the number
 * being received, how many wait, the next numbers and the reorder reasons, from
 * GET /api/sessions/{room}/queue; the buttons send POST /api/sessions/{room}/queue/{action} with the
 * queue version shown (expected_version), so a stale page is refused (409) and reloads. The panel reloads
 * when the room tells of a queue change (live.js dispatches "tiepdan:queue") and every few seconds.
 * Numbers and venues only, never a name. Plain JavaScript, no build step.
 */
'use strict';

(function () {
  const root = document.getElementById('live');
  const panel = root && root.querySelector('[data-testid="queue-panel"]');
  if (!root || !panel) return;
  const config = JSON.parse(root.dataset.config);
  const messages = JSON.parse(root.dataset.messages);
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : '';
  const base = '/api/sessions/' + encodeURIComponent(config.room) + '/queue';
  const POLL_MS = 5000;
  const NEXT_SHOWN = 5;

  function T(key, params) {
    let text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
    if (params) {
      for (const [name, value] of Object.entries(params)) text = text.split('{' + name + '}').join(String(value));
    }
    return text;
  }

  const $ = (selector) => panel.querySelector(selector);
  const el = {
    current: $('[data-testid="queue-current"]'),
    count: $('[data-testid="queue-waiting-count"]'),
    next: $('[data-testid="queue-next"]'),
    reorders: $('[data-testid="queue-reorders"]'),
    message: $('[data-testid="queue-message"]'),
    buttons: Array.from(panel.querySelectorAll('[data-queue-action]')),
  };
  const state = { queue: null, busy: false, loading: null, requests: 0 };

  function label(t) {
    const text = T('live.call.ticket', { ticket: t.ticket_no, venue: t.venue_name || t.venue });
    // a denunciation's handling chosen at the desk: only the chair's and the secretary's answer carries it
    return t.handling ? text + ' — ' + T('live.queue.handling', { handling: t.handling.label }) : text;
  }

  function show(text) {
    el.message.textContent = text || '';
  }

  function item(text, ticketNo) {
    const li = document.createElement('li');
    li.textContent = text;
    if (ticketNo) li.dataset.ticket = String(ticketNo);
    return li;
  }

  function render() {
    const q = state.queue;
    panel.dataset.state = q ? (q.closed ? 'closed' : q.paused ? 'paused' : q.current ? 'calling' : 'idle') : 'loading';
    panel.dataset.version = q ? String(q.version) : '';
    if (!q) {
      for (const b of el.buttons) b.disabled = true;
      return;
    }
    el.current.textContent = q.current ? label(q.current) : T('live.queue.none');
    el.current.dataset.ticket = q.current ? String(q.current.ticket_no) : '';
    el.count.textContent = String(q.waiting_count);
    el.next.replaceChildren(...(q.waiting.length
      ? q.waiting.slice(0, NEXT_SHOWN).map((t) => item(label(t) + (t.reorder ? ' (' + t.reorder.label + ')' : ''), t.ticket_no))
      : [item(q.closed ? T('live.queue.closed') : T('live.queue.next_empty'))]));
    el.reorders.replaceChildren(...q.reorders.map((r) => item(T('live.queue.reorder', {
      ticket: r.ticket_no, reason: r.label,
    }), r.ticket_no)), ...(q.in_person || []).map((t) => item(T('live.queue.in_person', {
      ticket: t.ticket_no, venue: t.venue_name || t.venue,
    }), t.ticket_no)));
    for (const b of el.buttons) b.disabled = state.busy || !q.actions[b.dataset.queueAction];
    // the recall picker (live-recall.js) and the case dossier (live-dossier.js) follow the queue drawn here
    root.dispatchEvent(new CustomEvent('tiepdan:queue-state', { detail: q }));
  }

  async function load() {
    if (state.loading) return state.loading;
    state.loading = (async () => {
      try {
        const response = await fetch(base, { credentials: 'same-origin', cache: 'no-store' });
        if (response.ok) {
          state.queue = await response.json();
        } else {
          show(T('live.queue.unreachable'));
        }
      } catch (err) {
        show(T('live.queue.unreachable'));
      } finally {
        state.loading = null;
        render();
      }
    })();
    return state.loading;
  }

  async function act(action, buttonText) {
    if (state.busy || !state.queue) return;
    state.busy = true;
    render();
    const body = { expected_version: state.queue.version };
    if (action === 'pause') body.reason = 'chair';
    let response = null;
    try {
      state.requests += 1;
      response = await fetch(base + '/' + action, {
        method: 'POST', credentials: 'same-origin', cache: 'no-store',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
        body: JSON.stringify(body),
      });
      const answer = await response.json().catch(() => ({}));
      if (response.ok) {
        state.queue = answer;
        show(T('live.queue.done', { action: buttonText }));
      } else if (response.status === 409 && answer.error === 'stale_version') {
        show(T('live.queue.conflict'));
        panel.dataset.conflict = 'true';
        await load();
      } else {
        show(T('live.queue.failed', { message: answer.message || response.status }));
        await load();
      }
    } catch (err) {
      show(T('live.queue.unreachable'));
    } finally {
      state.busy = false;
      render();
    }
  }

  panel.addEventListener('click', (event) => {
    const button = event.target.closest('[data-queue-action]');
    if (!button || button.disabled) return;
    act(button.dataset.queueAction, button.textContent.trim());
  });
  root.addEventListener('tiepdan:queue', () => { load(); });
  window.setInterval(() => {
    if (!document.hidden && !state.busy) load();
  }, POLL_MS);
  window.TiepdanQueue = { state, load };
  load();
})();
