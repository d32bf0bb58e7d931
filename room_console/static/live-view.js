/* The live session page, what it shows: the venues' tiles (large for the floor holder, and for venues the
 * chair; a paged grid for the others), their badges, the chair's controls, the side panels. Everything is
 * drawn from the state live.js keeps from the server's messages; nothing here sends anything.
 */
'use strict';

(function () {
  /** Link health (chất lượng đường truyền) from media.stats: over any limit → "yếu". One table. */
  const HEALTH_LIMITS = { loss: 0.05, rttMs: 400, minFps: 10 };
  const PAGE_SIZE = 9;

  function playSafely(media) {
    const started = media.play();
    if (started && typeof started.catch === 'function') started.catch(() => {});
  }

  /** app: {root, config, state, T}. Returns the page's elements and ``render()``. */
  function create(app) {
    const { root, config, state, T } = app;
    const venues = config.venues;
    const venueName = {};
    for (const v of venues) venueName[v.venue] = v.name;
    const mainVenue = (venues.find((v) => v.main) || venues[0] || {}).venue || null;

    const $ = (selector) => root.querySelector(selector);
    const el = {
      conn: $('[data-testid="conn-state"]'),
      connText: $('.live-conn__text'),
      status: $('#live-status'),
      errors: $('#live-errors'),
      joinPanel: $('[data-testid="join-panel"]'),
      joinButton: $('[data-action="join"]'),
      camera: $('#live-camera'),
      microphone: $('#live-microphone'),
      lobbyWait: $('[data-testid="lobby-wait"]'),
      unmute: $('[data-testid="unmute-prompt"]'),
      call: $('[data-testid="call-banner"]'),
      callTicket: $('[data-testid="call-ticket"]'),
      callText: $('[data-testid="call-text"]'),
      callAudio: $('[data-testid="call-audio"]'),
      callPaused: $('[data-testid="call-paused"]'),
      body: $('[data-testid="live-body"]'),
      stage: $('[data-testid="stage"]'),
      grid: $('[data-testid="grid"]'),
      pager: $('[data-testid="pager"]'),
      pagerText: $('[data-testid="pager-text"]'),
      parking: $('[data-testid="parking"]'),
      audio: $('[data-testid="audio"]'),
      micButton: $('[data-testid="mic-toggle"]'),
      micState: $('[data-testid="mic-state"]'),
      handButton: $('[data-testid="hand-toggle"]'),
      linkState: $('[data-testid="link-state"]'),
      lobbyList: $('[data-testid="lobby-list"]'),
      lobbyEmpty: $('[data-testid="lobby-empty"]'),
      handsList: $('[data-testid="hands-list"]'),
      handsEmpty: $('[data-testid="hands-empty"]'),
      lockButton: $('[data-testid="lock-toggle"]'),
      lockState: $('[data-testid="lock-state"]'),
      csState: $('[data-testid="cs-state"]'),
      csVenue: $('#live-cs-venue'),
      csActions: $('[data-testid="cs-actions"]'),
      others: $('[data-testid="others-list"]'),
      rejoin: $('[data-action="rejoin"]'),
      leaveButton: $('[data-action="leave"]'),
    };
    const tiles = {};
    for (const tile of root.querySelectorAll('[data-tile]')) tiles[tile.dataset.venue] = tile;

    function participants() {
      return state.room ? state.room.participants : [];
    }

    function myParticipant() {
      if (!state.room || !state.me) return null;
      return state.room.participants.find((p) => p.participant === state.me.participant) || null;
    }

    function chairVenue() {
      for (const p of participants()) if (p.roles.indexOf('chair') >= 0 && p.venue) return p.venue;
      return mainVenue;
    }

    function roleOf(venue) {
      if (state.room && venue === state.room.floor) return 'floor';
      if (venue === chairVenue()) return 'chair';
      return 'other';
    }

    function closedVenue() {
      const segment = state.room ? state.room.closed_segment : null;
      return segment && segment.state === 'active' ? segment.venue : null;
    }

    /** Who receives a venue in a closed segment: itself, the main venue, the chair, the secretary. */
    function maySeeClosed(venue) {
      return config.venue === venue || config.venue === mainVenue || config.moderate || config.closedSegment;
    }

    function peopleOf(venue) {
      return participants().filter((p) => p.venue === venue);
    }

    function healthOf(venue) {
      const people = peopleOf(venue);
      if (!people.length) return 'none';
      if (state.venueLinks[venue] === 'lost' || !people.some((p) => p.connected)) return 'mat';
      if (venue === config.venue && (state.links.publisher === 'lost' || state.links.subscriber === 'lost')) return 'mat';
      const s = state.stats[venue];
      if (s && (s.loss > HEALTH_LIMITS.loss || s.rttMs > HEALTH_LIMITS.rttMs ||
        (s.fps !== null && s.fps < HEALTH_LIMITS.minFps))) return 'yeu';
      return 'tot';
    }

    function personName(p) {
      return p.name || venueName[p.venue] || p.participant;
    }

    function button(action, text, data, disabled) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'button button--small';
      b.dataset.action = action;
      for (const [key, value] of Object.entries(data || {})) b.dataset[key] = value;
      b.textContent = text;
      b.disabled = !!disabled;
      return b;
    }

    function sameChildren(container, list) {
      const now = Array.from(container.children);
      return now.length === list.length && now.every((child, i) => child === list[i]);
    }

    function placeTiles() {
      const large = [];
      const small = [];
      for (const v of venues) {
        const tile = tiles[v.venue];
        const role = roleOf(v.venue);
        tile.dataset.role = role;
        const isLarge = config.view === 'chair' ? role === 'floor' : role === 'floor' || role === 'chair';
        (isLarge ? large : small).push(tile);
      }
      large.sort((a, b) => (a.dataset.role === 'floor' ? 0 : 1) - (b.dataset.role === 'floor' ? 0 : 1));
      if (!sameChildren(el.stage, large)) for (const tile of large) el.stage.appendChild(tile);
      if (!sameChildren(el.grid, small)) for (const tile of small) el.grid.appendChild(tile);
      const pages = Math.max(1, Math.ceil(small.length / PAGE_SIZE));
      state.page = Math.min(state.page, pages - 1);
      small.forEach((tile, i) => { tile.hidden = Math.floor(i / PAGE_SIZE) !== state.page; });
      for (const tile of large) tile.hidden = false;
      el.pager.hidden = pages <= 1;
      el.pagerText.textContent = T('live.pager.page', { page: state.page + 1, pages });
      el.pager.querySelector('[data-action="page-prev"]').disabled = state.page === 0;
      el.pager.querySelector('[data-action="page-next"]').disabled = state.page >= pages - 1;
    }

    function placeVideos() {
      const shown = {};
      for (const [slot, source] of Object.entries(state.slots)) {
        if (source.kind === 'video' && source.venue && state.elements[slot]) shown[source.venue] = state.elements[slot];
      }
      const closed = closedVenue();
      for (const v of venues) {
        const tile = tiles[v.venue];
        const box = tile.querySelector('.tile-v__media');
        const hidden = closed === v.venue && !maySeeClosed(v.venue);
        let media = v.venue === config.venue ? (config.publish ? state.ownVideo : null) : shown[v.venue] || null;
        if (hidden || state.status !== 'admitted') media = v.venue === config.venue ? media : null;
        for (const child of Array.from(box.querySelectorAll('video'))) {
          if (child !== media) el.parking.appendChild(child);
        }
        if (media && media.parentNode !== box) {
          box.appendChild(media);
          playSafely(media);
        }
        tile.dataset.video = media ? 'on' : 'off';
        tile.dataset.closed = closed === v.venue ? (hidden ? 'hidden' : 'visible') : 'false';
        tile.querySelector('.tile-v__closed').hidden = !hidden;
        tile.querySelector('.tile-v__empty').hidden = !!media || hidden;
      }
    }

    function renderTile(v) {
      const tile = tiles[v.venue];
      const role = tile.dataset.role;
      const people = peopleOf(v.venue);
      const health = healthOf(v.venue);
      tile.dataset.health = health;
      tile.dataset.present = people.some((p) => p.connected) ? 'true' : 'false';
      tile.dataset.speaking = state.speaker === v.venue ? 'true' : 'false';
      tile.querySelector('[data-badge="floor"]').hidden = role !== 'floor';
      tile.querySelector('[data-badge="speaking"]').hidden = state.speaker !== v.venue;
      tile.querySelector('[data-badge="closed"]').hidden = closedVenue() !== v.venue;
      const healthBadge = tile.querySelector('[data-badge="health"]');
      const showHealth = health !== 'none' && (config.view === 'chair' || health === 'mat' || v.venue === config.venue);
      healthBadge.hidden = !showHealth;
      healthBadge.dataset.health = health;
      healthBadge.textContent = T('live.health.' + health);
      const micBadge = tile.querySelector('[data-badge="mic"]');
      const publishers = people.filter((p) => p.roles.indexOf('venue') >= 0 || p.roles.indexOf('chair') >= 0);
      micBadge.hidden = publishers.length === 0;
      micBadge.textContent = publishers.some((p) => !p.muted) ? T('live.mic.on') : T('live.mic.off');
      micBadge.dataset.muted = publishers.some((p) => !p.muted) ? 'false' : 'true';
      tile.querySelector('[data-badge="absent"]').hidden = people.some((p) => p.connected);
      if (config.view === 'chair') renderChairTile(tile, v, people);
    }

    function renderChairTile(tile, v, people) {
      const room = state.room;
      const admitted = state.status === 'admitted' && room;
      const give = tile.querySelector('[data-action="floor-give"]');
      const take = tile.querySelector('[data-action="floor-take"]');
      give.disabled = !admitted || room.floor === v.venue;
      take.hidden = !admitted || room.floor !== v.venue || v.venue === mainVenue;
      const list = tile.querySelector('[data-testid="people"]');
      const signature = JSON.stringify([admitted, people, state.forced, room ? room.hands : []]);
      if (list.dataset.signature === signature) return;
      list.dataset.signature = signature;
      list.textContent = '';
      for (const p of people) list.appendChild(personRow(p));
    }

    function personRow(p) {
      const item = document.createElement('li');
      item.className = 'person';
      item.dataset.participant = p.participant;
      const label = document.createElement('span');
      label.className = 'person__name';
      label.textContent = personName(p);
      item.appendChild(label);
      const facts = document.createElement('span');
      facts.className = 'person__facts';
      const parts = [p.muted ? (state.forced[p.participant] ? T('live.mic.forced') : T('live.mic.off')) : T('live.mic.on')];
      if (!p.connected) parts.push(T('live.person.disconnected'));
      if (state.room && state.room.hands.indexOf(p.participant) >= 0) parts.push(T('live.hands.raised'));
      facts.textContent = parts.join(' · ');
      item.appendChild(facts);
      const isMe = state.me && p.participant === state.me.participant;
      const hasMic = p.roles.indexOf('venue') >= 0 || p.roles.indexOf('chair') >= 0;
      if (!isMe && hasMic) {
        if (p.muted) item.appendChild(button('mic-unmute-request', T('live.action.unmute_request'), { participant: p.participant }));
        else item.appendChild(button('mic-mute', T('live.action.mute'), { participant: p.participant }));
      }
      if (!isMe) item.appendChild(button('remove', T('live.action.remove'), { participant: p.participant }));
      return item;
    }

    function renderSide() {
      const room = state.room;
      const admitted = state.status === 'admitted' && !!room;
      const me = myParticipant();
      if (el.micButton) {
        const muted = me ? me.muted : true;
        const forced = me ? !!state.forced[me.participant] : false;
        el.micButton.disabled = !admitted || (muted && forced && el.unmute.hidden);
        el.micButton.textContent = muted ? T('live.mic.turn_on') : T('live.mic.turn_off');
        el.micButton.dataset.muted = muted ? 'true' : 'false';
        el.micState.textContent = muted ? (forced ? T('live.mic.forced') : T('live.mic.off')) : T('live.mic.on');
        el.micState.dataset.muted = muted ? 'true' : 'false';
      }
      if (el.handButton) {
        const raised = !!(room && me && room.hands.indexOf(me.participant) >= 0);
        el.handButton.disabled = !admitted;
        el.handButton.dataset.raised = raised ? 'true' : 'false';
        el.handButton.textContent = raised ? T('live.hands.lower_own') : T('live.hands.raise');
      }
      if (el.linkState) {
        const link = config.publish ? state.links.publisher : state.links.subscriber;
        const key = !admitted ? 'none' : link === 'lost' ? 'lost' : link ? 'connected' : 'connecting';
        el.linkState.dataset.state = key;
        el.linkState.textContent = T('live.link.' + key);
      }
      renderHands(room, admitted);
      if (el.lobbyList) renderLobby(room, admitted);
      if (el.lockButton) {
        el.lockButton.disabled = !admitted;
        el.lockButton.dataset.action = room && room.locked ? 'unlock' : 'lock';
        el.lockButton.textContent = room && room.locked ? T('live.lock.unlock') : T('live.lock.lock');
        el.lockState.textContent = room && room.locked ? T('live.lock.locked') : T('live.lock.unlocked');
        el.lockState.dataset.locked = room && room.locked ? 'true' : 'false';
      }
      if (el.csState) renderClosedSegment(room, admitted);
      if (el.others) renderOthers(admitted);
    }

    function renderHands(room, admitted) {
      if (!el.handsList) return;
      const hands = room ? room.hands : [];
      const signature = JSON.stringify([admitted, hands, participants().map((p) => [p.participant, p.name])]);
      if (el.handsList.dataset.signature === signature) return;
      el.handsList.dataset.signature = signature;
      el.handsList.textContent = '';
      hands.forEach((pid, i) => {
        const p = participants().find((x) => x.participant === pid);
        const item = document.createElement('li');
        item.dataset.participant = pid;
        const text = document.createElement('span');
        text.textContent = T('live.hands.item', { n: i + 1, name: p ? personName(p) : pid,
          venue: p && p.venue ? venueName[p.venue] || p.venue : '' });
        item.appendChild(text);
        if (config.moderate && admitted) {
          if (p && p.venue && p.venue !== room.floor) {
            item.appendChild(button('floor-give', T('live.action.floor_give'), { venue: p.venue }));
          }
          item.appendChild(button('hand-lower-other', T('live.hands.lower_other'), { participant: pid }));
        }
        el.handsList.appendChild(item);
      });
      el.handsEmpty.hidden = hands.length > 0;
    }

    function renderLobby(room, admitted) {
      const lobby = room ? room.lobby : [];
      const signature = JSON.stringify([admitted, lobby]);
      if (el.lobbyList.dataset.signature === signature) return;
      el.lobbyList.dataset.signature = signature;
      el.lobbyList.textContent = '';
      for (const p of lobby) {
        const item = document.createElement('li');
        item.dataset.participant = p.participant;
        const text = document.createElement('span');
        text.textContent = p.venue ? T('live.lobby.item', { name: personName(p), venue: venueName[p.venue] || p.venue })
          : personName(p);
        item.appendChild(text);
        item.appendChild(button('lobby-admit', T('live.lobby.admit'), { participant: p.participant }, !admitted));
        item.appendChild(button('lobby-deny', T('live.lobby.deny'), { participant: p.participant }, !admitted));
        el.lobbyList.appendChild(item);
      }
      el.lobbyEmpty.hidden = lobby.length > 0;
    }

    function renderClosedSegment(room, admitted) {
      const segment = room ? room.closed_segment : null;
      const name = segment ? venueName[segment.venue] || segment.venue : '';
      el.csState.dataset.state = segment ? segment.state : 'none';
      el.csState.textContent = !segment ? T('live.cs.none')
        : segment.state === 'requested' ? T('live.cs.requested', { venue: name }) : T('live.cs.active', { venue: name });
      const signature = JSON.stringify([admitted, segment]);
      if (el.csActions.dataset.signature === signature) return;
      el.csActions.dataset.signature = signature;
      el.csActions.textContent = '';
      if (el.csVenue) el.csVenue.disabled = !admitted || !!segment;
      if (config.moderate) {
        if (!segment) el.csActions.appendChild(button('cs-start', T('live.cs.start'), {}, !admitted));
        else if (segment.state === 'requested') {
          el.csActions.appendChild(button('cs-confirm', T('live.cs.confirm'), {}, !admitted));
          el.csActions.appendChild(button('cs-end', T('live.cs.withdraw'), {}, !admitted));
        } else el.csActions.appendChild(button('cs-end', T('live.cs.end'), {}, !admitted));
      } else if (config.closedSegment && !segment) {
        el.csActions.appendChild(button('cs-request', T('live.cs.request'), {}, !admitted));
      }
    }

    function renderOthers(admitted) {
      const known = new Set(venues.map((v) => v.venue));
      const people = participants().filter((p) => !p.venue || !known.has(p.venue));
      const signature = JSON.stringify([admitted, people, state.forced]);
      if (el.others.dataset.signature === signature) return;
      el.others.dataset.signature = signature;
      el.others.textContent = '';
      for (const p of people) el.others.appendChild(personRow(p));
      el.others.closest('section').hidden = people.length === 0;
    }

    function render() {
      const admitted = state.status === 'admitted';
      el.lobbyWait.hidden = state.status !== 'lobby';
      el.body.dataset.active = admitted ? 'true' : 'false';
      if (el.joinButton) el.joinButton.hidden = state.status !== 'idle';
      if (el.leaveButton) el.leaveButton.disabled = state.status === 'idle' || state.status === 'ended';
      if (state.status !== 'admitted') el.unmute.hidden = true;
      placeTiles();
      placeVideos();
      for (const v of venues) renderTile(v);
      renderSide();
      renderCall();
    }

    /** "Công dân số 15 — điểm cầu Xã Quế Võ": the ticket number and venue of a call, never a name. */
    function callLabel(call) {
      return T('live.call.ticket', { ticket: call.ticket_no, venue: venueName[call.venue] || call.venue });
    }

    /** The case being received (``room.calling``): its ticket number and venue, and the announcement. */
    function renderCall() {
      const call = state.status === 'admitted' && state.room ? state.room.calling : null;
      el.call.hidden = !call;
      if (!call) return;
      el.call.dataset.callSeq = String(call.call_seq);
      el.call.dataset.venue = call.venue;
      el.callTicket.textContent = callLabel(call);
      el.callText.textContent = call.announcement_text || '';
      el.call.dataset.paused = call.paused ? 'true' : 'false';
      if (el.callPaused) el.callPaused.hidden = !call.paused;
    }

    return { el, tiles, render, participants, myParticipant, venueName, callLabel };
  }

  window.TiepdanLiveView = { create, playSafely, HEALTH_LIMITS };
})();
