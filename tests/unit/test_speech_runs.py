"""Speech runs: where a window's local speaker is split, and which runs move after clustering."""

from __future__ import annotations

import numpy as np

from diarizer import runs

FPS = 10.0
"""Frames per second in these tests: 0.5 s pause = 5 frames, 1 s run = 10 frames."""


def activity(*spans: tuple[int, int, int], frames: int = 100, speakers: int = 3) -> np.ndarray:
    out = np.zeros((frames, speakers), dtype=np.uint8)
    for speaker, start, end in spans:
        out[start:end, speaker] = 1
    return out


def test_a_speaker_is_split_where_it_pauses_long_enough() -> None:
    window = activity((0, 0, 20), (0, 26, 50), (0, 52, 70), (1, 80, 95))
    found = runs.split(window, FPS)
    # the 6-frame pause splits; the 2-frame one does not; speaker 1 has one run only
    assert found.tolist() == [[0, 0, 20], [0, 26, 70]]


def test_a_short_run_stays_with_its_neighbour() -> None:
    window = activity((0, 0, 30), (0, 40, 45), (0, 60, 90))
    assert runs.split(window, FPS).tolist() == [[0, 0, 45], [0, 60, 90]]
    assert runs.split(activity((2, 0, 5), (2, 20, 25)), FPS).size == 0


def test_masks_keep_the_speaker_activity_inside_each_run() -> None:
    window = activity((1, 0, 20), (1, 40, 60))
    found = runs.split(window, FPS)
    columns = runs.masks(window, found)
    assert columns.shape == (100, 2)
    assert columns[:, 0].sum() == 20 and columns[:20, 0].all()
    assert columns[:, 1].sum() == 20 and columns[40:60, 1].all()


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float64)
    return vector / np.linalg.norm(vector)


CENTROIDS = np.stack([unit(1, 0, 0), unit(0, 1, 0)])


def test_a_run_closer_to_another_speaker_moves_there_and_others_stay() -> None:
    hard = np.array([[0, -2, -2], [0, 1, -2]])
    window_runs = [np.array([[0, 0, 20], [0, 40, 60]]), np.array([[1, 0, 20], [1, 40, 60]])]
    vectors = [
        np.stack([unit(1, 0.1, 0), unit(0.1, 1, 0)]),  # the second run is speaker 1's voice
        np.stack([unit(0, 1, 0.2), unit(0.1, 1, 0)]),  # both runs are speaker 1's own
    ]
    moved = runs.reassign(hard, window_runs, vectors, CENTROIDS, margin=0.1)
    assert list(moved) == [0]
    assert moved[0].runs.tolist() == [[0, 40, 60]] and moved[0].clusters.tolist() == [1]


def test_a_move_needs_more_than_the_margin() -> None:
    hard = np.array([[0, -2, -2]])
    window_runs = [np.array([[0, 0, 20], [0, 40, 60]])]
    close_call = [np.stack([unit(1, 0, 0), unit(1, 1.05, 0)])]
    assert runs.reassign(hard, window_runs, close_call, CENTROIDS, margin=0.1) == {}
    assert runs.reassign(hard, window_runs, close_call, CENTROIDS, margin=0.0)


def test_runs_of_unclustered_speakers_or_without_embeddings_stay() -> None:
    hard = np.array([[-2, 0, -2]])
    window_runs = [np.array([[0, 0, 20], [0, 40, 60], [1, 70, 80], [1, 85, 99]])]
    vectors = [np.stack([unit(0, 1, 0), unit(0, 1, 0), unit(1, 0, 0), np.full(3, np.nan)])]
    assert runs.reassign(hard, window_runs, vectors, CENTROIDS, margin=0.0) == {}
    assert runs.reassign(hard, window_runs, vectors, CENTROIDS[:0], margin=0.0) == {}


def test_applying_moves_takes_the_run_into_a_column_of_its_own() -> None:
    window = activity((0, 0, 20), (0, 40, 60), (1, 70, 90))
    moves = runs.Moves(np.array([[0, 40, 60]]), np.array([1]))
    moved, clusters = moves.apply(window.astype(np.float32), np.array([0, 1, -2]))
    assert moved.shape == (100, 4) and clusters.tolist() == [0, 1, -2, 1]
    assert moved[:, 0].sum() == 20 and moved[40:60, 3].all() and moved[:, 3].sum() == 20
    assert window[40:60, 0].all(), "the window itself is left as it was"
