/* The recall picker of the chair's queue panel: the tickets passed over (a no-show sent to the end, a
 * deferred case: what schedules.queue lets the chair call again) listed by number and venue, never a
 * name, each with a "Gọi lại" button that sends POST /api/sessions/{room}/queue/recall with that
 * ticket_no and the queue version shown. Drawn from the queue the panel loaded (live-queue.js dispatches
 * "tiepdan:queue-state" each time it draws), so it follows every change of the queue; after a recall the
 * panel reloads ("tiepdan:queue"). Plain JavaScript, no build step.
 */
'use strict';

(function () {
  const root = document.getElementById('live');
  const picker = root && root.querySelector('[data-testid="recall-picker"]');
  if (!root || !picker) return;
  const config = JSON.parse(root.dataset.config);
  const messages = JSON.parse(root.dataset.messages);
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : '';
  const url = '/api/sessions/' + encodeURIComponent(config.room) + '/queue/recall';
  const list = picker.querySelector('[data-testid="recall-list"]');
  const note = picker.querySelector('[data-testid="recall-message"]');
  const state = { queue: null, busy: false };

  function T(key, params) {
    let text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
    if (params) {
      for (const [name, value] of Object.entries(params)) text = text.split('{' + name + '}').join(String(value));
    }
    return text;
  }

  function idle(q) {
    return !q.closed && !q.paused && !q.current;
  }

  function render() {
    const q = state.queue;
    const tickets = q ? q.passed_over : [];
    picker.dataset.count = String(tickets.length);
    if (!tickets.length) {
      const li = document.createElement('li');
      li.textContent = T('live.recall.empty');
      list.replaceChildren(li);
      return;
    }
    list.replaceChildren(...tickets.map((t) => {
      const li = document.createElement('li');
      li.dataset.ticket = String(t.ticket_no);
      const text = document.createElement('span');
      text.textContent = T('live.recall.item', { ticket: t.ticket_no, venue: t.venue_name || t.venue, status: t.status.label });
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'button button--small';
      button.textContent = T('live.recall.call');
      button.setAttribute('aria-label', T('live.recall.call_label', { ticket: t.ticket_no }));
      button.dataset.recallTicket = String(t.ticket_no);
      button.dataset.testid = 'recall-ticket';
      button.disabled = state.busy || !idle(q);
      if (!idle(q)) button.title = T('live.recall.idle_only');
      li.append(text, button);
      return li;
    }));
  }

  async function recall(ticketNo) {
    if (state.busy || !state.queue) return;
    state.busy = true;
    render();
    try {
      const response = await fetch(url, {
        method: 'POST', credentials: 'same-origin', cache: 'no-store',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
        body: JSON.stringify({ expected_version: state.queue.version, ticket_no: ticketNo }),
      });
      const answer = await response.json().catch(() => ({}));
      if (response.ok) {
        state.queue = answer;
        note.textContent = T('live.recall.done', { ticket: ticketNo });
      } else if (response.status === 409 && answer.error === 'stale_version') {
        note.textContent = T('live.queue.conflict');
      } else {
        note.textContent = T('live.queue.failed', { message: answer.message || response.status });
      }
    } catch (err) {
      note.textContent = T('live.queue.unreachable');
    } finally {
      state.busy = false;
      render();
      root.dispatchEvent(new CustomEvent('tiepdan:queue', { detail: { type: 'recall' } }));
    }
  }

  picker.addEventListener('click', (event) => {
    const button = event.target.closest('[data-recall-ticket]');
    if (!button || button.disabled) return;
    recall(Number(button.dataset.recallTicket));
  });
  root.addEventListener('tiepdan:queue-state', (event) => {
    if (!event.detail) return;
    state.queue = event.detail;
    render();
  });
  window.TiepdanRecall = { state };
})();
