/* The call announcement, shared by the live session page (live.js) and the queue board (board.js): a short
 * two-tone chime, then the spoken announcement that schedules synthesised (its URL rides in case.called).
 */
'use strict';

(function () {
  let context = null;

  /** Start ``media``; ``onRefused`` is called when the browser refuses to play (autoplay policy). */
  function playSafely(media, onRefused) {
    const started = media.play();
    if (started && typeof started.catch === 'function') {
      started.catch(() => {
        if (onRefused) onRefused();
      });
    }
  }

  /** A short two-tone chime (Web Audio, no file); calls ``then`` when it has finished (or at once if the
   * browser has no Web Audio). ``counters.chimes`` counts the chimes played. */
  function chime(then, counters) {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) {
      then();
      return;
    }
    try {
      const ctx = context || (context = new Context());
      if (ctx.state === 'suspended' && ctx.resume) ctx.resume().catch(() => {});
      const start = ctx.currentTime + 0.05;
      [[880, 0], [660, 0.35]].forEach(([freq, offset]) => {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0.0001, start + offset);
        gain.gain.exponentialRampToValueAtTime(0.3, start + offset + 0.03);
        gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.32);
        osc.connect(gain).connect(ctx.destination);
        osc.start(start + offset);
        osc.stop(start + offset + 0.34);
      });
      if (counters) counters.chimes = (counters.chimes || 0) + 1;
    } catch (err) {
      // no audio output: go on with the announcement
    }
    window.setTimeout(then, 800);
  }

  /** The chime, then ``url`` played in the ``audio`` element, unless ``stillCurrent()`` says that another
   * call came meanwhile (or there is no URL: schedules could not synthesise the announcement). */
  function announce(audio, url, stillCurrent, counters, onRefused) {
    chime(() => {
      if (!url || !audio || (stillCurrent && !stillCurrent())) return;
      audio.src = url;
      playSafely(audio, onRefused);
    }, counters);
  }

  window.TiepdanAnnounce = { chime, announce, playSafely };
})();
