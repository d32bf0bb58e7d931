"""The call announcement: the text (never a name) and its speech, synthesised by the real espeak-ng."""

from __future__ import annotations

import array
import inspect
import math
import os
import shutil
import unicodedata
import wave
from pathlib import Path

import pytest

from schedules.announcement import (
    ANNOUNCEMENT_TEMPLATE_VI,
    SpeechOptions,
    announcement_text,
    speech_key,
    synthesize,
    synthesize_async,
)
from schedules.errors import InvalidAnnouncement, SynthesisFailed, SynthesisTimeout, SynthesizerMissing

GLOSSARY_SENTENCE = "Mời công dân có số thứ tự 12, tại điểm cầu xã Tiên Du, chuẩn bị trình bày."


@pytest.mark.unit
def test_the_text_is_the_glossary_sentence() -> None:
    assert announcement_text(12, "xã Tiên Du") == GLOSSARY_SENTENCE
    assert ANNOUNCEMENT_TEMPLATE_VI.format(ticket_no=12, venue="xã Tiên Du") == GLOSSARY_SENTENCE


@pytest.mark.unit
def test_the_signature_takes_only_the_number_and_the_venue_name() -> None:
    parameters = inspect.signature(announcement_text).parameters
    assert list(parameters) == ["ticket_no", "venue_name"]
    assert all(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in parameters.values())
    with pytest.raises(TypeError):
        announcement_text(12, "xã Tiên Du", "Nguyễn Văn An")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        announcement_text(12, venue_name="xã Tiên Du")  # type: ignore[call-arg]


@pytest.mark.unit
def test_the_venue_name_is_normalised_and_điểm_cầu_is_not_said_twice() -> None:
    decomposed = unicodedata.normalize("NFD", "  Điểm cầu   phường Vũ Ninh ")
    text = announcement_text(7, decomposed)
    assert text == "Mời công dân có số thứ tự 7, tại điểm cầu phường Vũ Ninh, chuẩn bị trình bày."
    assert unicodedata.is_normalized("NFC", text)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("ticket_no", "venue"),
    [(0, "xã A"), (-3, "xã A"), (100_000, "xã A"), (True, "xã A"), (1, ""), (1, "điểm cầu "), (1, "xã\x00A"),
     (1, "x" * 121)],
)  # fmt: skip
def test_bad_numbers_and_names_are_refused(ticket_no: int, venue: str) -> None:
    with pytest.raises(InvalidAnnouncement) as refused:
        announcement_text(ticket_no, venue)
    assert refused.value.code == "invalid_announcement"


@pytest.mark.unit
def test_the_cache_key_depends_on_text_voice_and_speed_only() -> None:
    key = speech_key(GLOSSARY_SENTENCE, "vi", 150)
    assert len(key) == 64 and key == speech_key(unicodedata.normalize("NFD", GLOSSARY_SENTENCE), "vi", 150)
    assert len({key, speech_key(GLOSSARY_SENTENCE, "vi-vn-x-south", 150), speech_key(GLOSSARY_SENTENCE, "vi", 160),
                speech_key("Mời công dân có số thứ tự 13.", "vi", 150)}) == 4  # fmt: skip


@pytest.mark.unit
def test_bad_speech_options_are_refused(tmp_path: Path) -> None:
    for kwargs in ({"voice": "vi; rm -rf /"}, {"speed_wpm": 10}, {"timeout_s": 0}):
        with pytest.raises(InvalidAnnouncement):
            SpeechOptions(cache_dir=tmp_path, **kwargs)


# -- the real espeak-ng ---------------------------------------------------------------------------------------


@pytest.fixture
def espeak() -> str:
    program = shutil.which("espeak-ng")
    if program is None:
        if os.environ.get("CI"):
            pytest.fail("espeak-ng is required when CI is set (scripts/ensure-system-packages.sh installs it)")
        pytest.skip("espeak-ng is not installed here")
    return program


