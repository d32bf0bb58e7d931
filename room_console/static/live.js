/* The live session page (chair, venue operator, viewer): one WebSocket to /ws (docs/protocol.md), the
 * room's state as the server tells it, the tiles of the venues and the controls. The server is
 * authoritative: a button only sends a message, and what the page shows changes when the server's
 * answer arrives. Plain JavaScript, no build step; WebRTC lives in live-media.js.
 */
'use strict';

(function () {
  const root = document.getElementById('live');
  if (!root || !window.TiepdanMedia || !window.TiepdanLiveView) return;
  const Media = window.TiepdanMedia;
  const config = JSON.parse(root.dataset.config);
  const messages = JSON.parse(root.dataset.messages);
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : '';

  const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000];
  const MEDIA_RETRY_MS = 2000;
  const MEDIA_RETRIES = 3;
  const LINK_RECHECK_MS = 5000;
  const SWITCH_REVEAL_MS = 3000;
  const ERRORS_SHOWN = 3;
  const ERROR_TTL_MS = 15000;
  /** Close codes after which the page does not reconnect (docs/protocol.md §3), with the text shown. */
  const STOP_CODES = {
    1000: 'live.ended.left', 1008: 'live.ended.protocol', 1009: 'live.ended.protocol',
    4000: 'live.ended.protocol', 4003: 'live.ended.forbidden', 4004: 'live.ended.removed',
    4005: 'live.ended.disabled', 4006: 'live.ended.signed_out', 4009: 'live.ended.replaced', 4010: 'live.ended.room_closed',
  };
  const MEDIA_RETRY_CODES = new Set(['media_failed', 'media_state', 'invalid_sdp', 'internal']);

  function T(key, params) {
    let text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
    if (params) {
      for (const [name, value] of Object.entries(params)) text = text.split('{' + name + '}').join(String(value));
    }
    return text;
  }

  const switching = new WeakMap();
  /** The resume token outlives a reload of the page (not the tab): a reload takes the participant back. */
  const RESUME_KEY = 'tiepdan-resume:' + config.room;

  function storedResume() {
    try {
      return window.sessionStorage.getItem(RESUME_KEY);
    } catch (err) {
      return null;
    }
  }

  function storeResume(token) {
    try {
      if (token) window.sessionStorage.setItem(RESUME_KEY, token);
      else window.sessionStorage.removeItem(RESUME_KEY);
    } catch (err) {
      // storage refused (private mode): a reload then joins as a new participant
    }
  }

  const state = {
    status: 'idle',
    ws: null,
    me: null,
    room: null,
    resumeToken: storedResume(),
    attempts: 0,
    reconnectTimer: null,
    stopped: false,
    leaving: false,
    iceServers: [],
    stream: null,
    ownVideo: null,
    publisher: null,
    subscriber: null,
    publishRefused: false,
    tries: { publish: 0, subscribe: 0 },
    pending: {},
    slots: {},
    elements: {},
    links: { publisher: null, subscriber: null },
    linkTimers: {},
    venueLinks: {},
    stats: {},
    speaker: null,
    forced: {},
    lobbyDenied: false,
    page: 0,
    seq: 0,
    counters: { subscriberOffers: 0, publishAnswers: 0, welcomes: 0, reconnects: 0, slotMessages: 0, refreshed: 0, calls: 0 },
  };

  const view = window.TiepdanLiveView.create({ root, config, state, T });
  const { el, render, participants, myParticipant, venueName, callLabel } = view;
  const playSafely = window.TiepdanLiveView.playSafely;

  // -- status and errors --------------------------------------------------------------------------

  function setStatus(status) {
    state.status = status;
    el.conn.dataset.state = status;
    el.connText.textContent = T('live.conn.' + status);
    root.dataset.status = status;
  }

  function say(text) {
    el.status.textContent = text;
  }

  function showError(code, serverText) {
    const key = 'live.error.' + code;
    const text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : (serverText || T('live.error.generic'));
    const item = document.createElement('li');
    item.className = 'notice notice--error';
    item.dataset.code = code;
    item.textContent = text;
    el.errors.prepend(item);
    while (el.errors.children.length > ERRORS_SHOWN) el.errors.lastElementChild.remove();
    setTimeout(() => item.remove(), ERROR_TTL_MS);
  }

  // -- local camera and microphone ------------------------------------------------------------------


  async function openDevices() {
    const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
    const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
    if (el.camera && el.camera.value) video.deviceId = { exact: el.camera.value };
    if (el.microphone && el.microphone.value) audio.deviceId = { exact: el.microphone.value };
    const stream = await navigator.mediaDevices.getUserMedia({ video, audio });
    const old = state.stream;
    state.stream = stream;
    applyOwnMic();
    if (state.publisher) {
      for (const track of stream.getTracks()) await state.publisher.replaceTrack(track);
    }
    if (old) for (const track of old.getTracks()) track.stop();
    if (!state.ownVideo) {
      state.ownVideo = document.createElement('video');
      state.ownVideo.muted = true;
      state.ownVideo.autoplay = true;
      state.ownVideo.playsInline = true;
      state.ownVideo.className = 'tile-v__video tile-v__video--own';
      state.ownVideo.dataset.own = 'true';
    }
    state.ownVideo.srcObject = stream;
    playSafely(state.ownVideo);
    await fillDevicePickers(stream);
    render();
  }

  async function fillDevicePickers(stream) {
    if (!el.camera || !el.microphone) return;
    const devices = await navigator.mediaDevices.enumerateDevices();
    const inUse = {
      videoinput: (stream.getVideoTracks()[0] || { getSettings: () => ({}) }).getSettings().deviceId,
      audioinput: (stream.getAudioTracks()[0] || { getSettings: () => ({}) }).getSettings().deviceId,
    };
    for (const [select, kind, fallback] of [[el.camera, 'videoinput', 'live.devices.camera_n'],
      [el.microphone, 'audioinput', 'live.devices.microphone_n']]) {
      select.textContent = '';
      let n = 0;
      for (const device of devices.filter((d) => d.kind === kind)) {
        n += 1;
        const option = document.createElement('option');
        option.value = device.deviceId;
        option.textContent = device.label || T(fallback, { n });
        option.selected = device.deviceId === inUse[kind];
        select.appendChild(option);
      }
      select.disabled = n === 0;
    }
  }

  async function startDevices() {
    if (!config.publish) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showError('devices');
      return;
    }
    try {
      await openDevices();
    } catch (err) {
      showError('devices');
    }
  }


  /** The server's mute state is applied to the local microphone (docs/protocol.md "Microphones"). */
  function applyOwnMic() {
    const me = myParticipant();
    const muted = me ? me.muted : true;
    if (state.stream) for (const track of state.stream.getAudioTracks()) track.enabled = !muted;
  }

  // -- the WebSocket ----------------------------------------------------------------------------------

  function nextId(prefix) {
    state.seq += 1;
    return prefix + '-' + state.seq;
  }

  function send(message) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  async function postJson(path, body) {
    return fetch(path, {
      method: 'POST', credentials: 'same-origin', cache: 'no-store',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(body),
    });
  }

  async function connect() {
    if (state.stopped) return;
    clearTimeout(state.reconnectTimer);
    setStatus(state.counters.welcomes > 0 ? 'reconnecting' : 'connecting');
    let response;
    try {
      response = await postJson('/api/live/connect-ticket', { room: config.room });
    } catch (err) {
      scheduleReconnect();
      return;
    }
    if (response.status === 401) {
      stop('live.ended.signed_out');
      return;
    }
    if (!response.ok) {
      scheduleReconnect();
      return;
    }
    const { connect_ticket: connectTicket } = await response.json();
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = scheme + '//' + location.host + '/ws?room=' + encodeURIComponent(config.room) +
      '&connect=' + encodeURIComponent(connectTicket);
    const ws = new WebSocket(url);
    state.ws = ws;
    let welcomed = false;
    ws.addEventListener('open', () => {
      const join = { type: 'join', protocol: config.protocol, id: nextId('join') };
      if (config.view === 'venue' && config.venue) join.venue = config.venue;
      if (state.resumeToken) join.resume = state.resumeToken;
      ws.send(JSON.stringify(join));
    });
    ws.addEventListener('message', (event) => {
      if (state.ws !== ws) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (message.type === 'welcome') welcomed = true;
      handle(message);
    });
    ws.addEventListener('close', (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      onClosed(event.code, welcomed);
    });
  }

  function onClosed(code, welcomed) {
    if (state.leaving) {
      stop('live.ended.left');
      return;
    }
    if (code === 4003 && state.lobbyDenied) {
      stop('live.ended.denied');
      return;
    }
    if (Object.prototype.hasOwnProperty.call(STOP_CODES, code)) {
      stop(STOP_CODES[code]);
      return;
    }
    if (!welcomed) {
      checkRoomThenReconnect();
      return;
    }
    scheduleReconnect();
  }

  /** A connection refused before ``welcome`` (the browser hides the HTTP status): is the room still open? */
  async function checkRoomThenReconnect() {
    try {
      const response = await fetch('/phien/' + encodeURIComponent(config.room), {
        credentials: 'same-origin', cache: 'no-store', redirect: 'manual',
      });
      if (response.status === 404) {
        stop('live.ended.room_closed');
        return;
      }
    } catch (err) {
      // the network is down: try again later
    }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    if (state.stopped) return;
    setStatus('reconnecting');
    const delay = RECONNECT_DELAYS_MS[Math.min(state.attempts, RECONNECT_DELAYS_MS.length - 1)];
    state.attempts += 1;
    state.counters.reconnects += 1;
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = setTimeout(connect, delay);
  }

  function stop(reasonKey) {
    state.stopped = true;
    clearTimeout(state.reconnectTimer);
    closeMedia();
    if (state.ws) {
      const ws = state.ws;
      state.ws = null;
      ws.close();
    }
    storeResume(null);
    if (state.stream) for (const track of state.stream.getTracks()) track.stop();  // the camera light goes off
    setStatus('ended');
    say(T(reasonKey));
    if (el.rejoin) el.rejoin.hidden = false;
    render();
  }

  function leave() {
    state.leaving = true;
    if (!send({ type: 'leave' })) stop('live.ended.left');
  }

  async function refreshToken() {
    try {
      const response = await postJson('/api/live/token', { room: config.room });
      if (!response.ok) return;
      const body = await response.json();
      send({ type: 'refresh', id: nextId('refresh'), token: body.token });
    } catch (err) {
      // Without a refresh the server closes with 4001; the page then reconnects with its resume token.
    }
  }

  // -- server messages -------------------------------------------------------------------------------


  function upsertParticipant(view) {
    if (!state.room) return;
    const list = state.room.participants;
    const index = list.findIndex((p) => p.participant === view.participant);
    if (index >= 0) list[index] = view;
    else list.push(view);
  }

  function handle(msg) {
    switch (msg.type) {
      case 'welcome':
        state.counters.welcomes += 1;
        state.attempts = 0;
        state.me = msg.you;
        state.maxKbps = msg.max_kbps;  // the cap of this venue's video layers (null: cannot publish)
        state.resumeToken = msg.resume_token;
        storeResume(msg.resume_token);
        if (msg.status === 'lobby') {
          state.room = null;
          closeMedia();
          setStatus('lobby');
          say(T('live.lobby.waiting'));
        } else {
          admitted(msg.room);
          say(T(msg.resumed ? 'live.status.resumed' : 'live.status.joined'));
        }
        break;
      case 'admitted':
        admitted(msg.room);
        say(T('live.status.admitted'));
        break;
      case 'room.state':
        state.room = msg.room;
        applyOwnMic();
        break;
      case 'presence.joined':
      case 'presence.updated':
        upsertParticipant(msg.participant);
        break;
      case 'presence.left':
        if (state.room) {
          state.room.participants = state.room.participants.filter((p) => p.participant !== msg.participant);
        }
        break;
      case 'floor.changed':
        holdFloorSlots(msg.previous, msg.venue);
        if (state.room) state.room.floor = msg.venue;
        say(T('live.status.floor', { venue: venueName[msg.venue] || msg.venue }));
        break;
      case 'mic.changed': {
        const target = participants().find((p) => p.participant === msg.participant);
        if (target) target.muted = msg.muted;
        if (msg.muted && msg.forced) state.forced[msg.participant] = true;
        if (!msg.muted) delete state.forced[msg.participant];
        if (state.me && msg.participant === state.me.participant) {
          applyOwnMic();
          if (!msg.muted) el.unmute.hidden = true;
          if (msg.muted && msg.forced) say(T('live.status.muted_by_chair'));
        }
        break;
      }
      case 'mic.unmute_requested':
        el.unmute.hidden = false;
        say(T('live.unmute.asked'));
        break;
      case 'lobby.entered':
        if (state.room) {
          state.room.lobby = state.room.lobby.filter((p) => p.participant !== msg.participant.participant);
          state.room.lobby.push(msg.participant);
        }
        say(T('live.status.lobby_entered', { venue: venueName[msg.participant.venue] || '' }));
        break;
      case 'lobby.left':
        if (state.room) state.room.lobby = state.room.lobby.filter((p) => p.participant !== msg.participant);
        break;
      case 'lobby.denied':
        state.lobbyDenied = true;
        break;
      case 'removed':
        break;
      case 'hands.changed':
        if (state.room) state.room.hands = msg.hands;
        break;
      case 'room.lock_changed':
        if (state.room) state.room.locked = msg.locked;
        say(T(msg.locked ? 'live.status.locked' : 'live.status.unlocked'));
        break;
      case 'closed_segment.changed':
        if (state.room) state.room.closed_segment = msg.closed_segment;
        break;
      case 'token.expiring':
        refreshToken();
        break;
      case 'token.refreshed':
        state.resumeToken = msg.resume_token;
        storeResume(msg.resume_token);
        state.counters.refreshed += 1;
        break;
      case 'error':
        onError(msg);
        break;
      case 'room.closed':
        say(T('live.ended.room_closed'));
        break;
      case 'media.ice_servers':
        state.iceServers = Media.iceServersFrom(msg.ice_servers);
        break;
      case 'media.publish_answer':
        onPublishAnswer(msg);
        break;
      case 'media.subscriber_offer':
        onSubscriberOffer(msg);
        break;
      case 'media.slots':
        onSlots(msg.slots);
        break;
      case 'media.link':
        onLink(msg);
        break;
      case 'case.called':
        if (state.room) state.room.calling = msg.call;
        announce(msg.call, !!msg.recalled);
        queueChanged(msg);
        break;
      case 'case.ended':
        if (state.room && state.room.calling && state.room.calling.call_seq === msg.call_seq) state.room.calling = null;
        say(T('live.call.ended', { ticket: msg.ticket_no }));
        queueChanged(msg);
        break;
      case 'case.paused':
      case 'case.resumed':
        if (state.room && state.room.calling && state.room.calling.call_seq === msg.call_seq) {
          state.room.calling = Object.assign({}, state.room.calling, { paused: msg.type === 'case.paused' });
        }
        // a pause over the called venue's lost link says so (the scheduler's link watch, reason link_lost)
        say(T(msg.type === 'case.resumed' ? 'live.call.resumed'
          : msg.reason === 'link_lost' ? 'live.call.paused_link' : 'live.call.paused',
        { ticket: msg.ticket_no, venue: venueName[msg.venue] || msg.venue }));
        queueChanged(msg);
        break;
      case 'media.active_speaker':
        state.speaker = msg.venue;
        break;
      case 'media.stats':
        onStats(msg.entries);
        break;
      case 'recording.alarm':
        onRecordingAlarm(msg);
        break;
      default:
        return; // pong, and types this page does not know (docs/protocol.md "Versioning")
    }
    render();
  }

  /** The recording stopped (a banner for the chair until every alarm is cleared) or is back. */
  function onRecordingAlarm(msg) {
    const alarms = state.recordingAlarms || (state.recordingAlarms = {});
    if (msg.active) alarms[msg.code] = true;
    else delete alarms[msg.code];
    const banner = root.querySelector('[data-testid="recording-alarm"]');
    if (!banner) return;
    const codes = Object.keys(alarms);
    banner.hidden = codes.length === 0;
    banner.querySelector('[data-testid="recording-alarm-text"]').textContent =
      codes.map((code) => T('live.recording.' + code)).join(' ');
    if (!msg.active && codes.length === 0) say(T('live.recording.resumed'));
  }

  /** The queue changed (a case called, ended, paused, resumed): the queue panel (live-queue.js) reloads. */
  function queueChanged(msg) {
    root.dispatchEvent(new CustomEvent('tiepdan:queue', { detail: { type: msg.type } }));
  }

  /** The chime before an announcement (announce.js, shared with the queue board). */
  function chime(then) {
    window.TiepdanAnnounce.chime(then, state.counters);
  }

  /** A case was called (or called again): every page says the number; the called venue's page plays a
   * chime, then the spoken announcement when schedules made one. */
  function announce(call, recalled) {
    say(recalled
      ? T('live.call.recalled', { ticket: call.ticket_no, venue: venueName[call.venue] || call.venue })
      : callLabel(call));
    state.counters.calls += 1;
    if (!config.venue || config.venue !== call.venue) return;
    const seq = call.call_seq;
    chime(() => {
      const current = state.room && state.room.calling;
      if (!call.announcement_audio_url || !el.callAudio || (current && current.call_seq !== seq)) return;
      el.callAudio.src = call.announcement_audio_url;
      playSafely(el.callAudio);
    });
  }

  function admitted(room) {
    state.room = room;
    state.room.lobby = room.lobby || [];
    setStatus('admitted');
    applyOwnMic();
    startMedia();
  }

  function onError(msg) {
    const what = msg.ref ? state.pending[msg.ref] : undefined;
    if (what) delete state.pending[msg.ref];
    if (what === 'publish') {
      if (msg.code === 'already_publishing') {
        state.publishRefused = true;
        closePublisher();
      } else if (MEDIA_RETRY_CODES.has(msg.code)) {
        retryMedia('publish');
      }
    } else if (what === 'subscribe' && MEDIA_RETRY_CODES.has(msg.code)) {
      retryMedia('subscribe');
    }
    if (msg.code === 'resume_failed') {
      if (state.counters.welcomes > 1) say(T('live.status.resume_failed'));  // not after a reload long ago
      return;
    }
    showError(msg.code, msg.message);
  }

  // -- media ------------------------------------------------------------------------------------------

  function isAdmitted() {
    return state.status === 'admitted' && !state.stopped;
  }

  function closePublisher() {
    if (state.publisher) state.publisher.close();
    state.publisher = null;
    state.links.publisher = null;
  }

  function closeSubscriber() {
    if (state.subscriber) state.subscriber.close();
    state.subscriber = null;
    state.links.subscriber = null;
    for (const media of Object.values(state.elements)) {
      media.srcObject = null;
      media.remove();
    }
    state.elements = {};
  }

  function closeMedia() {
    closePublisher();
    closeSubscriber();
    state.slots = {};
  }

  function startMedia() {
    closeMedia();
    state.tries = { publish: 0, subscribe: 0 };
    if (config.publish && state.stream && !state.publishRefused) publish();
    subscribe();
  }

  function retryMedia(role) {
    if (state.tries[role] >= MEDIA_RETRIES) return;
    state.tries[role] += 1;
    setTimeout(() => {
      if (!isAdmitted()) return;
      if (role === 'publish') publish();
      else subscribe();
    }, MEDIA_RETRY_MS);
  }

  function watchLink(pc, role) {
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed' && isAdmitted()) renegotiate(role);
    });
  }

  async function publish() {
    if (!state.stream || state.publishRefused) return;
    closePublisher();
    const publisher = new Media.Publisher({
      stream: state.stream, iceServers: state.iceServers,
      maxKbps: state.maxKbps,
    });
    state.publisher = publisher;
    try {
      const offer = await publisher.offer();
      if (state.publisher !== publisher || !isAdmitted()) return;
      watchLink(publisher.pc, 'publisher');
      const id = nextId('publish');
      state.pending[id] = 'publish';
      send({ type: 'media.publish', id, sdp: offer.sdp, tracks: offer.tracks });
    } catch (err) {
      if (state.publisher === publisher) showError('media_local');
    }
  }

  async function onPublishAnswer(msg) {
    state.counters.publishAnswers += 1;
    for (const [id, what] of Object.entries(state.pending)) if (what === 'publish') delete state.pending[id];
    if (!state.publisher) return;
    try {
      await state.publisher.applyAnswer(msg.sdp);
    } catch (err) {
      showError('media_local');
    }
  }

  function subscribe() {
    closeSubscriber();
    const id = nextId('subscribe');
    state.pending[id] = 'subscribe';
    send({ type: 'media.subscribe', id });
  }

  async function onSubscriberOffer(msg) {
    state.counters.subscriberOffers += 1;
    for (const [id, what] of Object.entries(state.pending)) if (what === 'subscribe') delete state.pending[id];
    closeSubscriber();
    const subscriber = new Media.Subscriber({ iceServers: state.iceServers, onTrack: attachTrack });
    state.subscriber = subscriber;
    try {
      const sdp = await subscriber.answer(msg);
      if (state.subscriber !== subscriber || !isAdmitted()) return;
      watchLink(subscriber.pc, 'subscriber');
      send({ type: 'media.answer', id: nextId('answer'), sdp });
    } catch (err) {
      if (state.subscriber === subscriber) showError('media_local');
    }
  }

  function attachTrack(slot, track) {
    const old = state.elements[slot.slot];
    if (old) old.remove();
    const media = document.createElement(slot.kind === 'video' ? 'video' : 'audio');
    media.autoplay = true;
    media.dataset.slot = slot.slot;
    media.dataset.mid = slot.mid;
    if (slot.kind === 'video') {
      media.muted = true;
      media.playsInline = true;
      media.className = 'tile-v__video';
      media.dataset.switching = 'false';
    }
    media.srcObject = new MediaStream([track]);
    state.elements[slot.slot] = media;
    (slot.kind === 'video' ? el.parking : el.audio).appendChild(media);
    playSafely(media);
    render();
  }

  /** A slot that changes venue may still show the old venue's last frames, and the new venue's first frames
   * may arrive before media.slots says so. So: on floor.changed the slots showing the old or the new floor
   * holder are held transparent until media.slots; a slot that media.slots points elsewhere stays
   * transparent until a frame received after that message is presented (the SFU drops the old source's
   * frames at the switch). Every hold ends after SWITCH_REVEAL_MS at the latest. */
  function hold(media, kind) {
    const token = (switching.has(media) ? switching.get(media).token : 0) + 1;
    switching.set(media, { token, kind });
    media.dataset.switching = 'true';
    setTimeout(() => release(media, token), SWITCH_REVEAL_MS);
    return token;
  }

  function release(media, token) {
    const held = switching.get(media);
    if (held && held.token === token) {
      switching.delete(media);
      media.dataset.switching = 'false';
    }
  }

  function holdFloorSlots(previous, next) {
    for (const [slot, source] of Object.entries(state.slots)) {
      const media = state.elements[slot];
      if (media && source.kind === 'video' && source.venue && (source.venue === previous || source.venue === next)) {
        hold(media, 'slots');
      }
    }
  }

  function onSlots(slots) {
    state.counters.slotMessages += 1;
    const previous = state.slots;
    state.slots = {};
    for (const slot of slots) {
      state.slots[slot.slot] = slot;
      const media = state.elements[slot.slot];
      if (!media || slot.kind !== 'video') continue;
      const before = previous[slot.slot];
      if (slot.venue && (!before || before.venue !== slot.venue)) untilNewFrame(media);
      else if (switching.has(media) && switching.get(media).kind === 'slots') release(media, switching.get(media).token);
    }
  }

  function untilNewFrame(media) {
    const since = performance.now();
    const token = hold(media, 'frame');
    if (typeof media.requestVideoFrameCallback !== 'function') return;
    const onFrame = (now, frame) => {
      const held = switching.get(media);
      if (!held || held.token !== token) return;
      const at = frame.receiveTime !== undefined ? frame.receiveTime : frame.presentationTime;
      if (at > since) release(media, token);
      else media.requestVideoFrameCallback(onFrame);
    };
    media.requestVideoFrameCallback(onFrame);
  }

  function renegotiate(role) {
    if (!isAdmitted()) return;
    if (role === 'publisher') publish();
    else subscribe();
  }

  /** media.link: our own connections (negotiate again when lost), or another venue's publisher. */
  function onLink(msg) {
    const own = state.me && msg.participant === state.me.participant;
    if (!own) {
      if (msg.venue && msg.role === 'publisher') {
        if (msg.state === 'lost') state.venueLinks[msg.venue] = 'lost';
        else delete state.venueLinks[msg.venue];
      }
      return;
    }
    state.links[msg.role] = msg.state;
    clearTimeout(state.linkTimers[msg.role]);
    if (msg.state !== 'lost') return;
    const current = msg.role === 'publisher' ? state.publisher : state.subscriber;
    if (current && current.pc && current.pc.connectionState === 'connected') {
      // The browser still has the link (the venue's media may only have paused): look again shortly.
      state.linkTimers[msg.role] = setTimeout(() => {
        if (state.links[msg.role] === 'lost') renegotiate(msg.role);
      }, LINK_RECHECK_MS);
      return;
    }
    renegotiate(msg.role);
  }

  function onStats(entries) {
    const per = {};
    for (const entry of entries || []) {
      if (!entry.venue) continue;
      if (entry.direction === 'subscription' && !entry.source) continue; // an empty slot says nothing
      const s = per[entry.venue] || (per[entry.venue] = { loss: 0, rttMs: 0, fps: null });
      s.loss = Math.max(s.loss, entry.loss || 0);
      if (entry.rtt_ms !== null && entry.rtt_ms !== undefined) s.rttMs = Math.max(s.rttMs, entry.rtt_ms);
      if (entry.direction === 'publication' && entry.kind === 'video') s.fps = Math.max(s.fps || 0, entry.fps || 0);
    }
    state.stats = per;
  }

  // -- controls ---------------------------------------------------------------------------------------

  function act(message) {
    if (!send(Object.assign({ id: nextId('act') }, message))) showError('not_connected');
  }

  const actions = {
    join() {
      if (state.status !== 'idle') return;
      connect();
    },
    rejoin() {
      location.reload();
    },
    leave,
    'mic-toggle'() {
      const me = myParticipant();
      act({ type: 'mic.set', muted: !(me ? me.muted : true) });
    },
    'unmute-accept'() {
      el.unmute.hidden = true;
      act({ type: 'mic.set', muted: false });
    },
    'unmute-later'() {
      el.unmute.hidden = true;
      render();
    },
    'hand-toggle'() {
      const me = myParticipant();
      const raised = !!(state.room && me && state.room.hands.indexOf(me.participant) >= 0);
      act(raised ? { type: 'hand.lower' } : { type: 'hand.raise' });
    },
    'hand-lower-other'(data) { act({ type: 'hand.lower', participant: data.participant }); },
    'floor-give'(data) { act({ type: 'floor.give', venue: data.venue }); },
    'floor-take'() { act({ type: 'floor.take' }); },
    'mic-mute'(data) { act({ type: 'mic.mute', participant: data.participant }); },
    'mic-unmute-request'(data) { act({ type: 'mic.unmute_request', participant: data.participant }); },
    remove(data) { act({ type: 'participant.remove', participant: data.participant }); },
    'lobby-admit'(data) { act({ type: 'lobby.admit', participant: data.participant }); },
    'lobby-deny'(data) { act({ type: 'lobby.deny', participant: data.participant }); },
    lock() { act({ type: 'room.lock' }); },
    unlock() { act({ type: 'room.unlock' }); },
    'cs-start'() { act({ type: 'closed_segment.start', venue: el.csVenue.value }); },
    'cs-confirm'() { act({ type: 'closed_segment.start' }); },
    'cs-end'() { act({ type: 'closed_segment.end' }); },
    'cs-request'() { act({ type: 'closed_segment.request', venue: el.csVenue.value }); },
    'page-prev'() { state.page = Math.max(0, state.page - 1); render(); },
    'page-next'() { state.page += 1; render(); },
  };

  root.addEventListener('click', (event) => {
    const target = event.target.closest('[data-action]');
    if (!target || !root.contains(target) || target.disabled) return;
    const action = actions[target.dataset.action];
    if (action) action(target.dataset);
  });

  for (const select of [el.camera, el.microphone]) {
    if (select) {
      select.addEventListener('change', () => {
        openDevices().catch(() => showError('devices'));
      });
    }
  }

  // What the tests read (never changes the page): the peer connections, the slots and the counters.
  window.tiepdanLive = {
    get state() { return state; },
    get counters() { return state.counters; },
    get publisherPc() { return state.publisher ? state.publisher.pc : null; },
    get subscriberPc() { return state.subscriber ? state.subscriber.pc : null; },
    get ws() { return state.ws; },
    get slots() { return state.slots; },
    midOf(slot) { return state.subscriber ? state.subscriber.midOf(slot) : null; },
    slotOf(venue, kind) {
      for (const [slot, source] of Object.entries(state.slots)) {
        if (source.venue === venue && source.kind === (kind || 'video')) return slot;
      }
      return null;
    },
  };

  setStatus('idle');
  render();
  startDevices();
})();
