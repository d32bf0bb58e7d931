/* The venues' links on the chair's queue panel: a case paused because its venue's link was lost (the
 * scheduler's link watch: "Mất kết nối điểm cầu …, vụ việc tạm dừng"; only the chair's «Tiếp tục» resumes
 * it), any other pause, and the venues whose link is down (their numbers are held out of the call order
 * until they are back). Drawn from the queue the panel shows (live-queue.js dispatches
 * "tiepdan:queue-state" with GET /api/sessions/{room}/queue): ``paused``, ``link_lost``,
 * ``unavailable_venues``. Numbers and venues only, never a name. Plain JavaScript, no build step.
 *
 * The chair (config.moderate) gets, beside each venue down, «Điểm cầu đã kết nối lại»: when the chair sees
 * the venue is fine, POST /api/sessions/{room}/queue/venues/{venue}/back (with the queue version shown)
 * puts its numbers back in the call order; the server audits who did it and refuses anyone else. The
 * panel then reloads (live-queue.js listens for "tiepdan:queue"); a paused case still waits for «Tiếp tục».
 */
'use strict';

(function () {
  const root = document.getElementById('live');
  const panel = root && root.querySelector('[data-testid="queue-panel"]');
  if (!root || !panel) return;
  const messages = JSON.parse(root.dataset.messages);
  const config = JSON.parse(root.dataset.config);
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : '';
  const message = panel.querySelector('[data-testid="queue-message"]');
  let version = null;
  let busy = false;
  const pause = panel.querySelector('[data-testid="queue-pause"]');
  const down = panel.querySelector('[data-testid="queue-unavailable"]');

  function T(key, params) {
    let text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
    if (params) {
      for (const [name, value] of Object.entries(params)) text = text.split('{' + name + '}').join(String(value));
    }
    return text;
  }

  function showPause(q) {
    if (!pause) return;
    const current = q.current;
    let text = '';
    if (q.paused && current) {
      text = q.link_lost
        ? T('live.queue.link_lost', { venue: current.venue_name || current.venue })
        : T('live.queue.paused', { ticket: current.ticket_no });
    }
    pause.textContent = text;
    pause.className = 'notice ' + (q.link_lost ? 'notice--error' : 'notice--info');
    pause.hidden = !text;
    pause.dataset.reason = q.paused ? (q.link_lost ? 'link_lost' : 'paused') : '';
  }

  function say(text) {
    if (message) message.textContent = text;
  }

  async function venueBack(v, button) {
    if (busy) return;
    busy = true;
    button.disabled = true;
    const name = v.venue_name || v.venue;
    const url = '/api/sessions/' + encodeURIComponent(config.room) + '/queue/venues/'
      + encodeURIComponent(v.venue) + '/back';
    try {
      const response = await fetch(url, {
        method: 'POST', credentials: 'same-origin', cache: 'no-store',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
        body: JSON.stringify(version === null ? {} : { expected_version: version }),
      });
      const answer = await response.json().catch(() => ({}));
      say(response.ok ? T('live.queue.venue_back_done', { venue: name })
        : T('live.queue.failed', { message: answer.message || response.status }));
    } catch (err) {
      say(T('live.queue.unreachable'));
    } finally {
      busy = false;
      root.dispatchEvent(new CustomEvent('tiepdan:queue'));  // the panel reloads the queue either way
    }
  }

  function showDown(q) {
    if (!down) return;
    const venues = q.unavailable_venues || [];
    down.replaceChildren(...venues.map((v) => {
      const li = document.createElement('li');
      li.dataset.venue = v.venue;
      const text = document.createElement('span');
      text.textContent = T('live.queue.venue_down', { venue: v.venue_name || v.venue });
      li.append(text);
      if (config.moderate && !q.closed) {
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'button button--small';
        button.setAttribute('data-testid', 'queue-venue-back');
        button.textContent = T('live.queue.venue_back');
        button.title = T('live.queue.venue_back_title', { venue: v.venue_name || v.venue });
        button.disabled = busy;
        button.addEventListener('click', () => { venueBack(v, button); });
        li.append(' ', button);
      }
      return li;
    }));
    down.hidden = venues.length === 0;
  }

  root.addEventListener('tiepdan:queue-state', (event) => {
    const q = event.detail;
    if (!q) return;
    version = typeof q.version === 'number' ? q.version : null;
    showPause(q);
    showDown(q);
  });
})();