def _samples(path: Path) -> tuple[float, float]:
    """Duration in seconds and RMS of a 16-bit mono WAV file."""
    with wave.open(str(path), "rb") as audio:
        assert (audio.getnchannels(), audio.getsampwidth()) == (1, 2)
        rate, frames = audio.getframerate(), audio.readframes(audio.getnframes())
    samples = array.array("h", frames)
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    return len(samples) / rate, rms


@pytest.mark.media
@pytest.mark.parametrize("voice", ["vi", "vi-vn-x-south"])
def test_espeak_speaks_the_announcement_for_seconds_and_not_silence(espeak: str, tmp_path: Path, voice: str) -> None:
    speech = synthesize(GLOSSARY_SENTENCE, SpeechOptions(cache_dir=tmp_path / "audio", voice=voice))
    assert not speech.cached
    assert speech.path == tmp_path / "audio" / f"{speech.key}.wav" and speech.name == f"{speech.key}.wav"
    duration, rms = _samples(speech.path)
    assert duration >= 2.0, duration  # 21 syllables: about 5 s at 150 words per minute
    assert rms > 500, rms  # silence is 0; speech at espeak-ng's level is in the thousands
    assert list((tmp_path / "audio").iterdir()) == [speech.path]  # no temporary file left behind


@pytest.mark.media
def test_a_second_call_is_served_from_the_cache_without_rewriting_the_file(espeak: str, tmp_path: Path) -> None:
    options = SpeechOptions(cache_dir=tmp_path)
    first = synthesize(GLOSSARY_SENTENCE, options)
    before = first.path.stat()
    second = synthesize(GLOSSARY_SENTENCE, options)
    after = second.path.stat()
    assert second.cached and second.path == first.path
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    other = synthesize(announcement_text(13, "xã Tiên Du"), options)
    assert not other.cached and other.path != first.path


@pytest.mark.media
async def test_the_async_wrapper_runs_espeak_in_a_thread(espeak: str, tmp_path: Path) -> None:
    speech = await synthesize_async(announcement_text(5, "xã Lạc Vệ"), SpeechOptions(cache_dir=tmp_path))
    assert _samples(speech.path)[0] >= 2.0
    assert (await synthesize_async(announcement_text(5, "xã Lạc Vệ"), SpeechOptions(cache_dir=tmp_path))).cached


def _program(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-espeak"
    path.write_text("#!/bin/sh\n" + body + "\n", encoding="utf-8")
    path.chmod(0o755)
    return str(path)


@pytest.mark.unit
def test_a_missing_program_is_a_clear_error(tmp_path: Path) -> None:
    options = SpeechOptions(cache_dir=tmp_path / "audio", executable=str(tmp_path / "no-such-espeak-ng"))
    with pytest.raises(SynthesizerMissing, match="espeak-ng") as missing:
        synthesize(GLOSSARY_SENTENCE, options)
    assert missing.value.code == "synthesizer_missing"
    assert "Tiên Du" not in missing.value.message_vi


@pytest.mark.unit
def test_a_program_that_hangs_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    # The fake program blocks on a pipe nobody writes to; the test itself never sleeps.
    options = SpeechOptions(cache_dir=tmp_path / "audio", executable=_program(tmp_path, "exec tail -f /dev/null"),
                            timeout_s=0.3)  # fmt: skip
    with pytest.raises(SynthesisTimeout) as slow:
        synthesize(GLOSSARY_SENTENCE, options)
    assert "0.3 giây" in slow.value.message_vi
    assert list((tmp_path / "audio").iterdir()) == []


@pytest.mark.unit
@pytest.mark.parametrize(
    "body",
    ["echo 'Error: The specified espeak-ng voice does not exist.' >&2; exit 1",
     'while [ "$1" != "-w" ]; do shift; done; echo "not a wav file" > "$2"'],
)  # fmt: skip
def test_a_failing_program_or_a_file_that_is_not_wav_is_an_error(tmp_path: Path, body: str) -> None:
    options = SpeechOptions(cache_dir=tmp_path / "audio", executable=_program(tmp_path, body))
    with pytest.raises(SynthesisFailed) as failed:
        synthesize(GLOSSARY_SENTENCE, options)
    assert "voice does not exist" not in failed.value.message_vi
    assert list((tmp_path / "audio").iterdir()) == []
