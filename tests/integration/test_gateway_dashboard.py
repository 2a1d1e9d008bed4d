"""The dashboard in a real headless Chromium, against a real gateway and orchestrator
(fake backends): health of every service, a running request's progress bar moving, and a
file uploaded through the page coming back as a speaker-coloured transcript.

Chromium is Debian's (`make testdata` installs it); without it the test skips. With
`WHOSPOKE_SCREENSHOT_DIR` set, the screenshot also goes there as `dashboard.png` (the
README's picture: `WHOSPOKE_SCREENSHOT_DIR=docs`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright, expect

from orchestrator.domain import AudioSource, Progressed, TranscriptDone, TranscriptEvent
from tests.fakes import wav_bytes
from tests.integration.test_gateway_ops import GpuTranscriber, Stack, stack, transcribe
from whospoke.common.audio import SAMPLE_RATE
from whospoke.contract.transcription import Segment, TranscriptionOptions, Word

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (`make testdata` installs it)"
)
WITHIN_MS = 10_000
"""How long the page gets to show what the gateway already knows (it polls every 200 ms)."""


FREE = 1 << 30


@dataclass
class SteppedTranscriber(GpuTranscriber):
    """Once `hold` is called, sends the segment of each second from then on only when the
    test releases a step, so the test sees progress move one step at a time."""

    hold_from: int = FREE
    steps: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(0))

    def run_freely(self) -> None:
        self.hold_from = FREE
        self.steps.release()

    async def transcribe(
        self, audio: AudioSource, options: TranscriptionOptions
    ) -> AsyncIterator[TranscriptEvent]:
        async for chunk in audio.chunks(1.0):
            second = chunk.offset_samples // SAMPLE_RATE
            if len(chunk.pcm_s16le) < 2 * SAMPLE_RATE:
                continue
            if second >= self.hold_from:
                await self.steps.acquire()
            s = float(second)
            words = (Word(s, s + 0.4, " one", 0.9), Word(s + 0.5, s + 0.9, " two", 0.8))
            yield Segment(second, s, s + 0.9, " one two", words)
            yield Progressed(s + 1)
        yield TranscriptDone("en", "fake-whisper")


async def check_progress_moves(
    page: Page, s: Stack, transcriber: SteppedTranscriber, tmp_path: Path
) -> None:
    """A request held mid-way: its bar moves when one more second is transcribed (the
    screenshot is taken then, with a job running)."""
    transcriber.hold_from = 2
    request = asyncio.create_task(transcribe(s, "interview.wav", 8))
    held = page.locator("#running .job", has_text="interview.wav")
    await expect(held).to_have_count(1, timeout=WITHIN_MS)
    job_id = await held.get_attribute("data-id")  # not the upload's, which may still show
    job = f"document.querySelector('#running .job[data-id=\"{job_id}\"]')"
    await page.wait_for_function(f"() => Number({job}?.dataset.percent) > 0", timeout=WITHIN_MS)
    seen = f"() => [Number({job}.dataset.percent), {job}.querySelector('.fill').style.width]"
    before = await page.evaluate(seen)
    transcriber.steps.release()
    await page.wait_for_function(
        f"p => Number({job}?.dataset.percent) > p", arg=before[0], timeout=WITHIN_MS
    )
    after = await page.evaluate(seen)
    assert float(after[1].rstrip("%")) > float(before[1].rstrip("%")) > 0
    await screenshot(page, tmp_path)
    transcriber.run_freely()
    await request
    await expect(held).to_have_count(0, timeout=WITHIN_MS)


async def check_upload(page: Page, tmp_path: Path) -> None:
    recording = tmp_path / "two-speakers.wav"
    await asyncio.to_thread(recording.write_bytes, wav_bytes(3))
    await page.set_input_files("#upload-file", recording)
    await page.click("#upload-submit")
    await expect(page.locator("#upload-state")).to_have_attribute(
        "data-state", "done", timeout=WITHIN_MS
    )
    await expect(page.locator("#transcript-live")).to_contain_text("one two")
    lines = page.locator("#transcript-lines li")
    speakers = await lines.evaluate_all("ls => ls.map(l => l.dataset.speaker)")
    colours = await lines.evaluate_all(
        "ls => ls.map(l => getComputedStyle(l.querySelector('.speaker')).color)"
    )
    assert set(speakers) == {"SPEAKER_00", "SPEAKER_01"}
    by_speaker = dict(zip(speakers, colours, strict=True))
    assert len(set(by_speaker.values())) == 2
    assert all(by_speaker[who] == colour for who, colour in zip(speakers, colours, strict=True))
    await expect(page.locator("#upload-error")).to_be_hidden()


async def test_the_dashboard_shows_health_progress_and_a_live_transcript(tmp_path: Path) -> None:
    transcriber = SteppedTranscriber()
    errors: list[str] = []
    async with stack(tmp_path, transcriber=transcriber) as s, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(s.gateway.url + "/?refresh=200")
            await expect(page.locator("#health-status")).to_have_attribute(
                "data-status", "ready", timeout=WITHIN_MS
            )
            for name in ("orchestrator", "transcriber", "diarizer"):
                row = page.locator(f'#services tr[data-service="{name}"]')
                await expect(row).to_have_attribute("data-state", "serving")
            transcriber_row = page.locator('#services tr[data-service="transcriber"]')
            await expect(transcriber_row.locator(".device")).to_contain_text("NVIDIA H200")
            await expect(transcriber_row.locator(".models")).to_have_text("fake-whisper")
            diarizer_row = page.locator('#services tr[data-service="diarizer"]')
            await expect(diarizer_row.locator(".device")).to_have_text("CPU")
            await expect(page.locator("#docs-link")).to_have_attribute("href", "/docs")
            await expect(page.locator("#view-note")).to_have_attribute("data-view", "full")

            await check_upload(page, tmp_path)
            await check_progress_moves(page, s, transcriber, tmp_path)
            await expect(page.locator("#recent tbody tr")).to_have_count(2, timeout=WITHIN_MS)
            await expect(page.locator("#recent tbody tr").first).to_contain_text("interview.wav")
            await expect(page.locator("#throughput rect")).to_have_count(60)
            assert errors == []
            await check_error_shown(page, tmp_path)
        finally:
            await browser.close()


async def check_error_shown(page: Page, tmp_path: Path) -> None:
    """A refused upload's OpenAI error JSON is shown as a sentence (the browser logs the 400
    itself as a console error, so this runs after the console check)."""
    empty = tmp_path / "empty.wav"
    await asyncio.to_thread(empty.write_bytes, b"")
    await page.set_input_files("#upload-file", empty)
    await page.click("#upload-submit")
    error = page.locator("#upload-error")
    await expect(error).to_be_visible(timeout=WITHIN_MS)
    await expect(error).to_have_text(
        "file: the file is empty (HTTP 400, invalid_value, field file)"
    )
    await expect(page.locator("#upload-state")).to_have_attribute("data-state", "failed")


async def screenshot(page: Page, tmp_path: Path) -> None:
    places = [tmp_path / "dashboard.png"]
    if wanted := os.environ.get("WHOSPOKE_SCREENSHOT_DIR"):
        places.append(Path(wanted) / "dashboard.png")
    for place in places:
        await page.screenshot(path=str(place), full_page=True, animations="disabled")
        print(f"dashboard screenshot: {place}")
