/* The queue board (bảng hiển thị số thứ tự): one EventSource on the board's event stream (room_console
 * views/board.py). ``board`` messages carry the whole board (a snapshot first, then one after every change),
 * ``call`` the number just called (shown at once; this venue's screen plays the chime and the announcement),
 * ``end`` the end of the session, ``reconnect`` a request to connect again (too slow, or the server stops).
 * The browser reconnects by itself after a network error; when the stream is refused the page asks the
 * snapshot URL why (401: sign in again; 403/404: not shown) and tries again later. Numbers, venue names and
 * reasons only: the server never sends a name.
 */
'use strict';

(function () {
  const root = document.getElementById('board');
  if (!root || !window.EventSource) return;
  const config = JSON.parse(root.dataset.config);
  const messages = JSON.parse(root.dataset.messages);
  const Announce = window.TiepdanAnnounce;
  const RETRY_MS = [1000, 2000, 5000, 10000, 30000];
  const $ = (testid) => root.querySelector('[data-testid="' + testid + '"]');
  const el = {
    conn: $('board-conn'), number: $('board-current-number'), venue: $('board-current-venue'),
    paused: $('board-current-paused'), text: $('board-announcement'), next: $('board-next'),
    nextNone: $('board-next-none'), waiting: $('board-waiting'), here: $('board-waiting-here'),
    held: $('board-held'), estimate: $('board-estimate'), last: $('board-estimate-last'), log: $('board-log'),
    logNone: $('board-log-none'), audio: $('board-audio'), sound: $('board-sound'),
  };
  const state = { source: null, board: null, call: null, attempts: 0, timer: null, ended: false,
    counters: { snapshots: 0, calls: 0, reconnects: 0, chimes: 0, announcements: 0 } };

  function T(key, params) {
    let text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
    if (params) {
      for (const [name, value] of Object.entries(params)) text = text.split('{' + name + '}').join(String(value));
    }
    return text;
  }

  /** "khoảng 12 phút", "1 giờ 5 phút": whole minutes, rounded up. */
  function duration(seconds) {
    const minutes = Math.max(1, Math.ceil(seconds / 60));
    if (minutes < 60) return T('board.time.minutes', { minutes });
    return T('board.time.hours', { hours: Math.floor(minutes / 60), minutes: minutes % 60 });
  }

  function clock(iso) {
    const at = new Date(iso);
    if (Number.isNaN(at.getTime())) return '';
    return at.toLocaleTimeString('vi-VN', { hour: '2-digit', minute: '2-digit', timeZone: 'Asia/Ho_Chi_Minh' });
  }

  function setConn(which, key) {
    el.conn.dataset.state = which;
    el.conn.textContent = T(key);
  }

  function item(parts, own) {
    const li = document.createElement('li');
    if (own) li.classList.add('board-own');
    for (const [cls, text] of parts) {
      if (!text) continue;
      const span = document.createElement('span');
      span.className = cls;
      span.textContent = text;
      li.appendChild(span);
    }
    return li;
  }

  function showCurrent(call, paused) {
    el.number.textContent = call ? String(call.ticket_no) : '—';
    el.venue.textContent = call ? T('board.current.at', { venue: call.venue_name }) : T('board.current.none');
    el.paused.hidden = !(call && paused);
    root.classList.toggle('board--own-call', !!call && call.venue === config.venue);
  }

  function render(board) {
    const current = board.current;
    showCurrent(current, current && current.paused);
    if (!current || !state.call || state.call.call_seq !== current.call_seq) el.text.textContent = '';
    el.next.replaceChildren(...board.next.map((t, i) => item([
      ['board-next__number', String(t.ticket_no)],
      ['board-next__venue', t.venue_name],
      ['board-next__wait', t.wait_s === null ? '' : (t.wait_s === 0 && i === 0 ? T('board.next.soon')
        : T('board.next.wait', { time: duration(t.wait_s) }))],
      ['board-next__reason', t.reorder ? T('board.reason.' + t.reorder) : ''],
    ], t.venue === config.venue)));
    el.nextNone.hidden = board.next.length > 0;
    el.waiting.textContent = String(board.waiting);
    el.here.textContent = T('board.waiting.here', { count: board.waiting_by_venue[config.venue] || 0 });
    el.held.hidden = !board.held;
    el.held.textContent = T('board.waiting.held', { count: board.held });
    if (board.mean_hearing_s === null) {
      el.estimate.textContent = T('board.estimate.none');
      el.last.textContent = '';
    } else {
      el.estimate.textContent = T('board.estimate.mean', { time: duration(board.mean_hearing_s),
        count: board.closed_cases });
      el.last.textContent = board.last_wait_s === null ? '' : T('board.estimate.last',
        { time: duration(board.last_wait_s) });
    }
    const venueName = {};
    for (const t of board.next) venueName[t.venue] = t.venue_name;
    if (current) venueName[current.venue] = current.venue_name;
    el.log.replaceChildren(...board.log.slice().reverse().map((n) => item([['board-log__entry', T('board.log.entry', {
      time: clock(n.at), ticket: n.ticket_no, venue: venueName[n.venue] || n.venue,
      reason: T('board.reason.' + n.reason) })]], n.venue === config.venue)));
    el.logNone.hidden = board.log.length > 0;
  }

  function onCall(call) {
    state.call = call;
    state.counters.calls += 1;
    showCurrent(call, false);
    el.text.textContent = call.announcement_text || '';
    if (call.venue !== config.venue) return;
    state.counters.announcements += 1;
    Announce.announce(el.audio, call.announcement_audio_url,
      () => state.call && state.call.call_seq === call.call_seq, state.counters,
      () => { el.sound.hidden = false; });
  }

  function parse(event) {
    try {
      return JSON.parse(event.data);
    } catch (err) {
      return null;
    }
  }

  function close() {
    if (state.source) state.source.close();
    state.source = null;
    window.clearTimeout(state.timer);
  }

  function later(delay) {
    close();
    state.counters.reconnects += 1;
    state.timer = window.setTimeout(connect, delay);
  }

  /** The stream was refused or cut for good: ask the snapshot URL why, then try again (or sign in again). */
  function refused() {
    close();
    setConn('lost', 'board.conn.lost');
    const delay = RETRY_MS[Math.min(state.attempts, RETRY_MS.length - 1)];
    state.attempts += 1;
    fetch(config.snapshot, { credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then((answer) => {
        if (answer.status === 401) {
          window.location.reload();  // the login form, then back here
        } else if (answer.status === 403 || answer.status === 404) {
          setConn('denied', 'board.conn.denied');
          later(RETRY_MS[RETRY_MS.length - 1]);
        } else {
          later(delay);
        }
      })
      .catch(() => later(delay));
  }

  function connect() {
    if (state.ended) return;
    close();
    const source = new EventSource(config.events);
    state.source = source;
    source.onopen = () => {
      state.attempts = 0;
      setConn('live', 'board.conn.live');
    };
    source.onerror = () => {
      if (source !== state.source) return;
      if (source.readyState === EventSource.CLOSED) refused();
      else setConn('lost', 'board.conn.lost');  // the browser reconnects by itself
    };
    source.addEventListener('board', (event) => {
      const board = parse(event);
      if (!board) return;
      state.board = board;
      state.counters.snapshots += 1;
      setConn('live', 'board.conn.live');
      render(board);
    });
    source.addEventListener('call', (event) => {
      const call = parse(event);
      if (call) onCall(call);
    });
    source.addEventListener('end', () => {
      state.ended = true;
      close();
      setConn('ended', 'board.conn.ended');
    });
    source.addEventListener('reconnect', () => {
      setConn('lost', 'board.conn.lost');
      later(RETRY_MS[0]);
    });
  }

  el.sound.addEventListener('click', () => {
    el.sound.hidden = true;
    if (el.audio.src) Announce.playSafely(el.audio, () => { el.sound.hidden = false; });
  });
  window.tiepdanBoard = { state, counters: state.counters };
  connect();
})();
