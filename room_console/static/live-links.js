/* The venues' links on the chair's queue panel: a case paused because its venue's link was lost (the
 * scheduler's link watch: "Mất kết nối điểm cầu …, vụ việc tạm dừng"; only the chair's «Tiếp tục» resumes
 * it), any other pause, and the venues whose link is down (their numbers are held out of the call order
 * until they are back). Drawn from the queue the panel shows (live-queue.js dispatches
 * "tiepdan:queue-state" with GET /api/sessions/{room}/queue): ``paused``, ``link_lost``,
 * ``unavailable_venues``. Numbers and venues only, never a name. Plain JavaScript, no build step.
 */
'use strict';

(function () {
  const root = document.getElementById('live');
  const panel = root && root.querySelector('[data-testid="queue-panel"]');
  if (!root || !panel) return;
  const messages = JSON.parse(root.dataset.messages);
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

  function showDown(q) {
    if (!down) return;
    const venues = q.unavailable_venues || [];
    down.replaceChildren(...venues.map((v) => {
      const li = document.createElement('li');
      li.textContent = T('live.queue.venue_down', { venue: v.venue_name || v.venue });
      li.dataset.venue = v.venue;
      return li;
    }));
    down.hidden = venues.length === 0;
  }

  root.addEventListener('tiepdan:queue-state', (event) => {
    const q = event.detail;
    if (!q) return;
    showPause(q);
    showDown(q);
  });
})();
