/* The case dossier beside the chair's video (hồ sơ vụ việc đang tiếp): what GET
 * /api/sessions/{room}/dossier says of the case being received — tracking code, kind and field, summary,
 * "lần tiếp thứ n", the parties (a handle for whoever may not see a denouncer's identity: the server
 * decides), the history, the earlier directives and whether each was done, and the refusal-condition
 * flag of LTCD Điều 9 (a hint, never a refusal). Loaded when the page opens, when the room tells of a
 * call or of the end of a case (live.js dispatches "tiepdan:queue" on case.called / case.ended), and when
 * the queue panel (live-queue.js, "tiepdan:queue-state") shows another call than the one here; cleared
 * when the case ends. Text only (textContent), never HTML from the server. Plain JavaScript.
 */
'use strict';

(function () {
  const root = document.getElementById('live');
  const panel = root && root.querySelector('[data-testid="dossier-panel"]');
  if (!root || !panel) return;
  const config = JSON.parse(root.dataset.config);
  const messages = JSON.parse(root.dataset.messages);
  const url = '/api/sessions/' + encodeURIComponent(config.room) + '/dossier';
  const body = panel.querySelector('[data-testid="dossier-body"]');
  const note = panel.querySelector('[data-testid="dossier-message"]');
  const state = { shown: null, loading: null, again: false, loads: 0 };

  function T(key, params) {
    let text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
    if (params) {
      for (const [name, value] of Object.entries(params)) text = text.split('{' + name + '}').join(String(value));
    }
    return text;
  }

  function day(iso) {
    const [y, m, d] = String(iso).split('-');
    return d && m && y ? d + '/' + m + '/' + y : String(iso);
  }

  function node(tag, text, attrs) {
    const el = document.createElement(tag);
    if (text !== undefined && text !== null) el.textContent = text;
    for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, value);
    return el;
  }

  function fact(list, term, value, testid) {
    list.append(node('dt', term), node('dd', value, testid ? { 'data-testid': testid } : {}));
  }

  function section(title, testid) {
    const box = node('section', null, { class: 'live-dossier__part', 'data-testid': testid });
    box.append(node('h3', title));
    return box;
  }

  function clear(text) {
    body.replaceChildren();
    panel.dataset.case = '';
    panel.dataset.refusal = '';
    note.textContent = text || T('live.dossier.empty');
  }

  function render(d) {
    panel.dataset.case = d.case.id;
    panel.dataset.refusal = d.refusal.level.value;
    note.textContent = '';
    const facts = node('dl', null, { class: 'live-dossier__facts' });
    if (d.ticket) fact(facts, T('live.queue.current'), T('live.dossier.ticket', { ticket: d.ticket.ticket_no }));
    fact(facts, T('live.dossier.code'), d.case.tracking_code, 'dossier-code');
    fact(facts, T('live.dossier.kind'), d.case.kind.label + (d.case.confidential ? ' — ' + T('live.dossier.confidential') : ''));
    fact(facts, T('live.dossier.subject_area'), d.case.subject_area ? d.case.subject_area.label : '—');
    fact(facts, T('live.dossier.parties'), d.parties.length
      ? d.parties.map((p) => p.shown + (p.handle ? ' (' + T('live.dossier.handle_note') + ')' : '')).join('; ') : '—',
      'dossier-parties');
    fact(facts, T('live.dossier.summary'), d.case.summary);
    const nth = node('p', d.reception_number_text, { class: 'live-dossier__nth', 'data-testid': 'dossier-nth' });

    const refusal = section(T('live.dossier.refusal.title'), 'dossier-refusal');
    refusal.dataset.level = d.refusal.level.value;
    refusal.append(node('p', d.refusal.level.label, { class: 'live-dossier__flag' }));
    if (d.refusal.reason) refusal.append(node('p', d.refusal.reason.label, { class: 'hint', 'data-testid': 'dossier-refusal-reason' }));
    if (d.refusal.flagged) {
      const checks = node('ul', null, { class: 'live-list' });
      for (const c of d.refusal.checks) checks.append(node('li', c.label + ': ' + c.finding.label));
      refusal.append(checks);
    }
    refusal.append(node('p', d.refusal.hint, { class: 'hint' }));

    const history = section(T('live.dossier.history'), 'dossier-history');
    if (d.history.length) {
      const list = node('ol', null, { class: 'live-list' });
      for (const h of d.history) {
        const what = h.kind_label + (h.nth ? ' (' + T('live.dossier.nth', { n: h.nth }) + ')' : '');
        const due = h.due ? ' — ' + T('live.dossier.history.due', { date: day(h.due) }) : '';
        list.append(node('li', day(h.on) + ' — ' + what + ': ' + h.label + (h.detail ? ' — ' + h.detail : '') + due));
      }
      history.append(list);
    } else {
      history.append(node('p', T('live.dossier.history_empty'), { class: 'hint' }));
    }

    const directives = section(T('live.dossier.directives'), 'dossier-directives');
    if (d.directives.length) {
      const list = node('ul', null, { class: 'live-list' });
      for (const x of d.directives) {
        const li = node('li', T('live.dossier.directive_line', { unit: x.unit, deadline: day(x.deadline), progress: x.progress.label }));
        li.dataset.progress = x.progress.value;
        li.title = x.content;
        list.append(li);
      }
      directives.append(list);
    } else {
      directives.append(node('p', T('live.dossier.directives_empty'), { class: 'hint' }));
    }

    const links = node('p', null, { class: 'live-panel__buttons' });
    links.append(node('a', T('live.dossier.brief'), { class: 'button button--small', href: d.brief_url, target: '_blank',
      rel: 'noopener', 'data-testid': 'dossier-brief' }));
    links.append(node('a', T('live.dossier.open_case'), { class: 'button button--small', href: d.case_url, target: '_blank',
      rel: 'noopener' }));
    body.replaceChildren(facts, nth, refusal, history, directives, links);
  }

  async function load() {
    if (state.loading) {
      state.again = true;
      return state.loading;
    }
    state.loading = (async () => {
      try {
        state.loads += 1;
        const response = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
        const answer = await response.json().catch(() => ({}));
        if (response.ok && answer.case) {
          state.shown = answer.ticket ? answer.ticket.call_seq : answer.case.id;
          render(answer);
        } else if (response.ok) {
          state.shown = 'none';
          clear();
        } else {
          clear(response.status === 403 ? T('live.dossier.forbidden') : T('live.dossier.unreachable'));
        }
      } catch (err) {
        clear(T('live.dossier.unreachable'));
      } finally {
        state.loading = null;
        if (state.again) {
          state.again = false;
          load();
        }
      }
    })();
    return state.loading;
  }

  root.addEventListener('tiepdan:queue', (event) => {
    const type = event.detail && event.detail.type;
    if (type === 'case.ended') {
      state.shown = 'none';
      clear();
    }
    if (type === 'case.called' || type === 'case.ended') load();
  });
  root.addEventListener('tiepdan:queue-state', (event) => {
    const q = event.detail;
    if (!q) return;
    const key = q.current ? q.current.call_seq : 'none';
    if (key !== state.shown) load();
  });
  window.TiepdanDossier = { state, load };
  load();
})();
