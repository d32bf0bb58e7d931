/* A segment's replay page (room_console/views/replay.py): the composite's job (state and progress, polled
 * once a second while it is queued or running), the "compose" button that queues it, the composite's player
 * once it is done, the "compose again" form once it is done or failed, and the verification of the session
 * (fetched once). A link ending in #t=<seconds> (the case timeline on the minutes page) starts every player
 * of the page at that moment of the segment. The server enforces every grant and
 * writes the audit rows; this script only shows what it answers.
 */
'use strict';

(function () {
  const root = document.getElementById('replay');
  if (!root) return;
  const config = JSON.parse(root.dataset.config);
  const messages = JSON.parse(root.dataset.messages);
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || '';
  const $ = (testid) => root.querySelector('[data-testid="' + testid + '"]');
  const el = {
    state: $('replay-job-state'), progress: $('replay-progress'), compose: $('replay-compose'),
    video: $('replay-composite-video'), download: $('replay-composite-download'), recompose: $('replay-recompose'),
    verify: $('replay-verify-result'), findings: $('replay-verify-findings'),
  };
  let timer = null;

  function T(key, params) {
    let text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
    if (params) {
      for (const [name, value] of Object.entries(params)) text = text.split('{' + name + '}').join(String(value));
    }
    return text;
  }

  function show(answer) {
    const job = answer.job;
    const state = job ? job.state : 'none';
    const percent = job ? Math.round(job.progress * 100) : 0;
    el.state.textContent = T('replay.job.' + state, { percent: percent, error: job && job.error ? job.error : '' });
    el.state.dataset.state = state;
    el.progress.value = job ? job.progress : 0;
    el.compose.hidden = state === 'queued' || state === 'running' || state === 'done';
    // "compose again" (a form posted to the server) once the composite is done or has failed
    el.recompose.hidden = !(state === 'done' || state === 'failed');
    if (answer.composite && el.video.hidden) {
      el.video.src = answer.composite;
      el.video.hidden = false;
      el.download.href = answer.composite + '?tai=1';
      el.download.hidden = false;
    }
    clearTimeout(timer);
    if (state === 'queued' || state === 'running') timer = setTimeout(poll, 1000);
  }

  async function poll() {
    try {
      const response = await fetch(config.status, { credentials: 'same-origin', cache: 'no-store' });
      if (response.ok) { show(await response.json()); return; }
    } catch (err) { /* the network came back later: try again */ }
    timer = setTimeout(poll, 3000);
  }

  el.compose.addEventListener('click', async () => {
    el.compose.disabled = true;
    try {
      const response = await fetch(config.compose, {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf }, body: '{}',
      });
      const answer = await response.json();
      if (response.ok) show(answer); else el.state.textContent = answer.message || T('replay.compose.error');
    } catch (err) {
      el.state.textContent = T('replay.compose.error');
    } finally {
      el.compose.disabled = false;
    }
  });

  async function verify() {
    try {
      const response = await fetch(config.verification, { credentials: 'same-origin', cache: 'no-store' });
      const answer = await response.json();
      if (!response.ok) { el.verify.textContent = answer.message || T('replay.verify.error'); el.verify.dataset.ok = 'error'; return; }
      el.verify.dataset.ok = answer.ok ? 'true' : 'false';
      el.verify.textContent = answer.ok ? T('replay.verify.ok') : T('replay.verify.bad', { n: answer.findings.length });
      el.findings.replaceChildren(...answer.findings.map((finding) => {
        const item = document.createElement('li');
        item.textContent = finding.kind + ': ' + finding.path + (finding.detail ? ' — ' + finding.detail : '');
        return item;
      }));
    } catch (err) {
      el.verify.textContent = T('replay.verify.error');
      el.verify.dataset.ok = 'error';
    }
  }

  // #t=<seconds since the segment's start>: each player starts there once it knows its duration
  const moment = /^#t=(\d+(?:\.\d+)?)$/.exec(window.location.hash);
  if (moment) {
    const at = Number(moment[1]);
    root.querySelectorAll('video').forEach((video) => {
      const seek = () => { video.currentTime = Math.min(at, Number.isFinite(video.duration) ? video.duration : at); };
      if (video.readyState >= 1) seek(); else video.addEventListener('loadedmetadata', seek, { once: true });
    });
    root.dataset.startAt = String(at);
  }

  show(JSON.parse(root.dataset.job));
  verify();
})();
