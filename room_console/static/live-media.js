/* WebRTC for the live session page: the publisher (camera, its small layer, microphone) and the subscriber
 * (fixed slots the server points at venues). Plain JavaScript, no build step; used by live.js.
 *
 * Both connections send complete descriptions (they wait for ICE gathering, at most ICE_WAIT_MS): the SFU
 * does not need trickled candidates. See docs/protocol.md, section "Media".
 */
'use strict';

(function () {
  const ICE_WAIT_MS = 4000;
  const LOW_LAYER = { width: 320, height: 180, frameRate: 15 };
  // The small layer has a sixteenth of the pixels at half the frame rate: a tenth of the camera's cap,
  // between 50 and 150 kbit/s, and never above the camera's cap itself.
  const LOW_SHARE = 0.1;
  const LOW_MIN_BPS = 50000;
  const LOW_MAX_BPS = 150000;

  /** The encoders' caps (bit/s) from the venue's cap in ``welcome.max_kbps``: {high, low}; ``high`` is
   * null when the server gave no cap (the browser's own limit applies, and the SFU's answer caps it). */
  function layerBitrates(maxKbps) {
    if (!(maxKbps > 0)) return { high: null, low: LOW_MAX_BPS };
    const high = Math.round(maxKbps * 1000);
    const low = Math.min(high, LOW_MAX_BPS, Math.max(LOW_MIN_BPS, Math.round(high * LOW_SHARE)));
    return { high, low };
  }

  /** RTCIceServer entries from a media.ice_servers message (null fields left out). */
  function iceServersFrom(list) {
    return (list || []).map((server) => {
      const out = { urls: server.urls };
      if (server.username) out.username = server.username;
      if (server.credential) out.credential = server.credential;
      return out;
    });
  }

  function waitForGathering(pc, timeoutMs) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      let timer = null;
      const check = () => {
        if (pc.iceGatheringState === 'complete' || pc.signalingState === 'closed') finish();
      };
      const finish = () => {
        clearTimeout(timer);
        pc.removeEventListener('icegatheringstatechange', check);
        resolve();
      };
      timer = setTimeout(finish, timeoutMs || ICE_WAIT_MS);
      pc.addEventListener('icegatheringstatechange', check);
    });
  }

  /** Put ``mimeType`` first in the transceiver's codec list (the others, RTX included, stay after it). */
  function preferCodec(transceiver, kind, mimeType) {
    if (typeof transceiver.setCodecPreferences !== 'function' || !window.RTCRtpReceiver ||
        typeof RTCRtpReceiver.getCapabilities !== 'function') return;
    const caps = RTCRtpReceiver.getCapabilities(kind);
    if (!caps || !caps.codecs) return;
    const wanted = mimeType.toLowerCase();
    const first = caps.codecs.filter((c) => c.mimeType.toLowerCase() === wanted);
    if (!first.length) return;
    const rest = caps.codecs.filter((c) => c.mimeType.toLowerCase() !== wanted);
    transceiver.setCodecPreferences(first.concat(rest));
  }

  async function lowLayerOf(track) {
    const low = track.clone();
    try {
      await low.applyConstraints(LOW_LAYER);
    } catch (err) {
      // A camera that cannot scale keeps its size; the bitrate cap still keeps the layer small.
    }
    return low;
  }

  /** The publisher connection: send-only mic, camera and camera-low (a scaled clone), each capped from
   * ``options.maxKbps`` (the venue's cap the server sent in ``welcome``). */
  class Publisher {
    constructor(options) {
      this.stream = options.stream;
      this.iceServers = options.iceServers || [];
      this.bitrates = layerBitrates(options.maxKbps);
      this.videoCodec = options.videoCodec || 'video/VP8';
      this.pc = null;
      this.lowTrack = null;
      this.senders = {};
      this.closed = false;
    }

    /** Build the offer: returns {sdp, tracks} for media.publish once ICE gathering is done. */
    async offer() {
      const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle' });
      this.pc = pc;
      const named = [];
      const mic = this.stream.getAudioTracks()[0];
      const camera = this.stream.getVideoTracks()[0];
      if (mic) {
        const t = pc.addTransceiver(mic, { direction: 'sendonly', streams: [this.stream] });
        this.senders.mic = t.sender;
        named.push([t, 'mic']);
      }
      if (camera) {
        const high = pc.addTransceiver(camera, {
          direction: 'sendonly', streams: [this.stream],
          sendEncodings: [this.bitrates.high ? { maxBitrate: this.bitrates.high } : {}],
        });
        preferCodec(high, 'video', this.videoCodec);
        this.senders.camera = high.sender;
        named.push([high, 'camera']);
        this.lowTrack = await lowLayerOf(camera);
        const low = pc.addTransceiver(this.lowTrack, {
          direction: 'sendonly', sendEncodings: [{ maxBitrate: this.bitrates.low }],
        });
        preferCodec(low, 'video', this.videoCodec);
        this.senders.low = low.sender;
        named.push([low, 'camera-low']);
      }
      await pc.setLocalDescription(await pc.createOffer());
      await waitForGathering(pc);
      const tracks = {};
      for (const [transceiver, name] of named) {
        if (transceiver.mid !== null) tracks[transceiver.mid] = name;
      }
      return { sdp: pc.localDescription.sdp, tracks };
    }

    async applyAnswer(sdp) {
      if (!this.pc || this.pc.signalingState !== 'have-local-offer') return false;
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
      return true;
    }

    /** Swap the camera or microphone (device picker) without a new negotiation. */
    async replaceTrack(track) {
      if (this.closed) return;
      if (track.kind === 'audio' && this.senders.mic) {
        await this.senders.mic.replaceTrack(track);
        return;
      }
      if (track.kind === 'video' && this.senders.camera) {
        await this.senders.camera.replaceTrack(track);
        const low = await lowLayerOf(track);
        if (this.senders.low) await this.senders.low.replaceTrack(low);
        if (this.lowTrack) this.lowTrack.stop();
        this.lowTrack = low;
      }
    }

    close() {
      this.closed = true;
      if (this.pc) this.pc.close();
      if (this.lowTrack) this.lowTrack.stop();
    }
  }

  /** The subscriber connection: answers the server's offer; ``onTrack(slot, track)`` per slot. */
  class Subscriber {
    constructor(options) {
      this.iceServers = options.iceServers || [];
      this.onTrack = options.onTrack;
      this.pc = null;
      this.slotsByMid = {};
      this.closed = false;
    }

    async answer(offer) {
      const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle' });
      this.pc = pc;
      for (const slot of offer.slots || []) this.slotsByMid[slot.mid] = slot;
      pc.addEventListener('track', (event) => {
        const mid = event.transceiver ? event.transceiver.mid : null;
        const slot = mid !== null ? this.slotsByMid[mid] : null;
        if (slot && !this.closed) this.onTrack(slot, event.track);
      });
      await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await waitForGathering(pc);
      return pc.localDescription.sdp;
    }

    /** slot name → mid */
    midOf(slotName) {
      for (const [mid, slot] of Object.entries(this.slotsByMid)) {
        if (slot.slot === slotName) return mid;
      }
      return null;
    }

    close() {
      this.closed = true;
      if (this.pc) this.pc.close();
    }
  }

  window.TiepdanMedia = { Publisher, Subscriber, iceServersFrom, waitForGathering, preferCodec, layerBitrates };
})();
